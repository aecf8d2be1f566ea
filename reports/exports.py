"""``mmlr export {ris,csv,prisma,metafor,sof,screening}``: records and evidence for other tools.

* ``csv`` — one row per record (RFC 4180 quoting, UTF-8): ``pmid, title, journal, year,
  status, score, decision`` (DESIGN §3) then ``screening, flagged, deleted, retracted, doi,
  publication_types, nct_ids, first_seen_at, fulltext, fulltext_reason, volume, issue,
  pages``. ``status`` is PubMed's indexing status (Publisher, In-Process, MEDLINE…);
  ``volume``, ``issue`` and ``pages`` are as PubMed prints them ("3003-15"; an article number
  such as "e0227333" when there is no pagination; empty online first); ``screening`` is where the
  record stands in the review (deleted, included, excluded, maybe, flagged, not flagged,
  unscored); ``fulltext`` is the full-text verdict of a record included (or marked maybe)
  at title/abstract screening, a report sought for retrieval (not one of the previous
  version's reports: :func:`store.fulltext.is_sought`) (``eligible``, ``excluded``,
  ``not_retrieved``) or, until it is settled, its state (``awaiting``, and with two
  assessors ``awaiting_second`` or ``conflict``); empty for the others; and
  ``fulltext_reason`` the reason of an exclusion (its text, as PRISMA reports it; for
  "other reason" the assessor's note saying which, ``other reason: …``): filtered
  on ``excluded``, the list of reports excluded with reasons. Under dual screening two more
  columns follow: ``screening_state`` (``unscreened``, ``awaiting_second``,
  ``conflict``, ``resolved``: the values of the API's ``screening`` field) and ``screeners``
  (how many people voted on the record).
* ``ris`` — RIS for reference managers (Zotero, EndNote), one entry per record not deleted
  from PubMed: its type from PubMed's (``JOUR``; ``BOOK``/``CHAP`` for book records, ``CONF``
  for "Congress", ``UNPB`` for preprints: :func:`ris_type`), authors as "Last, I.", the
  publication date as ``DA``, volume, issue and pages as ``VL``/``IS``/``SP``/``EP``
  (:func:`ris_locators`), a note (``N1``) of where the review left it (the title/abstract
  decision and, for a report sought, its full-text verdict), lines ending CR LF as the
  specification asks.
* ``prisma`` — the PRISMA 2020 flow counts as CSV (``stage, count, note``) plus a Markdown
  summary and the flow diagram beside it (``prisma.csv`` / ``prisma.md`` / ``prisma.svg``,
  drawn by ``reports.prisma_diagram``); under dual screening with a line for the records in
  conflict awaiting resolution. The diagram adds what changed since the last digest where a
  stored timestamp says so (:func:`prisma_since`).
* ``metafor`` — delegated to :func:`reports.export_metafor.write_metafor_export`.
* ``sof`` — the summary of findings, one row per pooled analysis (``reports.export_sof``), as
  CSV plus a Markdown table beside it (``sof.csv`` / ``sof.md``).
* ``screening`` — the review's own screening decisions as a labelled dataset in the schema of
  ``mmlr simulate`` (and ASReview): ``record_id`` (the PMID), ``pmid, doi, title, abstract,
  year, keywords, mesh, publication_types, journal, label_included`` for every record not
  deleted whose decision is include (1) or exclude (0); undecided and "maybe" records are
  left out. A team can replay its own review with ``mmlr simulate screening.csv
  --stop-recall 0.95`` to see how the classifier and the stopping test did on it.

``out=None`` writes csv/ris/prisma (CSV) to stdout and returns ``[]``; otherwise the written
files are returned. Rows are streamed from the database, so a large review does not have to
fit in memory.
"""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import IO, Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from reports.outfile import check_target, ensure_folder, open_out
from reports.words import plural
from store.audit import seed_trial_ids
from store.citation import article_location, page_range
from store.context import AppContext
from store.errors import NotFoundError, ValidationError
from store.fulltext import (
    AWAITING,
    PASSED,
    FullTextCounts,
    Outcome,
    count_outcomes,
    fulltext_counts,
    fulltext_state,
    is_sought,
    link_problem,
    outcomes,
    reason_label,
    sought_conditions,
    sought_pmids,
    verdict_words,
)
from store.models import (
    Decision,
    Digest,
    Record,
    RecordRevision,
    Trial,
    TrialReport,
)
from store.screening_pool import in_screening_pool, previous_report_pmids
from store.spreadsheet import EXCEL_BOM, spreadsheet_row

log = logging.getLogger(__name__)

KINDS = ("ris", "csv", "prisma", "metafor", "sof", "screening")
CSV_COLUMNS = ("pmid", "title", "journal", "year", "status", "score", "decision", "screening",
               "flagged", "deleted", "retracted", "doi", "publication_types", "nct_ids",
               "first_seen_at", "fulltext", "fulltext_reason", "volume", "issue", "pages")
#: Appended under dual screening (single-screening exports keep exactly ``CSV_COLUMNS``).
DUAL_CSV_COLUMNS = (*CSV_COLUMNS, "screening_state", "screeners")
_BATCH = 1000
SCREENING_COLUMNS = ("record_id", "pmid", "doi", "title", "abstract", "year", "keywords",
                     "mesh", "publication_types", "journal", "label_included")
# File name in an --out folder (else "records").
_STEM = {"prisma": "prisma", "sof": "sof", "screening": "screening"}
_OUT_HINT = ("--out takes a new file, a regular file to replace or a folder; without --out "
             "the export goes to stdout")
# Files written beside the CSV (same name, these suffixes).
_BESIDE = {"prisma": (".md", ".svg"), "sof": (".md",)}
# Decision.kind of a screener's vote (``screening.agreement.VOTE``; reports import store only).
_VOTE = "vote"


#: ``--only`` of the record exports (ris, csv): which records, in words for the help and docs.
SUBSETS: dict[str, str] = {
    "included": "passed title/abstract screening (include or maybe), not deleted, not a "
                "report of the previous version of the review: the reports sought for "
                "retrieval",
    "eligible": "full text settled as eligible",
    "reports": "linked to a trial of the review (its reports: the included studies' "
               "references)",
}
_SUBSET_KINDS = ("ris", "csv")


