"""The PRISMA 2020 flow of the review in numbers: what ``/prisma``, ``mmlr export prisma``
(CSV, Markdown, and the diagram of ``reports.prisma_diagram``) and the benchmarks count.

Two identification columns, as PRISMA 2020's template for updated reviews with searches of
databases and other sources has them: the records first identified by a PubMed search (and
the watched re-fetch of trial reports) are the databases column; the records a curator first
fetched by PMID (``Record.identified_via == "pmid"``: the /fetch page, ``mmlr poll --pmids``;
citation searching, reference lists, conference abstracts followed up) are the
"identification via other methods" column. mmlr screens every record by title and abstract
in one queue, so the other-methods column has the same boxes as the databases column
(identified, removed before screening, awaiting, screened, excluded, sought, the full-text
stage): each column's identities close on their own, and both join in the included studies
and reports. Without records added by PMID the other-methods column is one line, 0.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from reports.words import plural
from store.audit import seed_trial_ids
from store.batches import in_chunks
from store.citation import publication_key
from store.fulltext import (
    PASSED,
    FullTextCounts,
    Outcome,
    count_outcomes,
    link_problem,
    linked_pmids,
    outcomes,
    reason_label,
    sought_pmids,
)
from store.models import (
    BY_PMID,
    Decision,
    Digest,
    Record,
    RecordRevision,
    Trial,
    TrialReport,
)
from store.screening_pool import in_screening_pool
from store.spreadsheet import spreadsheet_row

log = logging.getLogger(__name__)

#: Decision.kind of a screener's vote (``screening.agreement.VOTE``; reports import store only).
VOTE = "vote"

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
    """(stage, count, note) of the PRISMA 2020 flow: the databases column, the other-methods
    column (:func:`other_stage` names; one line, 0, without records added by PMID), then
    the included studies and reports both columns join in. The identities between the counts
    are :func:`prisma_identities`, and hold within each column.

    A PubMed record is one ``Record`` row, keyed by its PMID, so it counts once among the
    records identified however many searches or polls returned it and however many versions
    PubMed published of it (those are :data:`REVISED_STAGE`, a note: a newer version of a
    record held is neither a new record nor a duplicate), and in one column only: the one of
    the route that first identified it (``Record.identified_via``), which a later search
    returning it does not change. PubMed is the only database searched; the one other source
    of reports is the previous version of the review (the seed evidence), so the duplicates
    removed are the records whose PMID is one of its reports
    (``store.screening_pool.previous_report_pmids``): already included, they take no further
    part in the flow (every count below leaves them out), and the last box counts them among
    the previous version's reports.

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
    flow = _Flow(session, dual=dual, automation_stops=automation_stops)
    # Most reviews add nothing by PMID: their other-methods column costs no query.
    other_lines = ([(other_stage(stage), value, note)
                    for stage, value, note in flow.column(by_pmid=True)]
                   if flow.sought.added_by_pmid else
                   [(OTHER_IDENTIFIED_STAGE, 0, _OTHER_IDENTIFIED_NOTE)])
    return [*flow.column(by_pmid=False), *other_lines, *_included_lines(session)]


#: The other-methods column's first box, and its note.
OTHER_IDENTIFIED_STAGE = "other methods: records identified by PMID"
_OTHER_IDENTIFIED_NOTE = (
    "PRISMA 2020's identification via other methods: distinct PMIDs a curator first fetched by "
    "PMID (the Fetch page, mmlr poll --pmids: citation searching, reference lists, conference "
    "abstracts followed up) before any search returned them; each record once, in this "
    "column only, and screened in the same queue as the records from PubMed searches")
#: How every other stage of the other-methods column is named: this, then the databases
#: column's name of the box (:func:`other_stage`).
OTHER_PREFIX = "other methods: "
_DATABASES_IDENTIFIED_NOTE = (
    "distinct PMIDs first stored from PubMed searches (and the re-fetch of trial reports): "
    "each record once, however many searches or polls returned it; PubMed is the only "
    "database searched, no register is; records first fetched by PMID are in the "
    "other-methods column")


