"""``mmlr export {ris,csv,prisma,metafor,sof}``: records and evidence for other tools.

* ``csv`` — one row per record (RFC 4180 quoting, UTF-8): ``pmid, title, journal, year,
  status, score, decision`` (DESIGN §3) then ``screening, flagged, deleted, retracted, doi,
  publication_types, nct_ids, first_seen_at``. ``status`` is PubMed's indexing status
  (Publisher, In-Process, MEDLINE…); ``screening`` is where the record stands in the review
  (deleted, included, excluded, maybe, flagged, not flagged, unscored). Under dual screening
  two more columns follow: ``screening_state`` (``unscreened``, ``awaiting_second``,
  ``conflict``, ``resolved``: the values of the API's ``screening`` field) and ``screeners``
  (how many people voted on the record).
* ``ris`` — RIS for reference managers (Zotero, EndNote), one ``TY  - JOUR`` entry per
  record not deleted from PubMed.
* ``prisma`` — the PRISMA 2020 flow counts as CSV (``stage, count, note``) plus a Markdown
  summary beside it (``prisma.csv`` / ``prisma.md``); under dual screening with a line for
  the records in conflict awaiting resolution.
* ``metafor`` — delegated to :func:`reports.export_metafor.write_metafor_export`.
* ``sof`` — the summary of findings, one row per pooled analysis (``reports.export_sof``), as
  CSV plus a Markdown table beside it (``sof.csv`` / ``sof.md``).

``out=None`` writes csv/ris/prisma (CSV) to stdout and returns ``[]``; otherwise the written
files are returned. Rows are streamed from the database, so a large review does not have to
fit in memory.
"""

from __future__ import annotations

import csv
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import IO, Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from store.context import AppContext
from store.errors import NotFoundError, ValidationError
from store.models import Decision, Record, RecordRevision, Trial, TrialReport

log = logging.getLogger(__name__)

KINDS = ("ris", "csv", "prisma", "metafor", "sof")
CSV_COLUMNS = ("pmid", "title", "journal", "year", "status", "score", "decision", "screening",
               "flagged", "deleted", "retracted", "doi", "publication_types", "nct_ids",
               "first_seen_at")
#: Appended under dual screening (single-screening exports keep exactly ``CSV_COLUMNS``).
DUAL_CSV_COLUMNS = (*CSV_COLUMNS, "screening_state", "screeners")
_BATCH = 1000
_STEM = {"prisma": "prisma", "sof": "sof"}  # file name in an --out folder; else "records"
# Decision.kind of a screener's vote (``screening.agreement.VOTE``; reports import store only).
_VOTE = "vote"


def export(ctx: AppContext, kind: str, out: Path | None) -> list[Path]:
    """Write the ``kind`` export to ``out`` (stdout when None); return the files written."""
    if kind not in KINDS:
        raise ValidationError(f"unknown export {kind!r}", hint=f"choose one of {', '.join(KINDS)}")
    if kind == "metafor":
        return _export_metafor(ctx, out)
    dual = ctx.settings.dual_screening
    # Imported here: the summary of findings reads pooled snapshots (numpy, scipy behind it),
    # which the record exports do not need to load.
    from reports.export_sof import sof_markdown, write_sof_csv

    writers: dict[str, Callable[[Session, IO[str]], None]] = {
        "csv": partial(write_records_csv, dual=dual), "ris": write_ris,
        "prisma": partial(write_prisma_csv, dual=dual), "sof": write_sof_csv}
    writer = writers[kind]
    with ctx.sessions() as session:
        if out is None:
            writer(session, sys.stdout)
            sys.stdout.flush()
            return []
        if out.is_dir():
            out = out / f"{_STEM.get(kind, 'records')}.{_ext(kind)}"
        with _open_out(out) as fh:
            writer(session, fh)
        written = [out]
        markdown = {"prisma": lambda: prisma_markdown(prisma_counts(session, dual=dual)),
                    "sof": lambda: sof_markdown(session)}.get(kind)
        if markdown is not None:  # the human-readable table beside the CSV
            summary = out.with_suffix(".md")
            with _open_out(summary) as fh:
                fh.write(markdown())
            written.append(summary)
    log.info("export %s written to %s", kind, ", ".join(str(p) for p in written))
    return written


# ----------------------------------------------------------------------------- csv
def screening_state(record: Any) -> str:
    """Where a record stands in the review, in one word or two."""
    if record.deleted:
        return "deleted"
    if record.decision:
        return {"include": "included", "exclude": "excluded"}.get(record.decision,
                                                                  record.decision)
    if record.score is None:
        return "unscored"
    return "flagged" if record.flagged else "not flagged"


_CSV_SOURCE = (Record.pmid, Record.title, Record.journal, Record.year, Record.status,
               Record.score, Record.decision, Record.flagged, Record.deleted, Record.retracted,
               Record.doi, Record.publication_types, Record.nct_ids, Record.first_seen_at)