def subset_pmids(session: Session, only: str) -> set[int]:
    """The PMIDs of one of :data:`SUBSETS`."""
    if only == "included":
        return set(sought_pmids(session))
    if only == "eligible":
        settled = outcomes(session, sought_pmids(session))
        return {pmid for pmid, o in settled.items() if o.verdict == "eligible"}
    if only == "reports":
        return {int(p) for p in session.exec(select(TrialReport.pmid).where(
            col(TrialReport.pmid).is_not(None)).distinct()) if p is not None}
    raise ValidationError(f"--only {only!r} is not a subset of records",
                          hint=f"choose one of {', '.join(SUBSETS)}")


#: Whether the stopping test supports stopping (``screening.health.stopping_supported``):
#: passed in by the entry points, because reports import store only. Without one, the PRISMA
#: flow counts no record as excluded by automation.
StoppingCheck = Callable[[Session], bool]


def export(ctx: AppContext, kind: str, out: Path | None, *,
           stopping: StoppingCheck | None = None, folder: bool = False,
           only: str | None = None, excel: bool = False) -> list[Path]:
    """Write the ``kind`` export to ``out`` (stdout when None); return the files written.
    ``stopping`` decides the PRISMA flow's exclusions by automation (:func:`prisma_counts`);
    ``folder``: ``out`` names a folder (typed with a trailing slash), created if need be,
    never a file of that name; ``only`` keeps the record exports to one of :data:`SUBSETS`;
    ``excel`` starts each CSV with a byte order mark (:data:`store.spreadsheet.EXCEL_BOM`)."""
    if kind not in KINDS:
        raise ValidationError(f"unknown export {kind!r}", hint=f"choose one of {', '.join(KINDS)}")
    if only is not None and kind not in _SUBSET_KINDS:
        raise ValidationError(f"--only applies to the record exports, not to {kind!r}",
                              hint=f"use it with {' or '.join(_SUBSET_KINDS)}")
    if only is not None and only not in SUBSETS:
        raise ValidationError(f"--only {only!r} is not a subset of records",
                              hint=f"choose one of {', '.join(SUBSETS)}")
    if excel and (kind == "metafor" or _ext(kind) != "csv"):
        raise ValidationError(f"--excel applies to the CSV exports, not to {kind!r}",
                              hint="use it with csv, prisma, sof or screening")
    if kind == "metafor":
        return _export_metafor(ctx, out)
    dual = ctx.settings.dual_screening
    # Imported here: the summary of findings reads pooled snapshots (numpy, scipy behind it),
    # which the record exports do not need to load.
    from reports.export_sof import sof_markdown, write_sof_csv
    from reports.network_inputs import current_networks

    with ctx.sessions() as session:
        stops = kind == "prisma" and stopping is not None and stopping(session)
        pmids = None if only is None else subset_pmids(session, only)
        writers: dict[str, Callable[[Session, IO[str]], None]] = {
            "csv": partial(write_records_csv, dual=dual, pmids=pmids),
            "ris": partial(write_ris, pmids=pmids),
            "prisma": partial(write_prisma_csv, dual=dual, automation_stops=stops),
            "sof": write_sof_csv, "screening": write_screening_csv}
        writer = writers[kind]
        if excel:
            writer = partial(_with_bom, writer)
        if out is None:
            writer(session, sys.stdout)
            sys.stdout.flush()
            return []
        if folder and out is not None:
            ensure_folder(out, what="the export", hint=_OUT_HINT)
        if out.is_dir():
            out = out / f"{_STEM.get(kind, 'records')}.{_ext(kind)}"
        # Every file of the export is judged before the first is written: a link where the
        # .md should go must not leave a new CSV beside an old summary.
        for path in (out, *(out.with_suffix(s) for s in _BESIDE.get(kind, ()))):
            check_target(path, what="the export", hint=_OUT_HINT)
        with _open_out(out) as fh:
            writer(session, fh)
        written = [out]
        markdown = {"prisma": lambda: prisma_markdown(prisma_counts(
                        session, dual=dual, automation_stops=stops)),
                    "sof": lambda: sof_markdown(session, current_networks(
                        session, ctx.settings.analyses_file, ctx.settings.pool_method))
                    }.get(kind)
        if markdown is not None:  # the human-readable table beside the CSV
            summary = out.with_suffix(".md")
            with _open_out(summary) as fh:
                fh.write(markdown())
            written.append(summary)
        if kind == "prisma":  # and the flow diagram, as the /prisma page draws it
            diagram = out.with_suffix(".svg")
            with _open_out(diagram) as fh:
                fh.write(prisma_figure(session, dual=dual, automation_stops=stops))
            written.append(diagram)
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
               Record.doi, Record.publication_types, Record.nct_ids, Record.first_seen_at,
               Record.volume, Record.issue, Record.pages, Record.elocation)


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


def write_records_csv(session: Session, fh: IO[str], *, dual: bool = False,
                      pmids: Collection[int] | None = None) -> None:
    """One row per record, ordered by PMID; ``dual`` adds each record's dual-screening state
    and number of screeners; ``pmids`` keeps those records only (``--only``)."""
    writer = csv.writer(fh)  # QUOTE_MINIMAL: commas, quotes and newlines are quoted
    writer.writerow(DUAL_CSV_COLUMNS if dual else CSV_COLUMNS)
    previous = previous_report_pmids(session)
    # Plain column rows, not ORM objects: building entities cost ~4x the whole export.
    last = -1
    while True:
        page: Sequence[Any] = session.exec(  # Rows of the selected columns
            select(*_CSV_SOURCE).where(col(Record.pmid) > last)  # type: ignore[call-overload]
            .order_by(col(Record.pmid)).limit(_BATCH)).all()
        if not page:
            return
        last = page[-1].pmid
        if pmids is not None:
            page = [r for r in page if r.pmid in pmids]
            if not page:
                continue
        screeners = _screeners_between(session, page[0].pmid, page[-1].pmid) if dual else {}
        verdicts = outcomes(
            session, [r.pmid for r in page if is_sought(r, previous)])
        for r in page:
            row = [
                r.pmid, r.title, r.journal or "", "" if r.year is None else r.year,
                r.status or "", "" if r.score is None else f"{r.score:.6g}", r.decision or "",
                screening_state(r), _bool(r.flagged), _bool(r.deleted), _bool(r.retracted),
                r.doi or "", "; ".join(r.publication_types or []), "; ".join(r.nct_ids or []),
                r.first_seen_at.isoformat() if r.first_seen_at else "",
                *_fulltext_cells(is_sought(r, previous), verdicts.get(r.pmid)),
                r.volume or "", r.issue or "",
                article_location(r.pages, r.elocation, r.volume) or "",
            ]
            if dual:
                n = screeners.get(r.pmid, 0)
                row += [dual_state(r.decision, n), n]
            # Titles, journals and DOIs come from PubMed: a cell starting with "=" must
            # reach a panel's spreadsheet as text, not as a formula.
            writer.writerow(spreadsheet_row(row))