def other_stage(stage: str) -> str:
    """The other-methods column's name of a databases-column box (``stage``)."""
    return OTHER_IDENTIFIED_STAGE if stage == IDENTIFIED_STAGE else OTHER_PREFIX + stage


def by_pmid_condition(by_pmid: bool) -> Any:
    """SQL condition on ``Record``: first identified by PMID (the other-methods column), or
    not (the databases column)."""
    via = col(Record.identified_via)
    return via == BY_PMID if by_pmid else via != BY_PMID


@dataclass(frozen=True)
class _SoughtByColumn:
    """The reports sought for retrieval, split by identification column, and the records
    added by PMID that decide the split: what the flow and its "since" figures both read."""

    added_by_pmid: frozenset[int]
    databases: list[int]
    other_methods: list[int]

    def column(self, *, by_pmid: bool) -> list[int]:
        """The reports sought of one column: the other-methods one with ``by_pmid``."""
        return self.other_methods if by_pmid else self.databases


def _sought_by_column(session: Session) -> _SoughtByColumn:
    """Read the records added by PMID and the reports sought once, and split the latter by
    the column each one's record was first identified in."""
    added_by_pmid = frozenset(session.exec(select(Record.pmid).where(by_pmid_condition(True))))
    # sought_pmids leaves the previous version's reports out (the screening pool)
    sought = sought_pmids(session)
    return _SoughtByColumn(added_by_pmid=added_by_pmid,
                           databases=[p for p in sought if p not in added_by_pmid],
                           other_methods=[p for p in sought if p in added_by_pmid])


class _Flow:
    """The counts of one identification column at a time, sharing what both columns read."""

    def __init__(self, session: Session, *, dual: bool, automation_stops: bool) -> None:
        self.session, self.dual, self.automation_stops = session, dual, automation_stops
        self.sought = _sought_by_column(session)

    def column(self, *, by_pmid: bool) -> list[tuple[str, int, str]]:
        """The lines of one column, named as the databases column's boxes."""
        session, dual, automation_stops = self.session, self.dual, self.automation_stops
        via = by_pmid_condition(by_pmid)

        def count(*where: Any) -> int:
            return _count(session, via, *where)

        # The records in the flow: those not removed as the previous version's reports, which
        # every count below leaves out (the screening pool, as the queue and health count it).
        in_flow = in_screening_pool()
        live = col(Record.deleted).is_(False), in_flow
        undecided = col(Record.decision).is_(None)
        identified = count()  # distinct PMIDs: the table's key
        revised = count(col(Record.pmid).in_(select(RecordRevision.pmid)))
        versions = _count(session, col(RecordRevision.pmid).in_(
            select(Record.pmid).where(via)), model=RecordRevision)
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
            # Every conflict has votes, so none is left unscreened by the stopping rule: the
            # line is carved out of the awaiting records and the flow still adds up.
            conflicts = count(*live, undecided, col(Record.pmid).in_(screened_twice()))
            conflict_line = [(CONFLICT_STAGE, conflicts,
                              "screened by both screeners, who disagree; an admin or a third "
                              "curator resolves it")]
            awaiting_note = ("flagged or unscored without a vote, records with one vote "
                             "awaiting the second screener: a living review's backlog, not "
                             "screened yet")
        # The reports sought for retrieval and their full-text outcomes (read once: the
        # full-text lines and the eligible reports not linked yet both need them).
        sought = outcomes(session, self.sought.column(by_pmid=by_pmid))
        # Screened: what a person has screened (decided, or in conflict under dual
        # screening); the records awaiting a decision branch off before it, as those removed
        # do.
        screened = identified - duplicates - not_screened - deleted - (awaiting - conflicts)
        return [
            (IDENTIFIED_STAGE, identified,
             _OTHER_IDENTIFIED_NOTE if by_pmid else _DATABASES_IDENTIFIED_NOTE),
            (REVISED_STAGE, revised,
             f"a note, not a box: records PubMed revised after mmlr first stored them "
             f"({plural(versions, 'earlier version')} kept); each is still one record"),
            (DUPLICATES_STAGE, duplicates,
             "records whose PMID is a report of the previous version of the review (the seed "
             "evidence): the same report, already included, counted in the last box. A PMID "
             "returned again by PubMed is the same record, merged on retrieval and never "
             "counted twice; two PMIDs of one report are not detected: both are screened"),
            (AUTOMATION_STAGE, not_screened, _automation_note(automation_stops, not_screened)),
            (DELETED_STAGE, deleted, "PubMed DeleteCitation; curator work on them is kept"),
            (AWAITING_STAGE, awaiting - conflicts, awaiting_note),
            (BELOW_THRESHOLD_STAGE, 0 if automation_stops else below_threshold,
             "of the records awaiting screening, those scored below the flag threshold and "
             "not read by a person; counted as not screened once the stopping test supports "
             "stopping"),
            (SCREENED_STAGE, screened,
             "records a person screened: identified minus those removed before screening and "
             "those awaiting; = excluded by curators + " + ("in conflict + " if dual else "")
             + "included"),
            (CURATORS_STAGE, excluded_curators,
             "latest decision: exclude (every exclusion is a person's; none by automation "
             "tools)"),
            *conflict_line,
            (INCLUDED_STAGE, included,
             "latest decision: include, or maybe (the full text decides); the reports sought "
             "for retrieval"),
            *_fulltext_lines(count_outcomes(sought)),
            (ELIGIBLE_UNLINKED_STAGE, _eligible_unlinked(session, sought),
             "a part of the eligible reports: no trial has them yet, so they are not among "
             "the reports of included studies below (their data await extraction)"),
        ]