def dual_state(decision: str | None, screeners: int) -> str:
    """Where a record stands under dual screening: the rule of
    ``screening.agreement.record_state``, restated here because reports import store only
    (a test keeps the two equal)."""
    if decision is not None:
        return "resolved"
    if screeners >= 2:
        return "conflict"
    return "awaiting_second" if screeners == 1 else "unscreened"


def _screeners_between(session: Session, first: int, last: int) -> dict[int, int]:
    """How many different people voted on each record with first <= PMID <= last (records
    nobody voted on are left out). A range, not an IN list: one page of the export."""
    rows = session.exec(
        select(Decision.pmid, func.count(func.distinct(Decision.user_id)))
        .where(col(Decision.kind) == _VOTE, col(Decision.user_id).is_not(None),
               col(Decision.pmid) >= first, col(Decision.pmid) <= last)
        .group_by(col(Decision.pmid))).all()
    return {int(pmid): int(n) for pmid, n in rows}


def _screened_twice() -> Any:
    """SELECT of the PMIDs that two or more different people voted on."""
    return (select(Decision.pmid)
            .where(col(Decision.kind) == _VOTE, col(Decision.user_id).is_not(None))
            .group_by(col(Decision.pmid))
            .having(func.count(func.distinct(Decision.user_id)) >= 2))


def write_records_csv(session: Session, fh: IO[str], *, dual: bool = False) -> None:
    """One row per record, ordered by PMID; ``dual`` adds each record's dual-screening state
    and number of screeners."""
    writer = csv.writer(fh)  # QUOTE_MINIMAL: commas, quotes and newlines are quoted
    writer.writerow(DUAL_CSV_COLUMNS if dual else CSV_COLUMNS)
    # Plain column rows, not ORM objects: building entities cost ~4x the whole export.
    last = -1
    while True:
        page: Sequence[Any] = session.exec(  # Rows of the selected columns
            select(*_CSV_SOURCE).where(col(Record.pmid) > last)  # type: ignore[call-overload]
            .order_by(col(Record.pmid)).limit(_BATCH)).all()
        if not page:
            return
        screeners = _screeners_between(session, page[0].pmid, page[-1].pmid) if dual else {}
        for r in page:
            row = [
                r.pmid, r.title, r.journal or "", "" if r.year is None else r.year,
                r.status or "", "" if r.score is None else f"{r.score:.6g}", r.decision or "",
                screening_state(r), _bool(r.flagged), _bool(r.deleted), _bool(r.retracted),
                r.doi or "", "; ".join(r.publication_types or []), "; ".join(r.nct_ids or []),
                r.first_seen_at.isoformat() if r.first_seen_at else "",
            ]
            if dual:
                n = screeners.get(r.pmid, 0)
                row += [dual_state(r.decision, n), n]
            writer.writerow(row)
        last = page[-1].pmid


# ----------------------------------------------------------------------------- ris
def write_ris(session: Session, fh: IO[str], *, include_deleted: bool = False) -> None:
    """RIS entries (tags per the RIS specification; one value per line)."""
    for r in _records(session):
        if r.deleted and not include_deleted:
            continue
        lines: list[tuple[str, object]] = [("TY", "JOUR"), ("TI", r.title)]
        lines += [("AU", a) for a in (r.authors or [])]
        lines += [("PY", r.year), ("T2", r.journal), ("J2", r.journal_abbrev), ("DO", r.doi),
                  ("AB", r.abstract), ("AN", r.pmid), ("DB", "PubMed"),
                  ("UR", f"https://pubmed.ncbi.nlm.nih.gov/{r.pmid}/")]
        lines += [("LA", lang) for lang in (r.language or [])]
        mesh = [m.get("descriptor") for m in (r.mesh or []) if isinstance(m, dict)]
        lines += [("KW", k) for k in [*(r.keywords or []), *mesh]]
        lines += [("M3", pt) for pt in (r.publication_types or [])]
        notes = [f"mmlr screening: {screening_state(r)}"]
        if r.retracted:
            notes.append("RETRACTED")
        lines.append(("N1", "; ".join(notes)))
        for tag, value in lines:
            text = _one_line(value)
            if text:
                fh.write(f"{tag}  - {text}\n")
        fh.write("ER  - \n\n")


# ----------------------------------------------------------------------------- prisma
CONFLICT_STAGE = "records in conflict awaiting resolution"