def _fulltext_cells(sought: bool, verdict: Outcome | None) -> list[str]:
    """``fulltext`` and ``fulltext_reason`` of one records-CSV row."""
    state, reason = fulltext_state(sought, verdict)
    return [state or "", (reason_words(verdict) if verdict is not None else
                          reason_label(reason)) if reason else ""]


def reason_words(o: Outcome) -> str:
    """The reason of a settled exclusion in words. "other reason (see the note)" would point
    at a note an export does not carry: for that one the reason is the assessor's note, on
    one line ("other reason: single-arm phase 2")."""
    if o.reason == "other" and o.row is not None and o.row.note:
        return f"other reason: {_one_line(o.row.note)}"
    return reason_label(o.reason)


# ----------------------------------------------------------------------------- screening
_LABELS = {"include": 1, "exclude": 0}


def write_screening_csv(session: Session, fh: IO[str]) -> None:
    """The decided records as a labelled screening dataset (module docstring), by PMID. The
    text columns are what the live classifier reads (``screening.service.record_document``),
    so a replay sees the same features; multi-valued columns are joined with "; "."""
    writer = csv.writer(fh)
    writer.writerow(SCREENING_COLUMNS)
    for r in _records(session):
        label = _LABELS.get(r.decision or "")
        if r.deleted or label is None:
            continue
        mesh = [str(m.get("descriptor", "")) for m in (r.mesh or []) if isinstance(m, dict)]
        writer.writerow(spreadsheet_row([
            r.pmid, r.pmid, r.doi, r.title, r.abstract, r.year, "; ".join(r.keywords or []),
            "; ".join(mesh), "; ".join(r.publication_types or []), r.journal, label]))


# ----------------------------------------------------------------------------- ris
#: The RIS specification (Research Information Systems, Reference Manager) ends every line
#: with a carriage return and a line feed; Zotero and EndNote read either, older importers
#: only this.
RIS_NEWLINE = "\r\n"
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"), start=1)}


def ris_type(record: Record) -> str:
    """The RIS reference type (TY) of a record, from what PubMed says it is.

    A reference manager files a reference by its type: a book record as a journal article
    gets a "journal" that is the book's title, and a conference report or a preprint is
    cited as a peer-reviewed paper. PubMed's book records (NCBI Bookshelf) are a whole book
    (its title is the book's) or a chapter of one; publication type "Congress" marks the
    report of a conference (CONF); "Preprint" a manuscript not yet peer reviewed (UNPB, the
    RIS "unpublished work"). Every other type (Review, Clinical Trial Protocol, Letter,
    Comment, Editorial, errata and retraction notices, …) is printed in a journal: JOUR.
    PubMed has no type for a meeting abstract, so RIS's ABST is never written."""
    if record.is_book:
        return "BOOK" if not record.journal or record.title == record.journal else "CHAP"
    types = set(record.publication_types or [])
    if "Preprint" in types:
        return "UNPB"
    if "Congress" in types:
        return "CONF"
    return "JOUR"


def ris_author(name: str) -> str:
    """One author as RIS wants it, "Last, Initials": "Ludwig H" → "Ludwig, H.",
    "McCarthy PL" → "McCarthy, P.L.", "van der Holt B" → "van der Holt, B.".

    The parsers store "Last Initials" (or a group's name): without the comma Zotero and
    EndNote take the whole text as a surname. Initials get their full stops, as the
    specification writes them, so "PL" is read as two initials rather than a first name.
    A name whose last word is not initials — a collective name ("Myeloma XI Study Group")
    or a surname alone — keeps its words and ends with a comma: the whole text is the
    surname (EndNote's mark of a corporate author), never split into first and last."""
    name = " ".join(name.split())
    last, _, initials = name.rpartition(" ")
    if last and initials.isalpha() and initials.isupper() and len(initials) <= 3:
        return f"{last}, {'.'.join(initials)}."
    return f"{name},"


def ris_date(pub_date: str | None) -> str | None:
    """PubMed's publication date as RIS's ``YYYY/MM/DD/other``: "2012 Mar 29" →
    "2012/03/29/", "2012 Mar" → "2012/03//", an ISO date likewise; a season or a range
    ("2012 Mar-Apr") keeps its words in the last part ("2012///Mar-Apr"); None when no year
    can be read."""
    text = " ".join((pub_date or "").split())
    iso = text.split("-")
    if len(iso) == 3 and all(part.isdigit() for part in iso) and len(iso[0]) == 4:
        return f"{iso[0]}/{iso[1].zfill(2)}/{iso[2].zfill(2)}/"
    year, _, rest = text.partition(" ")
    if not (len(year) == 4 and year.isdigit()):
        return None
    parts = rest.split(" ") if rest else []
    month = _MONTHS.get(parts[0]) if parts else None
    if parts and month is None:
        return f"{year}///{rest}"
    day = parts[1] if len(parts) > 1 else ""
    if len(parts) > 2 or (day and not day.isdigit()):
        return f"{year}///{rest}"
    if not month:
        return f"{year}///"
    return f"{year}/{month:02d}/{day.zfill(2) if day else ''}/"