def screened_twice() -> Any:
    """SELECT of the PMIDs that two or more different people voted on."""
    return (select(Decision.pmid)
            .where(col(Decision.kind) == VOTE, col(Decision.user_id).is_not(None))
            .group_by(col(Decision.pmid))
            .having(func.count(func.distinct(Decision.user_id)) >= 2))


#: Each box of one identification column made of parts: (whole, parts), named as in the
#: databases column (the other-methods column's are :func:`other_stage` of them). Stages
#: named by EXCLUDED_REASON_PREFIX stand for every reason line.
_COLUMN_IDENTITIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (IDENTIFIED_STAGE, (DUPLICATES_STAGE, AUTOMATION_STAGE, DELETED_STAGE, AWAITING_STAGE,
                        SCREENED_STAGE)),
    (SCREENED_STAGE, (CURATORS_STAGE, CONFLICT_STAGE, INCLUDED_STAGE)),
    (INCLUDED_STAGE, (NOT_RETRIEVED_STAGE, FULLTEXT_AWAITING_STAGE, ASSESSED_STAGE)),
    (ASSESSED_STAGE, (FULLTEXT_EXCLUDED_STAGE, ELIGIBLE_STAGE)),
    (FULLTEXT_EXCLUDED_STAGE, (EXCLUDED_REASON_PREFIX,)),
)
#: The boxes both columns join in.
_JOINT_IDENTITIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (TRIALS_STAGE, (PREVIOUS_TRIALS_STAGE, NEW_TRIALS_STAGE)),
    (REPORTS_STAGE, (PREVIOUS_REPORTS_STAGE, NEW_REPORTS_STAGE)),
)


def _same(stage: str) -> str:
    return stage