def prisma_counts(session: Session, *, dual: bool = False) -> list[tuple[str, int, str]]:
    """(stage, count, note) of the PRISMA 2020 flow for database searches. Records screened
    = excluded (automation, curators) + awaiting + included; with ``dual`` the records in
    conflict get a line of their own, taken out of the awaiting ones."""
    def count(*where: Any, model: Any = Record) -> int:
        stmt = select(func.count()).select_from(model)
        for cond in where:
            stmt = stmt.where(cond)
        return int(session.exec(stmt).one())

    live = col(Record.deleted).is_(False)
    undecided = col(Record.decision).is_(None)
    identified = count()
    revisions = count(model=RecordRevision)
    deleted = count(col(Record.deleted).is_(True))
    screened = identified - deleted
    included = count(live, col(Record.decision) == "include")
    excluded_curators = count(live, col(Record.decision) == "exclude")
    maybe = count(live, col(Record.decision) == "maybe")
    # A low-score record somebody voted on is not excluded by automation: under dual
    # screening it waits for a second vote or a resolution (and a curator may have said
    # include), so it counts as awaiting screening.
    voted = col(Record.pmid).in_(select(Decision.pmid))
    excluded_auto = count(live, undecided, col(Record.score).is_not(None),
                          col(Record.flagged).is_(False), ~voted)
    awaiting = count(live, undecided) - excluded_auto
    awaiting_note = ("flagged or unscored without a decision, records with votes but no "
                     "resolved decision yet (dual screening), plus 'maybe' decisions")
    conflicts = 0
    conflict_line: list[tuple[str, int, str]] = []
    if dual:
        # Every conflict has votes, so none is excluded by automation: the line is carved out
        # of the awaiting records and the flow still adds up.
        conflicts = count(live, undecided, col(Record.pmid).in_(_screened_twice()))
        conflict_line = [(CONFLICT_STAGE, conflicts,
                          "the screeners disagree; an admin or a third curator resolves it")]
        awaiting_note = ("flagged or unscored without a vote, records with one vote awaiting "
                         "the second screener, plus 'maybe' decisions")
    return [
        ("records identified (PubMed)", identified, "distinct PMIDs retrieved"),
        ("duplicates removed", revisions,
         "later versions of a PMID already held (kept as revisions of one record)"),
        ("records removed before screening (deleted citations)", deleted,
         "PubMed DeleteCitation; curator work on them is kept"),
        ("records screened", screened, "identified minus deleted"),
        ("records excluded by automation", excluded_auto,
         "scored below the flag threshold, no curator decision"),
        ("records excluded by curators", excluded_curators, "latest decision: exclude"),
        *conflict_line,
        ("records awaiting screening", awaiting + maybe - conflicts, awaiting_note),
        ("records included", included, "latest decision: include"),
        ("trials included", count(model=Trial), "randomised trials in the evidence base"),
        ("reports of included trials", count(model=TrialReport),
         "publications linked to those trials"),
    ]


def write_prisma_csv(session: Session, fh: IO[str], *, dual: bool = False) -> None:
    writer = csv.writer(fh)
    writer.writerow(("stage", "count", "note"))
    writer.writerows(prisma_counts(session, dual=dual))


def prisma_markdown(counts: list[tuple[str, int, str]]) -> str:
    n = {stage: value for stage, value, _ in counts}
    lines = [
        "# PRISMA 2020 flow (mmlr)",
        "",
        "| stage | n | note |",
        "| --- | ---: | --- |",
        *(f"| {stage} | {value} | {note} |" for stage, value, note in counts),
        "",
        f"Identification: {n['records identified (PubMed)']} records from PubMed "
        f"({n['duplicates removed']} duplicate retrievals merged, "
        f"{n['records removed before screening (deleted citations)']} deleted citations "
        "removed).",
        f"Screening: {n['records screened']} screened; "
        f"{n['records excluded by automation']} excluded by the classifier, "
        f"{n['records excluded by curators']} by curators; "
        f"{n['records awaiting screening']} awaiting"
        + (f", {n[CONFLICT_STAGE]} in conflict awaiting resolution." if CONFLICT_STAGE in n
           else "."),
        f"Included: {n['records included']} records; {n['trials included']} trials with "
        f"{n['reports of included trials']} reports.",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- metafor
def _export_metafor(ctx: AppContext, out: Path | None) -> list[Path]:
    try:
        from reports.export_metafor import write_metafor_export
    except ImportError:
        raise NotFoundError(
            "the metafor export (reports.export_metafor) is not part of this installation",
            hint="reinstall mmlr",
        ) from None
    return list(write_metafor_export(ctx, out))  # None: its own default folder


# ----------------------------------------------------------------------------- helpers
def _records(session: Session) -> Iterator[Record]:
    # Keyset pages keep memory flat and behave the same on SQLite and PostgreSQL.
    last = -1
    while True:
        page = session.exec(select(Record).where(col(Record.pmid) > last)
                            .order_by(col(Record.pmid)).limit(_BATCH)).all()
        if not page:
            return
        yield from page
        last = page[-1].pmid
        session.expunge_all()


@contextmanager
def _open_out(path: Path) -> Iterator[IO[str]]:
    """Write to ``path`` via a temporary file, so a failed export never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = tmp.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise ValidationError(f"cannot write the export to {path}: {exc.strerror}",
                              hint="choose a writable --out path") from None
    try:
        with fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _one_line(value: Any) -> str:
    if value is None:
        return ""
    return " ".join(str(value).split())


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _ext(kind: str) -> str:
    return {"ris": "ris"}.get(kind, "csv")