def ris_locators(record: Record) -> list[tuple[str, object]]:
    """VL, IS, SP and EP: the volume and issue as printed, the pages with the end page written
    out ("3003-15" → SP 3003, EP 3015; a reference manager prints its own style from them).
    A numbered article without pagination has its article number as SP, as NLM itself
    records it; an online-first article (no volume yet) has no SP, its DOI locates it."""
    if record.pages and record.pages.strip():
        start, end = page_range(record.pages)
    else:
        # An article number is one identifier, never a range ("e00024-24" is not two pages).
        start, end = article_location(None, record.elocation, record.volume), None
    return [("VL", record.volume), ("IS", record.issue), ("SP", start), ("EP", end)]


def fulltext_words(o: Outcome) -> str:
    """Where the full text left a report, in words: "eligible", "excluded: not a randomised
    trial", "awaiting assessment"…, an exclusion's reason as :func:`reason_words` gives it."""
    if o.reason:
        return f"excluded: {reason_words(o)}"
    # VERDICTS says "full text not retrieved", which after "full text:" would say it twice
    return "not retrieved" if o.verdict == "not_retrieved" else verdict_words(o)


def write_ris(session: Session, fh: IO[str], *, include_deleted: bool = False,
              pmids: Collection[int] | None = None) -> None:
    """RIS entries (tags per the RIS specification; one value per line); ``pmids`` keeps
    those records only (``--only``)."""
    verdicts: dict[int, Outcome] = {}
    previous = previous_report_pmids(session)
    for r in _records(session):
        if (r.deleted and not include_deleted) or (pmids is not None and r.pmid not in pmids):
            continue
        sought = is_sought(r, previous)
        if r.pmid not in verdicts and sought:
            # The full-text verdicts of the records sought from here on, a page at a time
            # (the records come in PMID order).
            verdicts = outcomes(session, session.exec(
                select(Record.pmid).where(col(Record.pmid) >= r.pmid, *sought_conditions())
                .order_by(col(Record.pmid)).limit(_BATCH)).all())
        kind = ris_type(r)
        lines: list[tuple[str, object]] = [("TY", kind), ("TI", r.title)]
        lines += [("AU", ris_author(a)) for a in (r.authors or []) if a.strip()]
        lines += [("PY", r.year), ("DA", ris_date(r.pub_date))]
        # T2 is the journal of an article (or a conference report, a preprint's server) and
        # the book of a chapter; a whole book has none (T2 would be its series).
        if kind != "BOOK":
            lines.append(("T2", r.journal))
        if kind not in ("BOOK", "CHAP"):
            lines.append(("J2", r.journal_abbrev))
        if kind != "BOOK":
            lines += ris_locators(r)
        lines += [("DO", r.doi), ("AB", r.abstract), ("AN", r.pmid), ("DB", "PubMed"),
                  ("UR", f"https://pubmed.ncbi.nlm.nih.gov/{r.pmid}/")]
        lines += [("LA", lang) for lang in (r.language or [])]
        mesh = [m.get("descriptor") for m in (r.mesh or []) if isinstance(m, dict)]
        lines += [("KW", k) for k in [*(r.keywords or []), *mesh]]
        lines += [("M3", pt) for pt in (r.publication_types or [])]
        notes = [f"mmlr screening: {screening_state(r)}"]
        if sought:
            # "included" is the title/abstract decision: the full text may have excluded it.
            notes.append(f"full text: {fulltext_words(verdicts.get(r.pmid, AWAITING))}")
        if r.retracted:
            notes.append("RETRACTED")
        lines.append(("N1", "; ".join(notes)))
        for tag, value in lines:
            text = _one_line(value)
            if text:
                fh.write(f"{tag}  - {text}{RIS_NEWLINE}")
        fh.write(f"ER  - {RIS_NEWLINE}{RIS_NEWLINE}")


# ----------------------------------------------------------------------------- prisma
# Stage names: the CSV's first column, and the keys the Markdown summary and the diagram
# (``reports.prisma_diagram``) look the numbers up by. What each one counts is said in
# docs/curation.md ("The PRISMA flow"); the identities that tie them together are
# :func:`prisma_identities`.
IDENTIFIED_STAGE = "records identified (PubMed)"
#: A note on IDENTIFIED_STAGE, not a box of the flow: nothing is subtracted for it.
REVISED_STAGE = "of the records identified: revised in PubMed after first retrieval"
DUPLICATES_STAGE = "duplicate records removed"
#: PRISMA 2020's "records marked as ineligible by automation tools": the records nobody
#: screened because the stopping rule let screening stop (0 until it does).
AUTOMATION_STAGE = "records not screened (screening stopped by the stopping rule)"
DELETED_STAGE = "records removed for other reasons (deleted from PubMed)"
SCREENED_STAGE = "records screened"
CURATORS_STAGE = "records excluded by curators"
CONFLICT_STAGE = "records in conflict awaiting resolution"
AWAITING_STAGE = "records awaiting screening"
#: A part of AWAITING_STAGE (not a further box of the sum): the records the stopping rule
#: would leave unscreened, while the stopping test does not support stopping.
BELOW_THRESHOLD_STAGE = "of the records awaiting screening: below the flag threshold"
INCLUDED_STAGE = "records included"
TRIALS_STAGE = "trials included"
REPORTS_STAGE = "reports of included trials"
# Parts of the two above (PRISMA 2020's flow for updated reviews): the previous version of the
# review is the seed evidence (docs/seed-evidence.md), the rest came in through this review.
PREVIOUS_TRIALS_STAGE = "of the trials included: in the previous version of the review"
NEW_TRIALS_STAGE = "of the trials included: new"
PREVIOUS_REPORTS_STAGE = "of the reports: in the previous version of the review"
NEW_REPORTS_STAGE = "of the reports: new"
#: A part of NEW_REPORTS_STAGE: new reports of trials of the previous version (the rest are
#: the reports of the new trials).
NEW_REPORTS_OF_PREVIOUS_STAGE = "of the new reports: of trials in the previous version"
# The full-text stage (``store.fulltext``): the records included above are the reports sought.
NOT_RETRIEVED_STAGE = "reports not retrieved"
FULLTEXT_AWAITING_STAGE = "reports awaiting full-text assessment"
ASSESSED_STAGE = "reports assessed for eligibility"
FULLTEXT_EXCLUDED_STAGE = "reports excluded after full-text assessment"
#: One line per reason of ``store.fulltext.REASONS``: this prefix, then the reason's text
#: (:func:`prisma_reason`).
EXCLUDED_REASON_PREFIX = "reports excluded: "
ELIGIBLE_STAGE = "reports eligible after full-text assessment"
#: A part of ELIGIBLE_STAGE: eligible reports no trial has yet, so not among the reports of
#: included studies (``store.fulltext.link_problem``'s "unlinked").
ELIGIBLE_UNLINKED_STAGE = "of the reports eligible: not linked to a trial yet"

