"""``mmlr export {ris,csv,prisma,metafor,sof,screening}``: records and evidence for other tools.

* ``csv`` — one row per record (RFC 4180 quoting, UTF-8): ``pmid, title, journal, year,
  status, score, decision`` (DESIGN §3) then ``screening, flagged, deleted, retracted, doi,
  publication_types, nct_ids, first_seen_at, fulltext, fulltext_reason, volume, issue,
  pages, identified_via``. ``status`` is PubMed's indexing status (Publisher, In-Process,
  MEDLINE…); ``identified_via`` how the review first identified the record (``search``,
  ``pmid``: added by PMID, PRISMA's other methods; ``watched``: a trial report re-fetched);
  ``volume``, ``issue`` and ``pages`` are as PubMed prints them ("3003-15"; an article number
  such as "e0227333" when there is no pagination; empty online first); ``screening`` is where the
  record stands in the review (deleted, included, excluded, maybe, flagged, not flagged,
  unscored); ``fulltext`` is the full-text verdict of a record included (or marked maybe)
  at title/abstract screening, a report sought for retrieval (not one of the previous
  version's reports: :class:`store.fulltext.SoughtRule`) (``eligible``, ``excluded``,
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
  stored timestamp says so (``reports.prisma``, which counts the flow: two identification
  columns, PubMed searches and records added by PMID).
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
files are returned, with the number of records a record export wrote (:class:`Exported`).
Rows are streamed from the database, so a large review does not have to fit in memory.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import sys
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from pathlib import Path
from typing import IO, Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from reports.outfile import check_target, ensure_folder, is_folder, open_out
from reports.prisma import (
    VOTE,
    prisma_counts,
    prisma_figure,
    prisma_markdown,
    write_prisma_csv,
)
from reports.words import plural
from store.citation import article_location, page_range
from store.context import AppContext
from store.errors import NotFoundError, UsageError, ValidationError
from store.fulltext import (
    AWAITING,
    Outcome,
    SoughtRule,
    fulltext_state,
    outcomes,
    reason_label,
    reason_words,
    sought_conditions,
    sought_pmids,
    verdict_words,
)
from store.models import (
    Decision,
    Record,
    TrialReport,
)
from store.spreadsheet import EXCEL_BOM, spreadsheet_row

log = logging.getLogger(__name__)

KINDS = ("ris", "csv", "prisma", "metafor", "sof", "screening")
CSV_COLUMNS = ("pmid", "title", "journal", "year", "status", "score", "decision", "screening",
               "flagged", "deleted", "retracted", "doi", "publication_types", "nct_ids",
               "first_seen_at", "fulltext", "fulltext_reason", "volume", "issue", "pages",
               "identified_via")
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
    raise UsageError(f"--only {only!r} is not a subset of records",
                     hint=f"choose one of {', '.join(SUBSETS)}")


#: Whether the stopping test supports stopping (``screening.health.stopping_supported``):
#: passed in by the entry points, because reports import store only. Without one, the PRISMA
#: flow counts no record as excluded by automation.
StoppingCheck = Callable[[Session], bool]


@contextmanager
def _utf8_stdout() -> Iterator[IO[str]]:
    """Standard output as UTF-8 text, whatever the locale says: an export is a file for
    another program, and under a Windows code page (``PYTHONIOENCODING=cp1252``, what a
    redirected stdout gets there) "Zielińska" came out as ``Zieli\\u0144ska`` and the byte
    order mark of ``--excel`` as six letters, exit 0."""
    sys.stdout.flush()
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None or codecs.lookup(sys.stdout.encoding or "ascii").name == "utf-8":
        yield sys.stdout  # already UTF-8, or a stream without bytes beneath (a test's)
        sys.stdout.flush()
        return
    stream = io.TextIOWrapper(buffer, encoding="utf-8", newline="")
    try:
        yield stream
    finally:
        stream.flush()
        stream.detach()  # the wrapper must not close the process's stdout when collected


class Exported(list[Path]):
    """The files an export wrote (none for stdout) and, for the record exports (csv, ris,
    screening), how many records it wrote: ``records``, None for the others. A file of no
    records is a header line or nothing at all, and was written without a word."""

    def __init__(self, paths: list[Path], records: int | None = None) -> None:
        super().__init__(paths)
        self.records = records


def export(ctx: AppContext, kind: str, out: Path | None, *,
           stopping: StoppingCheck | None = None, folder: bool = False,
           only: str | None = None, excel: bool = False) -> Exported:
    """Write the ``kind`` export to ``out`` (stdout when None); return the files written
    (:class:`Exported`, with the number of records of a record export).
    ``stopping`` decides the PRISMA flow's exclusions by automation (:func:`prisma_counts`);
    ``folder``: ``out`` names a folder (typed with a trailing slash), created if need be,
    never a file of that name; ``only`` keeps the record exports to one of :data:`SUBSETS`;
    ``excel`` starts each CSV with a byte order mark (:data:`store.spreadsheet.EXCEL_BOM`)."""
    if kind not in KINDS:
        raise UsageError(f"unknown export {kind!r}", hint=f"choose one of {', '.join(KINDS)}")
    if only is not None and kind not in _SUBSET_KINDS:
        raise UsageError(f"--only applies to the record exports, not to {kind!r}",
                         hint=f"use it with {' or '.join(_SUBSET_KINDS)}")
    if only is not None and only not in SUBSETS:
        raise UsageError(f"--only {only!r} is not a subset of records",
                         hint=f"choose one of {', '.join(SUBSETS)}")
    if excel and (kind == "metafor" or _ext(kind) != "csv"):
        raise UsageError(f"--excel applies to the CSV exports, not to {kind!r}",
                         hint="use it with csv, prisma, sof or screening")
    if kind == "metafor":
        return Exported(_export_metafor(ctx, out))
    dual = ctx.settings.dual_screening
    # Imported here: the summary of findings reads pooled snapshots (numpy, scipy behind it),
    # which the record exports do not need to load.
    from reports.export_sof import sof_markdown, write_sof_csv
    from reports.network_inputs import current_networks

    with ctx.sessions() as session:
        stops = kind == "prisma" and stopping is not None and stopping(session)
        pmids = None if only is None else subset_pmids(session, only)
        writers: dict[str, Callable[[Session, IO[str]], int | None]] = {
            "csv": partial(write_records_csv, dual=dual, pmids=pmids),
            "ris": partial(write_ris, pmids=pmids),
            "prisma": partial(write_prisma_csv, dual=dual, automation_stops=stops),
            "sof": write_sof_csv, "screening": write_screening_csv}
        writer = writers[kind]
        if excel:
            writer = partial(_with_bom, writer)
        if out is None:
            with _utf8_stdout() as stream:
                records = writer(session, stream)
            return Exported([], records)
        if folder and out is not None:
            ensure_folder(out, what="the export", hint=_OUT_HINT)
        if is_folder(out, what="the export", hint=_OUT_HINT):
            out = out / f"{_STEM.get(kind, 'records')}.{_ext(kind)}"
        _refuse_side_file_clash(kind, out)
        # Every file of the export is judged before the first is written: a link where the
        # .md should go must not leave a new CSV beside an old summary.
        for path in (out, *(out.with_suffix(s) for s in _BESIDE.get(kind, ()))):
            check_target(path, what="the export", hint=_OUT_HINT)
        with _open_out(out) as fh:
            records = writer(session, fh)
        written = Exported([out], records)
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
    log.info("export %s written to %s%s", kind, ", ".join(str(p) for p in written),
             "" if records is None else f" ({plural(records, 'record')})")
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
               Record.volume, Record.issue, Record.pages, Record.elocation,
               Record.identified_via)


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
        .where(col(Decision.kind) == VOTE, col(Decision.user_id).is_not(None),
               col(Decision.pmid) >= first, col(Decision.pmid) <= last)
        .group_by(col(Decision.pmid))).all()
    return {int(pmid): int(n) for pmid, n in rows}


def write_records_csv(session: Session, fh: IO[str], *, dual: bool = False,
                      pmids: Collection[int] | None = None) -> int:
    """One row per record, ordered by PMID; ``dual`` adds each record's dual-screening state
    and number of screeners; ``pmids`` keeps those records only (``--only``). Returns how
    many records were written."""
    writer = csv.writer(fh)  # QUOTE_MINIMAL: commas, quotes and newlines are quoted
    writer.writerow(DUAL_CSV_COLUMNS if dual else CSV_COLUMNS)
    rule = SoughtRule.for_session(session)
    # Plain column rows, not ORM objects: building entities cost ~4x the whole export.
    last = -1
    written = 0
    while True:
        page: Sequence[Any] = session.exec(  # Rows of the selected columns
            select(*_CSV_SOURCE).where(col(Record.pmid) > last)  # type: ignore[call-overload]
            .order_by(col(Record.pmid)).limit(_BATCH)).all()
        if not page:
            return written
        last = page[-1].pmid
        if pmids is not None:
            page = [r for r in page if r.pmid in pmids]
            if not page:
                continue
        screeners = _screeners_between(session, page[0].pmid, page[-1].pmid) if dual else {}
        verdicts = outcomes(
            session, [r.pmid for r in page if rule.is_sought(r)])
        for r in page:
            row = [
                r.pmid, r.title, r.journal or "", "" if r.year is None else r.year,
                r.status or "", "" if r.score is None else f"{r.score:.6g}", r.decision or "",
                screening_state(r), _bool(r.flagged), _bool(r.deleted), _bool(r.retracted),
                r.doi or "", "; ".join(r.publication_types or []), "; ".join(r.nct_ids or []),
                r.first_seen_at.isoformat() if r.first_seen_at else "",
                *_fulltext_cells(rule.is_sought(r), verdicts.get(r.pmid)),
                r.volume or "", r.issue or "",
                article_location(r.pages, r.elocation, r.volume) or "",
                r.identified_via,
            ]
            if dual:
                n = screeners.get(r.pmid, 0)
                row += [dual_state(r.decision, n), n]
            # Titles, journals and DOIs come from PubMed: a cell starting with "=" must
            # reach a panel's spreadsheet as text, not as a formula.
            writer.writerow(spreadsheet_row(row))
            written += 1


def _fulltext_cells(sought: bool, verdict: Outcome | None) -> list[str]:
    """``fulltext`` and ``fulltext_reason`` of one records-CSV row."""
    state, reason = fulltext_state(sought, verdict)
    # An "other" exclusion's reason is its note, whole (store.fulltext.reason_words).
    return [state or "", (reason_words(verdict.reason, verdict.note) if verdict is not None
                          else reason_label(reason)) if reason else ""]


# ----------------------------------------------------------------------------- screening
_LABELS = {"include": 1, "exclude": 0}


def write_screening_csv(session: Session, fh: IO[str]) -> int:
    """The decided records as a labelled screening dataset (module docstring), by PMID. The
    text columns are what the live classifier reads (``screening.service.record_document``),
    so a replay sees the same features; multi-valued columns are joined with "; ". Returns
    how many records were written."""
    writer = csv.writer(fh)
    writer.writerow(SCREENING_COLUMNS)
    written = 0
    for r in _records(session):
        label = _LABELS.get(r.decision or "")
        if r.deleted or label is None:
            continue
        mesh = [str(m.get("descriptor", "")) for m in (r.mesh or []) if isinstance(m, dict)]
        writer.writerow(spreadsheet_row([
            r.pmid, r.pmid, r.doi, r.title, r.abstract, r.year, "; ".join(r.keywords or []),
            "; ".join(mesh), "; ".join(r.publication_types or []), r.journal, label]))
        written += 1
    return written


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
    if "," in name:  # "Smith, J" already in RIS's order: "Smith,, J." doubled the comma
        last, _, given = name.partition(",")
        given = given.strip()
        if given.isalpha() and given.isupper() and len(given) <= MAX_INITIALS:
            given = ".".join(given) + "."
        return f"{last.strip()}, {given}" if given else f"{last.strip()},"
    last, _, initials = name.rpartition(" ")
    if (last and initials.isalpha() and initials.isupper() and len(initials) <= MAX_INITIALS
            and not _collective(last)):
        return f"{last}, {'.'.join(initials)}."
    return f"{name},"


#: Words no person's surname holds and group names do: "Cancer and Leukemia Group B",
#: "Myeloma XI", "Intergroupe Francophone du Myélome IFM" ended in what looked like initials
#: and were split into "Cancer and Leukemia Group, B.".
_GROUP_WORDS = frozenset((
    "and", "of", "for", "the", "group", "groups", "study", "studies", "trial",
    "trials", "investigators", "consortium", "network", "society", "committee", "collaborative",
    "collaboration", "myeloma", "cancer", "leukemia", "leukaemia", "intergroupe", "francophone",
    "research", "council", "working", "party", "foundation", "institute", "center", "centre"))


#: Up to five initials: "van de Donk NWCJ" is a person (four), as PubMed writes him.
MAX_INITIALS = 5


def _collective(words: str) -> bool:
    """Whether the words before a name's last word are a group's (a surname's never are): a
    group word, or an acronym ("NCIC" of "NCIC CTG"). "de" and "du" are not group words on
    their own: they are the particles of surnames ("de la Rubia J", "Fernández de Larrea C",
    "Du S"), which written with a trailing comma were filed as corporate authors; a group's
    name with them ("Intergroupe Francophone du Myélome") has group words besides."""
    parts = words.split(" ")
    return (any(part.lower() in _GROUP_WORDS for part in parts)
            or any(len(part) >= 3 and part.isalpha() and part.isupper() for part in parts))


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
    trial", "awaiting assessment"…, an exclusion's reason as
    :func:`store.fulltext.reason_words` gives it (an "other" one's note whole)."""
    if o.reason:
        return f"excluded: {reason_words(o.reason, o.note)}"
    # VERDICTS says "full text not retrieved", which after "full text:" would say it twice
    return "not retrieved" if o.verdict == "not_retrieved" else verdict_words(o)


def write_ris(session: Session, fh: IO[str], *, include_deleted: bool = False,
              pmids: Collection[int] | None = None) -> int:
    """RIS entries (tags per the RIS specification; one value per line); ``pmids`` keeps
    those records only (``--only``). Returns how many records were written."""
    verdicts: dict[int, Outcome] = {}
    written = 0
    rule = SoughtRule.for_session(session)
    for r in _records(session):
        if (r.deleted and not include_deleted) or (pmids is not None and r.pmid not in pmids):
            continue
        sought = rule.is_sought(r)
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
        written += 1
    return written


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


def _with_bom(writer: Callable[[Session, IO[str]], int | None], session: Session,
              fh: IO[str]) -> int | None:
    fh.write(EXCEL_BOM)
    return writer(session, fh)


def _refuse_side_file_clash(kind: str, out: Path) -> None:
    """Refuse an ``out`` whose .md or .svg side file would be ``out`` itself: the side file
    is written second, so it would silently replace the CSV (``--out sof.md``)."""
    for suffix in _BESIDE.get(kind, ()):
        # Compared without case: on a case-insensitive file system (macOS, Windows) sof.MD
        # and sof.md are one file.
        if out.suffix.lower() == suffix:
            side = {".md": "Markdown summary", ".svg": "flow diagram"}[suffix]
            raise ValidationError(
                f"--out {out}: the {kind} export writes its {side} to "
                f"{out.with_suffix(suffix)}, which would replace the CSV",
                hint=f"give the CSV a .csv name, e.g. --out {out.with_suffix('.csv')}")


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