def prisma_identities(counts: Sequence[tuple[str, int, str]]) -> list[tuple[str, int, int]]:
    """Each box of the flow that is the sum of others, as (the sum in words, the box's
    count, the sum of its parts): the two numbers are equal in a flow that closes; each
    column's boxes sum within that column. Stages absent from ``counts`` (no conflicts under
    single screening) count 0, and a box none of whose parts is in ``counts`` (no full-text
    stage in old counts, the other-methods column reduced to its 0 line) is no sum; the notes
    (the "of the …" parts of one box) are in no sum."""
    n = {stage: value for stage, value, _ in counts}
    out = []
    columns = ((_same, _COLUMN_IDENTITIES), (other_stage, _COLUMN_IDENTITIES),
               (_same, _JOINT_IDENTITIES))
    for name, identities in columns:
        prefix = name(EXCLUDED_REASON_PREFIX)
        reasons = [v for stage, v in n.items() if stage.startswith(prefix)]
        for whole, parts in identities:
            present = [p for p in parts
                       if (reasons if p == EXCLUDED_REASON_PREFIX else name(p) in n)]
            if name(whole) not in n or not present:
                continue
            total = sum(sum(reasons) if p == EXCLUDED_REASON_PREFIX else n[name(p)]
                        for p in present)
            words = " + ".join("the reasons" if p == EXCLUDED_REASON_PREFIX else name(p)
                               for p in present)
            out.append((f"{name(whole)} = {words}", n[name(whole)], total))
    return out


def _eligible_unlinked(session: Session, sought: Mapping[int, Outcome]) -> int:
    """The eligible reports of ``sought`` (PMID -> full-text outcome) no trial has
    (``store.fulltext.link_problem``: "unlinked")."""
    linked = {int(p) for p in session.exec(select(TrialReport.pmid)) if p is not None}
    return sum(1 for pmid, o in sought.items()
               if link_problem(o, linked=pmid in linked) == "unlinked")


@dataclass(frozen=True)
class _Included:
    """The last box's parts: the previous version's trials and reports (the seed evidence,
    taken as that review included them) and the new ones, which came through this review's
    flow. ``entered`` dates each new report (PMID) and new trial (id) by when it entered the
    box: the later of its link to a trial and its settled eligible verdict."""

    previous_trials: set[int]
    previous_reports: int  # distinct publications
    new_reports: dict[int, datetime]  # PMID -> when it entered
    new_trials: dict[int, datetime]  # trial id -> when its first new report entered
    new_of_previous: int  # new reports a previous version's trial has

    @property
    def trials(self) -> int:
        return len(self.previous_trials) + len(self.new_trials)

    @property
    def reports(self) -> int:
        return self.previous_reports + len(self.new_reports)


def _included(session: Session) -> _Included:
    """What the last box counts. A study is included through its reports: a trial created
    with none yet (from the trials page, its paper to be linked) is not one. A new report is
    a record the flow above carries there — sought for retrieval (passed title/abstract
    screening, not deleted) and settled eligible at full text — that a trial has as a report
    (``store.fulltext.included_report_pmids``), each PMID once however many trials have it; a
    trial's report that is not (unscreened, excluded at either stage, deleted, awaiting its
    full-text verdict, or without a PMID) is pooled once verified but is not counted here
    (``store.fulltext.linked_not_included`` lists the records, for curators to settle)."""
    previous_ids = seed_trial_ids(session)
    reported = set(session.exec(select(TrialReport.trial_id).distinct()))
    previous_trials = {t for t in previous_ids if t in reported}
    # Seed reports carry the source key of the reference table; a curator's link has none.
    # A report is a publication (PRISMA 2020): one cited by two seed trials (TOURMALINE-MM3
    # and -MM4's joint final analysis) counts once.
    previous_reports = len({
        publication_key(pmid, citation) for pmid, citation in session.exec(
            select(TrialReport.pmid, TrialReport.citation).where(
                col(TrialReport.trial_id).in_(previous_ids),
                col(TrialReport.source_key).is_not(None)))}) if previous_ids else 0
    linked = linked_pmids(session)
    eligible = {p: o.row.created_at for p, o in outcomes(
        session, [p for p in sought_pmids(session) if p in linked]).items()
        if o.state == "resolved" and o.verdict == "eligible" and o.row is not None}
    new_reports: dict[int, datetime] = {}
    new_trials: dict[int, datetime] = {}
    of_previous: set[int] = set()
    for part in in_chunks(sorted(eligible)):
        for trial_id, pmid, linked_at in session.exec(
                select(TrialReport.trial_id, TrialReport.pmid, TrialReport.created_at)
                .where(col(TrialReport.pmid).in_(part))):
            if pmid is None:  # the IN filter leaves none
                continue
            entered = max(linked_at, eligible[pmid])
            new_reports[pmid] = min(entered, new_reports.get(pmid, entered))
            if trial_id in previous_ids:
                of_previous.add(pmid)
            else:
                new_trials[trial_id] = min(entered, new_trials.get(trial_id, entered))
    return _Included(previous_trials=previous_trials, previous_reports=previous_reports,
                     new_reports=new_reports, new_trials=new_trials,
                     new_of_previous=len(of_previous))