#: The stopping rule that may let curators stop screening (``screening.health``'s
#: ``may_stop``), as the flow names it.
STOPPING_RULE = ("the prioritised-order stopping test (Callaghan & Müller-Hansen 2020) on the "
                 "classifier's ranking")


def _automation_note(automation_stops: bool, stopped: int) -> str:
    """The note of the records-not-screened line. With nothing below the flag threshold left
    unread (an empty review, or every such record read by a person) the stopping test passes
    trivially, and saying it "supports stopping" over a count of 0 would read as a finding."""
    if not automation_stops:
        return (f"none: {STOPPING_RULE} does not support stopping yet, so the records below "
                "the flag threshold are awaiting screening (the classifier ranks records, it "
                "never excludes one)")
    if not stopped:
        return "none: no record below the flag threshold is left without a curator decision"
    return (f"PRISMA 2020's 'marked as ineligible by automation tools': no person read them; "
            f"screening stopped under {STOPPING_RULE}, which supports stopping, and they rank "
            "below the classifier's flag threshold")


def prisma_counts(session: Session, *, dual: bool = False,
                  automation_stops: bool = False) -> list[tuple[str, int, str]]:
    """(stage, count, note) of the PRISMA 2020 flow for database searches; the identities
    between the counts are :func:`prisma_identities`.

    A PubMed record is one ``Record`` row, keyed by its PMID, so it counts once among the
    records identified however many searches or polls returned it and however many versions
    PubMed published of it (those are :data:`REVISED_STAGE`, a note: a newer version of a
    record held is neither a new record nor a duplicate). PubMed is the only database
    searched; the one other source of reports is the previous version of the review (the
    seed evidence), so the duplicates removed are the records whose PMID is one of its
    reports (:func:`previous_report_pmids`): already included, they take no further part in
    the flow (every count below leaves them out), and the last box counts them among the
    previous version's reports.

    Removed before screening: the records deleted from PubMed, and, with
    ``automation_stops`` (the stopping test supports stopping: the entry points pass
    ``screening_health(...)["may_stop"]``, since reports import store only), the undecided
    records scored below the flag threshold that nobody voted on: screening stopped before a
    person read them (:data:`AUTOMATION_STAGE`). Until then they are awaiting screening, and
    :data:`BELOW_THRESHOLD_STAGE` says how many of those they are.

    The records awaiting a screening decision (a living review's backlog) branch off before
    the records screened, which are those a person screened: excluded by curators +
    included; with ``dual`` the records in conflict (screened twice, the screeners disagree)
    get a line of their own, taken out of the awaiting ones and counted as screened."""
    def count(*where: Any, model: Any = Record) -> int:
        return _count(session, *where, model=model)

    previous = previous_report_pmids(session)
    # The records in the flow: those not removed as the previous version's reports, which
    # every count below leaves out (the screening pool, as the queue and health count it).
    in_flow = in_screening_pool()
    live = col(Record.deleted).is_(False), in_flow
    undecided = col(Record.decision).is_(None)
    identified = count()  # distinct PMIDs: the table's key
    revised = count(col(Record.pmid).in_(select(RecordRevision.pmid)))
    versions = count(model=RecordRevision)
    duplicates = identified - count(in_flow)
    deleted = count(col(Record.deleted).is_(True), in_flow)
    included = count(*live, col(Record.decision).in_(PASSED))
    excluded_curators = count(*live, col(Record.decision) == "exclude")
    # A low-score record somebody voted on is not left unscreened: under dual screening it
    # waits for a second vote or a resolution (and a curator may have said include), so it
    # counts as awaiting screening.
    voted = col(Record.pmid).in_(select(Decision.pmid))
    below_threshold = count(*live, undecided, col(Record.score).is_not(None),
                            col(Record.flagged).is_(False), ~voted)
    not_screened = below_threshold if automation_stops else 0
    awaiting = count(*live, undecided) - not_screened
    awaiting_note = ("flagged or unscored without a decision, records with votes but no "
                     "resolved decision yet (dual screening): a living review's backlog")
    conflicts = 0
    conflict_line: list[tuple[str, int, str]] = []
    if dual:
        # Every conflict has votes, so none is left unscreened by the stopping rule: the line
        # is carved out of the awaiting records and the flow still adds up.
        conflicts = count(*live, undecided, col(Record.pmid).in_(_screened_twice()))
        conflict_line = [(CONFLICT_STAGE, conflicts,
                          "screened by both screeners, who disagree; an admin or a third "
                          "curator resolves it")]
        awaiting_note = ("flagged or unscored without a vote, records with one vote awaiting "
                         "the second screener: a living review's backlog, not screened yet")
    # The reports sought for retrieval and their full-text outcomes (read once: the full-text
    # lines and the eligible reports not linked yet both need them).
    sought = outcomes(session, [p for p in sought_pmids(session) if p not in previous])
    # Screened: what a person has screened (decided, or in conflict under dual screening);
    # the records awaiting a decision branch off before it, as those removed do.
    screened = identified - duplicates - not_screened - deleted - (awaiting - conflicts)
    return [
        (IDENTIFIED_STAGE, identified,
         "distinct PMIDs stored from PubMed searches and fetches: each record once, however "
         "many searches or polls returned it; PubMed is the only database searched, no "
         "register is"),
        (REVISED_STAGE, revised,
         f"a note, not a box: records PubMed revised after mmlr first stored them "
         f"({plural(versions, 'earlier version')} kept); each is still one record"),
        (DUPLICATES_STAGE, duplicates,
         "records whose PMID is a report of the previous version of the review (the seed "
         "evidence): the same report, already included, counted in the last box. A PMID "
         "returned again by PubMed is the same record, merged on retrieval and never counted "
         "twice; two PMIDs of one report are not detected: both are screened"),
        (AUTOMATION_STAGE, not_screened, _automation_note(automation_stops, not_screened)),
        (DELETED_STAGE, deleted, "PubMed DeleteCitation; curator work on them is kept"),
        (AWAITING_STAGE, awaiting - conflicts, awaiting_note),
        (BELOW_THRESHOLD_STAGE, 0 if automation_stops else below_threshold,
         "of the records awaiting screening, those scored below the flag threshold and not "
         "read by a person; counted as not screened once the stopping test supports stopping"),
        (SCREENED_STAGE, screened,
         "records a person screened: identified minus those removed before screening and "
         "those awaiting; = excluded by curators + " + ("in conflict + " if dual else "")
         + "included"),
        (CURATORS_STAGE, excluded_curators,
         "latest decision: exclude (every exclusion is a person's; none by automation tools)"),
        *conflict_line,
        (INCLUDED_STAGE, included,
         "latest decision: include, or maybe (the full text decides); the reports sought for "
         "retrieval"),
        *_fulltext_lines(count_outcomes(sought)),
        (ELIGIBLE_UNLINKED_STAGE, _eligible_unlinked(session, sought),
         "a part of the eligible reports: no trial has them yet, so they are not among the "
         "reports of included studies below (their data await extraction)"),
        *_included_lines(session),
    ]


