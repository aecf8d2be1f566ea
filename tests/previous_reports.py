"""A review that continues an earlier one, as the screening-pool tests need it: the seed
evidence loaded (``monitor.bootstrap.load_seed_evidence``), three of its reports stored as
records (what the monitor's re-fetch of the trial reports does, ``monitor.poll.watched_pmids``)
scored at the top of the queue, ordinary records, and a curator's report of a new trial
(no source key: it stays in the screening pool)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session, col, select

from monitor.bootstrap import load_seed_evidence
from store.models import Decision, Record, Trial, TrialReport, User, utcnow
from store.screening_pool import previous_report_pmids

#: Ordinary records: scores from 0.9 down; the first five flagged, the others below threshold.
ORDINARY = list(range(9_000_001, 9_000_013))
#: A curator's report of a trial added since the seed evidence: screened here like any record.
NEW_REPORT = 9_000_100
#: The trial it reports; the name has markup, which every page must escape.
NEW_TRIAL = "NEW-MAINT <b>1</b>"


@dataclass(frozen=True)
class PreviousReports:
    #: seed reports stored as records: [0] undecided, [1] included earlier by a curator,
    #: [2] undecided and in the audit sample (drawn by an older mmlr)
    previous: list[int]
    #: the seed trial the first one reports, by name
    trial_name: str
    trial_id: int


def store_previous_reports(session: Session, *, curator: User | None = None
                           ) -> PreviousReports:
    """Build the review described in the module docstring in ``session`` (committed)."""
    load_seed_evidence(session)
    session.commit()
    previous = sorted(previous_report_pmids(session))[:3]
    assert len(previous) == 3
    t0 = utcnow() - timedelta(days=30)
    for i, pmid in enumerate(previous):
        # The classifier learns from them as includes: they score above everything.
        session.add(Record(pmid=pmid, title=f"Seed report {pmid}", source="entrez",
                           score=0.99 - i / 1000, flagged=True, audit_sample=i == 2,
                           first_seen_at=t0))
    for i, pmid in enumerate(ORDINARY):
        session.add(Record(pmid=pmid, title=f"Ordinary record {pmid}", score=0.9 - i / 20,
                           flagged=i < 5, first_seen_at=t0))
    session.add(Record(pmid=NEW_REPORT, title="A new maintenance RCT", score=0.95,
                       flagged=True, first_seen_at=t0))
    new = Trial(name=NEW_TRIAL, drug="ixazomib", setting="post_asct")
    session.add(new)
    session.flush()
    session.add(TrialReport(trial_id=int(new.id or 0), pmid=NEW_REPORT,
                            citation="new trial report"))
    # A decision recorded on a previous report before this rule: kept, counted nowhere.
    included = session.get(Record, previous[1])
    assert included is not None
    included.decision = "include"
    session.add(included)
    session.add(Decision(pmid=previous[1], decision="include",
                         user_id=curator.id if curator else None))
    session.commit()
    trial = session.exec(select(Trial).join(TrialReport).where(
        col(TrialReport.pmid) == previous[0], col(TrialReport.source_key).is_not(None))).one()
    return PreviousReports(previous=previous, trial_name=trial.name,
                           trial_id=int(trial.id or 0))