def _included_lines(session: Session) -> list[tuple[str, int, str]]:
    """The included studies and their reports, each split into the previous version's (the
    seed evidence's trials, and the reports it gave them) and the new ones (:func:`_included`:
    trials with a report that passed both screening stages; such reports a curator linked, to
    a new trial or as a later report of an earlier one)."""
    inc = _included(session)
    return [
        (TRIALS_STAGE, inc.trials, "randomised trials in the evidence base with a report "
                                   "counted below"),
        (PREVIOUS_TRIALS_STAGE, len(inc.previous_trials),
         "the seed evidence the review started from (docs/seed-evidence.md)"),
        (NEW_TRIALS_STAGE, len(inc.new_trials),
         "trials added since with at least one new report below"),
        (REPORTS_STAGE, inc.reports, "publications linked to those trials"),
        (PREVIOUS_REPORTS_STAGE, inc.previous_reports,
         "the seed evidence's reports: distinct publications (PMID, else DOI, else "
         "citation), one cited for two trials counted once"),
        (NEW_REPORTS_STAGE, len(inc.new_reports),
         "records settled eligible at full text (passed title/abstract screening, not "
         "deleted) that a trial has as a report, each PMID once: of new trials, or later "
         "reports of earlier trials; a trial's report that is not (unscreened, excluded, "
         "deleted, awaiting its verdict, no PMID) is not counted"),
        (NEW_REPORTS_OF_PREVIOUS_STAGE, inc.new_of_previous,
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
    TRIALS_STAGE: "trials that entered the box after that time (a new trial when its first "
                  "counted report did)",
    REPORTS_STAGE: "reports that entered the box after that time: linked to a trial and "
                   "settled eligible, the later of the two after it",
}
# The other-methods column's boxes count the same events among the records added by PMID.
SINCE_NOTES.update({other_stage(stage): note for stage, note in list(SINCE_NOTES.items())
                    if stage not in (TRIALS_STAGE, REPORTS_STAGE)})
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
    sought = _sought_by_column(session)
    counts = _since_column(session, at, by_pmid=False, sought=sought.column(by_pmid=False))
    if sought.added_by_pmid:  # the other-methods column has its boxes only then (prisma_counts)
        counts.update({other_stage(stage): value for stage, value in _since_column(
            session, at, by_pmid=True, sought=sought.column(by_pmid=True)).items()})
    # The last box's: what entered it after ``at`` (:class:`_Included`); the seed evidence's
    # trials and reports are dated by when they were loaded.
    inc = _included(session)
    seed_after = seed_trial_ids(session) & set(session.exec(
        select(Trial.id).where(col(Trial.created_at) > at)))
    counts[TRIALS_STAGE] = (len(inc.previous_trials & seed_after)
                            + sum(1 for t in inc.new_trials.values() if t > at))
    counts[REPORTS_STAGE] = (len({
        publication_key(pmid, citation) for pmid, citation in session.exec(
            select(TrialReport.pmid, TrialReport.citation).where(
                col(TrialReport.trial_id).in_(seed_after),
                col(TrialReport.source_key).is_not(None)))}) if seed_after else 0) \
        + sum(1 for t in inc.new_reports.values() if t > at)
    return PrismaSince(at=at, counts=counts, what=what)


def _since_column(session: Session, at: datetime, *, by_pmid: bool,
                  sought: list[int]) -> dict[str, int]:
    """:func:`prisma_since`'s counts of one identification column (databases-column names);
    ``sought`` are that column's reports sought, the previous version's left out."""
    via = by_pmid_condition(by_pmid)
    in_flow = in_screening_pool()
    live = via, col(Record.deleted).is_(False), in_flow
    recent = count_outcomes(outcomes(session, sought), since=at)
    decided_after = col(Record.pmid).in_(
        select(Decision.pmid).group_by(col(Decision.pmid))
        .having(func.max(Decision.created_at) > at))
    revised_after = col(Record.pmid).in_(
        select(RecordRevision.pmid).where(col(RecordRevision.recorded_at) > at))
    return {
        # each PMID once, when it was first stored: a new version is not a new record
        IDENTIFIED_STAGE: _count(session, via, col(Record.first_seen_at) > at),
        REVISED_STAGE: _count(session, via, revised_after),
        DELETED_STAGE: _count(session, via, col(Record.deleted).is_(True),
                              in_flow, col(Record.deleted_at) > at),
        CURATORS_STAGE: _count(session, *live, col(Record.decision) == "exclude",
                               decided_after),
        INCLUDED_STAGE: _count(session, *live, col(Record.decision).in_(PASSED),
                               decided_after),
        NOT_RETRIEVED_STAGE: recent.not_retrieved, ASSESSED_STAGE: recent.assessed,
        FULLTEXT_EXCLUDED_STAGE: recent.excluded_total, ELIGIBLE_STAGE: recent.eligible,
    }


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
        *_other_methods_sentences(n),
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


def _other_methods_sentences(n: Mapping[str, int]) -> list[str]:
    """The other-methods column in a sentence, when a curator added records by PMID."""
    if not n.get(OTHER_IDENTIFIED_STAGE):
        return []

    def of(stage: str) -> int:
        return n.get(other_stage(stage), 0)

    conflicts = (f", {of(CONFLICT_STAGE):,} in conflict awaiting resolution"
                 if other_stage(CONFLICT_STAGE) in n else "")
    return [
        f"Identification via other methods: {plural(n[OTHER_IDENTIFIED_STAGE], 'record')} "
        "a curator added by PMID (citation searching, reference lists, conference abstracts "
        "followed up), each PMID once and counted in this column only; removed before "
        f"screening: {of(DUPLICATES_STAGE):,} duplicate, {of(AUTOMATION_STAGE):,} not "
        f"screened, {of(DELETED_STAGE):,} deleted. Screened by title and abstract in the "
        f"same queue: {of(AWAITING_STAGE):,} awaiting; {of(SCREENED_STAGE):,} screened: "
        f"{of(CURATORS_STAGE):,} excluded by curators{conflicts}, "
        f"{of(INCLUDED_STAGE):,} sought for retrieval; {of(NOT_RETRIEVED_STAGE):,} not "
        f"retrieved, {of(FULLTEXT_AWAITING_STAGE):,} awaiting full-text assessment; "
        f"{of(ASSESSED_STAGE):,} assessed: {of(ELIGIBLE_STAGE):,} eligible, "
        f"{of(FULLTEXT_EXCLUDED_STAGE):,} excluded"
        + "".join(f"; {stage.removeprefix(other_stage(EXCLUDED_REASON_PREFIX))}: {value:,}"
                  for stage, value in n.items()
                  if stage.startswith(other_stage(EXCLUDED_REASON_PREFIX)) and value)
        + ". Both columns join in the studies included below.",
    ]