#: Each stage made of parts: (whole, parts). Stages named by EXCLUDED_REASON_PREFIX stand
#: for every reason line.
_IDENTITIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (IDENTIFIED_STAGE, (DUPLICATES_STAGE, AUTOMATION_STAGE, DELETED_STAGE, AWAITING_STAGE,
                        SCREENED_STAGE)),
    (SCREENED_STAGE, (CURATORS_STAGE, CONFLICT_STAGE, INCLUDED_STAGE)),
    (INCLUDED_STAGE, (NOT_RETRIEVED_STAGE, FULLTEXT_AWAITING_STAGE, ASSESSED_STAGE)),
    (ASSESSED_STAGE, (FULLTEXT_EXCLUDED_STAGE, ELIGIBLE_STAGE)),
    (FULLTEXT_EXCLUDED_STAGE, (EXCLUDED_REASON_PREFIX,)),
    (TRIALS_STAGE, (PREVIOUS_TRIALS_STAGE, NEW_TRIALS_STAGE)),
    (REPORTS_STAGE, (PREVIOUS_REPORTS_STAGE, NEW_REPORTS_STAGE)),
)


def prisma_identities(counts: Sequence[tuple[str, int, str]]) -> list[tuple[str, int, int]]:
    """Each box of the flow that is the sum of others, as (the sum in words, the box's
    count, the sum of its parts): the two numbers are equal in a flow that closes. Stages
    absent from ``counts`` (no conflicts under single screening, no full-text stage in old
    counts) count 0; the notes (the "of the …" parts of one box) are in no sum."""
    n = {stage: value for stage, value, _ in counts}
    reasons = sum(v for stage, v in n.items() if stage.startswith(EXCLUDED_REASON_PREFIX))
    out = []
    for whole, parts in _IDENTITIES:
        if whole not in n:
            continue
        total = sum(reasons if p == EXCLUDED_REASON_PREFIX else n.get(p, 0) for p in parts)
        words = " + ".join("the reasons" if p == EXCLUDED_REASON_PREFIX else p
                           for p in parts if p == EXCLUDED_REASON_PREFIX or p in n)
        out.append((f"{whole} = {words}", n[whole], total))
    return out


def _eligible_unlinked(session: Session, sought: Mapping[int, Outcome]) -> int:
    """The eligible reports of ``sought`` (PMID -> full-text outcome) no trial has
    (``store.fulltext.link_problem``: "unlinked")."""
    linked = {int(p) for p in session.exec(select(TrialReport.pmid)) if p is not None}
    return sum(1 for pmid, o in sought.items()
               if link_problem(o, linked=pmid in linked) == "unlinked")


def _included_lines(session: Session) -> list[tuple[str, int, str]]:
    """The included studies and their reports, each split into the previous version's (the
    seed evidence's trials, and the reports it gave them) and the new ones (trials added
    since; reports a curator linked, to a new trial or as a later report of an earlier one)."""
    previous_ids = seed_trial_ids(session)
    trials = _count(session, model=Trial)
    reports = _count(session, model=TrialReport)
    previous_trials = (_count(session, col(Trial.id).in_(previous_ids), model=Trial)
                       if previous_ids else 0)
    # Seed reports carry the source key of the reference table; a curator's link has none.
    previous_reports = (_count(session, col(TrialReport.trial_id).in_(previous_ids),
                               col(TrialReport.source_key).is_not(None), model=TrialReport)
                        if previous_ids else 0)
    of_previous_trials = (_count(session, col(TrialReport.trial_id).in_(previous_ids),
                                 model=TrialReport) if previous_ids else 0)
    return [
        (TRIALS_STAGE, trials, "randomised trials in the evidence base"),
        (PREVIOUS_TRIALS_STAGE, previous_trials,
         "the seed evidence the review started from (docs/seed-evidence.md)"),
        (NEW_TRIALS_STAGE, trials - previous_trials, "trials added since"),
        (REPORTS_STAGE, reports, "publications linked to those trials"),
        (PREVIOUS_REPORTS_STAGE, previous_reports, "the seed evidence's reports"),
        (NEW_REPORTS_STAGE, reports - previous_reports,
         "reports linked since: of new trials, or later reports of earlier trials"),
        (NEW_REPORTS_OF_PREVIOUS_STAGE, of_previous_trials - previous_reports,
         "a part of the new reports: later reports of the previous version's trials (the "
         "rest are the reports of the new trials)"),
    ]


