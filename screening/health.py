"""Screening health: how many includes may still hide among the records nobody screened,
and may screening stop?

Two stopping tests (``screening.stopping``, Callaghan & Müller-Hansen 2020):

- **Prioritised order** (``stopping_test``): the records screened last, in queue order, taken as
  a conservative random sample of themselves plus the unscreened records. It can say "stop"
  long before everything is screened; checked on 18 labelled reviews (docs/benchmarks.md,
  "Stopping"). A sample starts after the last unscreened record arrived.
- **Random audit** (``audit_test``): records below the flag threshold ("low-score") feed a
  random audit sample — each one is in it when a fixed hash of its PMID falls under
  ``settings.audit_fraction``, a Bernoulli sample that does not depend on text or score. From
  the audited records curators have decided (n, of which k includes) we estimate the includes
  among the unscreened low-score records (point k/n·M and a one-sided 95% Clopper–Pearson upper
  bound) and run the same hypergeometric test on the audit. Its sample is truly random but
  small, so it mostly confirms a nearly finished review; its estimate is the check that does
  not rest on the model's order.

Every count is of the screening pool (``count_pool``, ``store.screening_pool``): the previous
version's reports are not screened again, and the PRISMA flow leaves them out of every count.

A record is screened once somebody has looked at it: it has a decision, or (dual screening)
a screener's vote. A record awaiting its second vote or in conflict was screened in its turn,
in the order the test assumes, so it keeps its place in the sequence and in every count here,
labelled as the classifier is taught it (``screening.agreement.provisional_label``: include
when any screener's latest vote is include or maybe, recall first). Counted as unscreened, the
includes voted on last would drop out of the sequence, leaving a run of excludes that let the
test claim recall it does not have. The summary also says how many of the screened records
await a second vote and how many are in conflict awaiting a resolution (``dual=True``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from scipy.special import betaincinv
from sqlalchemy import and_, func
from sqlmodel import Session, col, select

from screening.agreement import INCLUDE_LIKE
from screening.queue import PAGE_SIZE
from screening.stopping import (
    ALPHA,
    TARGET_RECALL,
    RankedTest,
    audit_p_value,
    ranked_p_value,
    recall_text,
)
from screening.votes import in_conflict, provisionally_included, screened_by_anyone, screened_once
from store.models import Decision, Record
from store.planner import likely
from store.screening_pool import in_screening_pool

ASSUMPTIONS = [
    "Prioritised-order test: records were screened roughly in queue order, so those screened "
    "last were at least as likely to be eligible as the records still unscreened (the test "
    "treats them as a random draw, which makes it conservative); a caution is added when "
    "they were mostly opened below the first page of the queue or not from the queue.",
    "The audit sample is a random sample (fixed hash of the PMID) of records below the flag "
    "threshold; its decided records are representative of the unscreened low-score records.",
    "Curators' decisions are correct; under dual screening a record awaiting its second vote "
    "or in conflict counts as screened, as an include when any screener's latest vote is "
    "include or maybe.",
    "Every flagged record will be screened; undecided flagged records are counted at the "
    "include rate seen among decided flagged records.",
    "The estimates cover the records in the database only, not studies the search missed.",
]


def looked_at() -> Any:
    """WHERE condition on Record: screened (module docstring): decided, or voted on."""
    return col(Record.decision).is_not(None) | col(Record.pmid).in_(screened_by_anyone())


def counts_as_include() -> Any:
    """WHERE condition on Record: decided include or maybe, or unresolved with a screener's
    latest vote include or maybe (its provisional label)."""
    return col(Record.decision).in_(sorted(INCLUDE_LIKE)) | (
        col(Record.decision).is_(None) & col(Record.pmid).in_(provisionally_included()))


def count_live(session: Session, *conds: Any) -> int:
    """Live (not deleted) records matching ``conds``."""
    # likely(): SQLite would otherwise read every record through the ``deleted`` index (it has
    # no statistics) even when ``conds`` pick out a few by key, as the previous version's
    # reports do: 8 ms against 0.4 ms on 20,000 records (docs/benchmarks.md).
    stmt = select(func.count()).select_from(Record).where(likely(col(Record.deleted).is_(False)),
                                                          *conds)
    return int(session.exec(stmt).one())


def count_pool(session: Session, *conds: Any) -> int:
    """Live records of the screening pool matching ``conds``: the previous version's reports
    are not screened again, so no screening number counts them (``store.screening_pool``)."""
    return count_live(session, in_screening_pool(), *conds)


@dataclass(frozen=True)
class Newest:
    """For :func:`pool_figures`: the largest ``column`` among the pool's records matching
    ``where`` (None when none does), read in the same pass as the counts."""

    column: Any
    where: Any


def pool_figures(session: Session, named: Mapping[str, Any]) -> dict[str, Any]:
    """Several figures of the screening pool in one pass over the records: for each name, the
    count of the pool's live records matching its condition (``None``: all of them), or a
    :class:`Newest`. One statement with ``count(*) FILTER (WHERE ...)`` per name (SQLite 3.30+,
    PostgreSQL) instead of one statement each: every figure reads the whole pool anyway (its
    condition leaves out the previous version's reports), so ten of them would cost ten scans
    of the records table."""
    columns = [(func.max(cond.column).filter(cond.where) if isinstance(cond, Newest)
                else func.count() if cond is None else func.count().filter(cond)).label(name)
               for name, cond in named.items()]
    # execute, not exec: SQLModel's exec returns a bare value for a statement of one column.
    row: Any = session.execute(select(*columns).select_from(Record).where(
        col(Record.deleted).is_(False), in_screening_pool())).one()
    return {name: value if isinstance(cond, Newest) else int(value)
            for (name, cond), value in zip(named.items(), row, strict=True)}


@dataclass(frozen=True)
class Unscreened:
    """The pool's records nobody has screened (no decision, no vote): how many, and when the
    newest of them arrived (None: there is none)."""

    count: int
    newest: datetime | None

    @staticmethod
    def figures() -> dict[str, Any]:
        """What to read of the pool for it (for :func:`pool_figures`)."""
        undecided = ~looked_at()
        return {"unscreened": undecided,
                "newest_unscreened": Newest(col(Record.first_seen_at), undecided)}

    @classmethod
    def of(cls, figures: Mapping[str, Any]) -> Unscreened:
        """From figures that include :meth:`figures`."""
        return cls(int(figures["unscreened"]), figures["newest_unscreened"])


def health_figures(*, dual: bool = False) -> dict[str, Any]:
    """What :func:`screening_health` reads of the pool (for :func:`pool_figures`): a page that
    shows other counts of the pool beside the banner asks for both in one pass."""
    decided, undecided = looked_at(), ~looked_at()  # screened (module docstring) or not
    is_include = counts_as_include()
    resolved_not = col(Record.decision).is_(None)
    flagged, audit = col(Record.flagged).is_(True), col(Record.audit_sample).is_(True)
    named: dict[str, Any] = {
        "records": None, "screened": decided, "found": is_include,
        "flagged_left": and_(undecided, flagged),
        "low_left": and_(undecided, col(Record.flagged).is_(False)),
        "audit_n": and_(decided, audit), "audit_k": and_(is_include, audit),
        "flagged_decided": and_(decided, flagged), "flagged_inc": and_(is_include, flagged),
        # how many remain, and the prioritised-order test's start (``screening_order``)
        **Unscreened.figures()}
    if dual:
        # Parts of the screened records that are not settled yet: a methodologist tells
        # "screened once" and "screeners disagree" from agreed (MECIR C40).
        named["awaiting_second_vote"] = and_(resolved_not,
                                             col(Record.pmid).in_(screened_once()))
        named["conflicts_awaiting_resolution"] = in_conflict()
    return named


def screening_health(session: Session, *, target_recall: float = TARGET_RECALL,
                     dual: bool = False,
                     figures: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The health summary (module docstring); ``dual`` adds the dual-screening counts.
    ``figures``: the pool's :func:`health_figures`, when the caller has read them."""
    n = figures if figures is not None else pool_figures(session, health_figures(dual=dual))
    n_records, screened, found = n["records"], n["screened"], n["found"]
    unscreened = Unscreened.of(n)
    remaining = unscreened.count  # n_records - screened: every record is one or the other
    flagged_left, low_left = n["flagged_left"], n["low_left"]
    audit_n, audit_k = n["audit_n"], n["audit_k"]
    flagged_decided, flagged_inc = n["flagged_decided"], n["flagged_inc"]
    flagged_rate = flagged_inc / flagged_decided if flagged_decided else 1.0
    est_flagged = flagged_left * flagged_rate

    out: dict[str, Any] = {"records": n_records, "screened": screened}
    if dual:  # parts of the screened records, right after them
        out["awaiting_second_vote"] = n["awaiting_second_vote"]
        out["conflicts_awaiting_resolution"] = n["conflicts_awaiting_resolution"]
    out.update({"includes_found": found, "records_remaining": remaining})
    order = screening_order(session, unscreened=unscreened)
    ranked = order.test(target_recall)
    warning = order.order_warning(ranked.sample)
    out.update({"flagged_remaining": flagged_left,
                "may_stop": ranked.rejects,
                "stopping_test": ranked.describe() + (f"; caution: {warning}" if warning else ""),
                "stopping_p_value": round(ranked.p_value, 4),
                "audit_screened": audit_n, "audit_includes": audit_k})
    if audit_n == 0:
        out.update({
            "estimated_remaining_includes": None, "estimated_recall": None,
            "audit_test": "not yet possible: no audit-sample record has been screened",
        })
    else:
        rate = audit_k / audit_n
        # Clopper-Pearson's upper bound: the 1 - ALPHA quantile of Beta(k + 1, n - k).
        upper = float(betaincinv(audit_k + 1, audit_n - audit_k, 1 - ALPHA)) if audit_k < audit_n \
            else 1.0
        est_low, est_low_hi = rate * low_left, upper * low_left
        est_total = est_low + est_flagged
        out["estimated_remaining_includes"] = round(est_total, 1)
        out["estimated_remaining_includes_upper95"] = round(est_low_hi + est_flagged, 1)
        out["estimated_recall"] = round(found / (found + est_total), 3) if found else None
        out["estimated_recall_lower95"] = (round(found / (found + est_low_hi + est_flagged), 3)
                                           if found else None)
        # The same hypergeometric test on the low-score pool (audited + still unscreened).
        p = audit_p_value(found=found, pool=low_left + audit_n, sample=audit_n,
                          sample_includes=audit_k, target_recall=target_recall)
        out["audit_p_value"] = round(p, 4)
        out["audit_test"] = (
            f"recall ≥ {recall_text(target_recall)} with 95% confidence (p = {p:.3f})"
            if p < ALPHA
            else f"cannot yet claim recall ≥ {recall_text(target_recall)} (p = {p:.3f}); "
                 "screen more "
                 "audit-sample records")
    out["method"] = ("hypergeometric stopping tests (Callaghan & Müller-Hansen 2020) on the "
                     "records screened last in queue order and on a random audit sample of "
                     "low-score records; Clopper–Pearson bound from the audit")
    out["assumptions"] = list(ASSUMPTIONS)
    return out


@dataclass(frozen=True)
class ScreeningOrder:
    """The screened records (module docstring) in the order they were first decided or voted
    on: their labels (a vote's record: its provisional label), the best
    queue place any screener opened them from (None: via the API without one, a direct link
    or a search), the index of the first screening after the newest unscreened record arrived,
    and how many live records are unscreened."""

    labels: np.ndarray
    places: list[int | None]
    start: int
    unscreened: int

    def test(self, target_recall: float = TARGET_RECALL) -> RankedTest:
        return ranked_p_value(self.labels, self.unscreened, target_recall=target_recall,
                              start=self.start)

    def order_warning(self, sample: int) -> str | None:
        """A sentence when the last ``sample`` records were mostly not taken from the top of
        the queue: then the test's assumption (they were the model's likeliest) is doubtful."""
        if sample == 0:
            return None
        places = self.places[len(self.places) - sample:]
        known = sorted(p for p in places if p is not None)
        unknown = len(places) - len(known)
        median = known[len(known) // 2] if known else None
        if unknown * 2 > len(places):
            return (f"{unknown} of the last {len(places)} records screened were not opened "
                    "from the queue (API without a place, direct link or search): the test "
                    "assumes queue order, which cannot be checked for them")
        # Below the first page of the queue is not "the top".
        if median is not None and median > PAGE_SIZE:
            return (f"the last {len(places)} records screened were opened at median queue "
                    f"place {median}, not from the top: the test assumes queue order")
        return None


def screening_order(session: Session, *, unscreened: Unscreened | None = None) -> ScreeningOrder:
    """Read the screened records in order (``ScreeningOrder``) for the prioritised-order test;
    ``unscreened``: the pool's unscreened records, when the caller has read them. A record
    with votes but no resolved decision is screened, in the place of its first vote, with its
    provisional label (module docstring)."""
    # The screening pool only: the previous version's reports were never screened here, and
    # a decision recorded on one earlier is kept but is no screening (as in the PRISMA flow).
    live = col(Record.deleted).is_(False) & in_screening_pool()
    first_look = func.min(Decision.created_at).label("first_look")
    looks = (select(col(Record.pmid), col(Record.decision), first_look,
                    func.min(Decision.rank_shown).label("place"))
             .select_from(Record).join(Decision, col(Decision.pmid) == col(Record.pmid),
                                       isouter=True)
             .where(live, looked_at())
             .group_by(col(Record.pmid), col(Record.decision)).subquery())
    included = looks.c.decision.in_(sorted(INCLUDE_LIKE)) | (
        looks.c.decision.is_(None) & looks.c.pmid.in_(provisionally_included()))
    rows = session.exec(select(included, looks.c.place, looks.c.first_look)
                        .order_by(looks.c.first_look.asc().nulls_first(), looks.c.pmid)).all()
    if unscreened is None:
        unscreened = Unscreened.of(pool_figures(session, Unscreened.figures()))
    newest = unscreened.newest
    # Screenings before the newest unscreened record arrived were drawn from an urn without it
    # (no decision row: screened before anything was recorded, so before it too). Counted
    # here from the rows read anyway, not by grouping the decisions a second time in SQL.
    start = sum(1 for _, _, first in rows
                if first is None or (newest is not None and first <= newest))
    labels = np.fromiter((bool(label) for label, _, _ in rows), dtype=np.int64,
                         count=len(rows))
    return ScreeningOrder(labels, [None if p is None else int(p) for _, p, _ in rows], start,
                          unscreened.count)


def prioritised_order_test(session: Session, *,
                           target_recall: float = TARGET_RECALL) -> RankedTest:
    """The prioritised-order stopping test on the database (``screening.stopping``)."""
    return screening_order(session).test(target_recall)


def stopping_supported(session: Session, *, target_recall: float = TARGET_RECALL) -> bool:
    """Whether the stopping test supports stopping (the health's ``may_stop``): what the PRISMA
    flow needs before it counts the records below the flag threshold as not screened, removed
    before screening (``reports.prisma.prisma_counts``)."""
    return prioritised_order_test(session, target_recall=target_recall).rejects