def _fulltext_lines(ft: FullTextCounts) -> list[tuple[str, int, str]]:
    """The full-text stage's PRISMA lines; every reason has its line, 0 or not, so the CSV
    has the same rows from one export to the next."""
    return [
        (NOT_RETRIEVED_STAGE, ft.not_retrieved, "full text could not be obtained"),
        (FULLTEXT_AWAITING_STAGE, ft.awaiting,
         "included, full-text assessment not settled yet" + (
             f" ({ft.awaiting_second} awaiting a second assessor, {ft.conflicts} in conflict)"
             if ft.awaiting_second or ft.conflicts else "")),
        (ASSESSED_STAGE, ft.assessed, "eligible plus excluded after reading the full text"),
        (FULLTEXT_EXCLUDED_STAGE, ft.excluded_total, "the sum of the reasons below"),
        *((f"{EXCLUDED_REASON_PREFIX}{prisma_reason(code)}", n, _reason_note(code))
          for code, n in ft.excluded.items()),
        (ELIGIBLE_STAGE, ft.eligible, "settled full-text verdict: eligible"),
    ]


def prisma_reason(code: str) -> str:
    """A reason for exclusion as the PRISMA flow names it: its words, but "other reasons"
    for "other reason (see the note)" — a flow diagram in a paper has no note to see."""
    return "other reasons" if code == "other" else reason_label(code)


def _reason_note(code: str) -> str:
    """The note of one reason's line, in words (the stage already names the reason)."""
    if code == "other":
        # The reason itself is in each report's note, which the records export carries.
        return ("settled full-text verdict: excluded for a reason not listed here; each "
                "report's note, on its record page and in the records export, says which")
    return "settled full-text verdict: excluded for this reason"


#: What the "since" figure of each stage counts (the stages :func:`prisma_since` covers).
SINCE_NOTES: dict[str, str] = {
    IDENTIFIED_STAGE: "records (PMIDs) first stored after that time; a new version of a record "
                      "held is not a new record",
    REVISED_STAGE: "records of which PubMed published a new version stored after that time",
    DELETED_STAGE: "records a poll found deleted from PubMed after that time",
    CURATORS_STAGE: "records whose current exclude decision was made after that time",
    INCLUDED_STAGE: "records whose current include (or maybe) decision was made after that "
                    "time",
    NOT_RETRIEVED_STAGE: "reports settled as not retrieved after that time",
    ASSESSED_STAGE: "reports whose full-text verdict was settled after that time",
    FULLTEXT_EXCLUDED_STAGE: "reports settled as excluded after that time",
    ELIGIBLE_STAGE: "reports settled as eligible after that time",
    TRIALS_STAGE: "trials added after that time",
    REPORTS_STAGE: "trial reports added after that time",
}
#: The stages without one, and why: shown on the page so the gap is never silent.
NO_SINCE_REASON = (
    "Records screened, records not screened by the stopping rule, conflicts, records awaiting "
    "screening and reports awaiting full-text assessment have no figure since the last digest: "
    "records screened is a difference (identified minus those removed before screening), and "
    "the others are states recomputed by each model, vote or decision, not dated events. "
    "Duplicate records removed has none either: a match with the previous version's reports, "
    "not a dated event. "
    "Deletions are dated from the upgrade that began storing their time on.")


@dataclass(frozen=True)
class PrismaSince:
    """What the review gained after ``at`` (exclusive), per PRISMA stage; only the stages of
    :data:`SINCE_NOTES` are in ``counts``: a stage without a stored date is left out rather
    than estimated."""

    at: datetime
    counts: Mapping[str, int]
    what: str = "that time"  # the cut-off in words, e.g. "the last digest"


def prisma_since(session: Session, at: datetime, *, what: str = "that time") -> PrismaSince:
    """Counts of :data:`SINCE_NOTES` stamped strictly after ``at`` (aware; the cut-off of the
    digests, whose ``period_end`` is the instant they were built).

    A decided record's newest ``Decision`` row is the one that set its current decision: a
    single-screening decision always does, and under dual screening a resolved record
    refuses further votes (only a resolution, which sets it, can follow). Records decided
    without any row (imports) have no date and are not counted. A record whose decision was
    changed after ``at`` counts in its new box but is not taken out of its old one: these
    are additions, not net changes."""
    in_flow = in_screening_pool()
    live = col(Record.deleted).is_(False), in_flow
    recent = fulltext_counts(session, since=at)  # the reports sought: the flow's, as here
    decided_after = col(Record.pmid).in_(
        select(Decision.pmid).group_by(col(Decision.pmid))
        .having(func.max(Decision.created_at) > at))
    revised_after = col(Record.pmid).in_(
        select(RecordRevision.pmid).where(col(RecordRevision.recorded_at) > at))
    counts = {
        # each PMID once, when it was first stored: a new version is not a new record
        IDENTIFIED_STAGE: _count(session, col(Record.first_seen_at) > at),
        REVISED_STAGE: _count(session, revised_after),
        DELETED_STAGE: _count(session, col(Record.deleted).is_(True),
                              in_flow, col(Record.deleted_at) > at),
        CURATORS_STAGE: _count(session, *live, col(Record.decision) == "exclude",
                               decided_after),
        INCLUDED_STAGE: _count(session, *live, col(Record.decision).in_(PASSED),
                               decided_after),
        NOT_RETRIEVED_STAGE: recent.not_retrieved, ASSESSED_STAGE: recent.assessed,
        FULLTEXT_EXCLUDED_STAGE: recent.excluded_total, ELIGIBLE_STAGE: recent.eligible,
        TRIALS_STAGE: _count(session, col(Trial.created_at) > at, model=Trial),
        REPORTS_STAGE: _count(session, col(TrialReport.created_at) > at, model=TrialReport),
    }
    return PrismaSince(at=at, counts=counts, what=what)


def last_digest_end(session: Session) -> datetime | None:
    """The ``period_end`` of the newest digest (the living review's last update), or None."""
    return session.exec(select(Digest.period_end)
                        .order_by(col(Digest.id).desc()).limit(1)).first()


def prisma_since_last_digest(session: Session) -> PrismaSince | None:
    """:func:`prisma_since` the newest digest's period end; None before the first digest."""
    end = last_digest_end(session)
    return None if end is None else prisma_since(session, end, what="the last digest")


def prisma_figure(session: Session, *, dual: bool = False, automation_stops: bool = False,
                  title: str | None = None) -> str:
    """The PRISMA flow diagram (SVG text) of the review as it stands, with what was added
    since the last digest when there is one: what ``/prisma`` and ``export prisma`` show."""
    # Imported here: the diagram module imports this one's stage names.
    from reports.prisma_diagram import prisma_svg

    return prisma_svg(prisma_counts(session, dual=dual, automation_stops=automation_stops),
                      title=title,
                      since=prisma_since_last_digest(session))


def _count(session: Session, *where: Any, model: Any = Record) -> int:
    stmt = select(func.count()).select_from(model)
    for cond in where:
        stmt = stmt.where(cond)
    return int(session.exec(stmt).one())


def write_prisma_csv(session: Session, fh: IO[str], *, dual: bool = False,
                     automation_stops: bool = False) -> None:
    writer = csv.writer(fh)
    writer.writerow(("stage", "count", "note"))
    writer.writerows(spreadsheet_row(row) for row in prisma_counts(
        session, dual=dual, automation_stops=automation_stops))


def prisma_markdown(counts: list[tuple[str, int, str]]) -> str:
    """The PRISMA counts as a Markdown table, and the flow in sentences below it."""
    n = {stage: value for stage, value, _ in counts}

    def of(stage: str, one: str, many: str | None = None) -> str:
        """The stage's count with its noun: "1 trial", "2 trials" (reports.words)."""
        return plural(n[stage], one, many)

    lines = [
        "# PRISMA 2020 flow (mmlr)",
        "",
        "| stage | n | note |",
        "| --- | ---: | --- |",
        *(f"| {stage} | {value} | {note} |" for stage, value, note in counts),
        "",
        f"Identification: {of(IDENTIFIED_STAGE, 'record')} from PubMed, each PMID once"
        + (f" ({n[REVISED_STAGE]:,} of them revised in PubMed after first retrieval: "
           "counted once, not removed)" if n.get(REVISED_STAGE) else "")
        + f". Removed before screening: {of(DUPLICATES_STAGE, 'duplicate record')}, "
        f"{of(AUTOMATION_STAGE, 'record')} not screened (screening stopped by "
        f"{STOPPING_RULE}), {of(DELETED_STAGE, 'deleted citation')}.",
        f"Screening: {n[AWAITING_STAGE]:,} awaiting a screening decision"
        + (f" (of which {n[BELOW_THRESHOLD_STAGE]:,} below the classifier's flag threshold, "
           "not read by a person: the stopping test does not support stopping yet)"
           if n.get(BELOW_THRESHOLD_STAGE) else "")
        + f"; {n[SCREENED_STAGE]:,} screened: "
        f"{n[CURATORS_STAGE]:,} excluded by curators (none by automation tools)"
        + (f", {n[CONFLICT_STAGE]:,} in conflict awaiting resolution" if CONFLICT_STAGE in n
           else "")
        # the records that passed complete the sum: screened = excluded (+ conflicts) + these
        + f", {n[INCLUDED_STAGE]:,} included (or marked maybe) for the full text.",
        *([f"Full text: {of(INCLUDED_STAGE, 'report')} sought; {n[NOT_RETRIEVED_STAGE]:,} "
           f"not retrieved, {n[FULLTEXT_AWAITING_STAGE]:,} awaiting assessment; "
           f"{n[ASSESSED_STAGE]:,} assessed: {n[ELIGIBLE_STAGE]:,} eligible"
           + (f" ({n[ELIGIBLE_UNLINKED_STAGE]:,} not linked to a trial yet)"
              if n.get(ELIGIBLE_UNLINKED_STAGE) else "") + ", "
           f"{n[FULLTEXT_EXCLUDED_STAGE]:,} excluded"
           + "".join(f"; {stage.removeprefix(EXCLUDED_REASON_PREFIX)}: {value:,}"
                     for stage, value, _ in counts
                     if stage.startswith(EXCLUDED_REASON_PREFIX) and value)
           + "."] if ASSESSED_STAGE in n else []),
        # The studies included are the trials; the records that passed title/abstract
        # screening are the reports sought above, not the review's included studies.
        f"Included: {of(TRIALS_STAGE, 'trial')} with {of(REPORTS_STAGE, 'report')}"
        + (f" ({of(PREVIOUS_TRIALS_STAGE, 'trial')} with "
           f"{of(PREVIOUS_REPORTS_STAGE, 'report')} from the previous version of the "
           f"review; {of(NEW_TRIALS_STAGE, 'new trial')} and "
           f"{of(NEW_REPORTS_STAGE, 'new report')}"
           + (f", of which {n[NEW_REPORTS_OF_PREVIOUS_STAGE]:,} of trials in the previous "
              "version" if n.get(NEW_REPORTS_OF_PREVIOUS_STAGE) else "")
           + ")." if PREVIOUS_TRIALS_STAGE in n else "."),
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


def _with_bom(writer: Callable[[Session, IO[str]], None], session: Session,
              fh: IO[str]) -> None:
    fh.write(EXCEL_BOM)
    writer(session, fh)


def _open_out(path: Path) -> AbstractContextManager[IO[str]]:
    """Write to ``path`` via a temporary file, so a failed export never leaves half a file;
    an existing ``path`` that is not a regular file (a link, a device) is refused."""
    return open_out(path, what="the export", hint=_OUT_HINT)


def _one_line(value: Any) -> str:
    if value is None:
        return ""
    return " ".join(str(value).split())


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _ext(kind: str) -> str:
    return {"ris": "ris"}.get(kind, "csv")
