"""Screening health: how many includes may still hide among the records nobody screened.

Method. Records below the flag threshold ("low-score") feed a random audit sample: each one is
in it when a fixed hash of its PMID falls under ``settings.audit_fraction`` — a Bernoulli
sample that does not depend on text or score. From the audited records curators have decided
(n, of which k includes) we estimate the includes among the unscreened low-score records
(point k/n·M and a one-sided 95% Clopper–Pearson upper bound), and run the hypergeometric
stopping test of Callaghan & Müller-Hansen (2020): H0 "recall is below the target" is
rejected (p < 0.05) when finding only k includes in the sample would be unlikely had at least
K_tar = ⌊found·(1−r)/r⌋ + 1 includes remained.

Under dual screening a record is screened once its two votes agree or a conflict is resolved;
until then it counts as remaining, and the summary also says how many of the remaining records
await a second vote and how many are in conflict awaiting a resolution (``dual=True``).
"""

from __future__ import annotations

import math
from typing import Any

from scipy.stats import beta, hypergeom
from sqlalchemy import func
from sqlmodel import Session, col, select

from screening.votes import in_conflict, screened_once
from store.models import Record

TARGET_RECALL = 0.95  # the recall the stopping test speaks about (Callaghan & Müller-Hansen)
ALPHA = 0.05

ASSUMPTIONS = [
    "The audit sample is a random sample (fixed hash of the PMID) of records below the flag "
    "threshold; its decided records are representative of the unscreened low-score records.",
    "Curators' decisions on audited records are correct.",
    "Every flagged record will be screened; undecided flagged records are counted at the "
    "include rate seen among decided flagged records.",
    "The estimate covers the records in the database only, not studies the search missed.",
]


def stopping_p_value(*, found: int, pool: int, sample: int, sample_includes: int,
                     target_recall: float) -> float:
    """P(≤ sample_includes includes in a random sample of ``sample`` from ``pool`` records) if
    just enough includes (K_tar) remained in the pool to make recall < target_recall."""
    k_tar = math.floor(found * (1 - target_recall) / target_recall + 1e-9) + 1
    return float(hypergeom.cdf(sample_includes, pool, min(pool, sample_includes + k_tar),
                               sample))


def count_live(session: Session, *conds: Any) -> int:
    """Live (not deleted) records matching ``conds``."""
    stmt = select(func.count()).select_from(Record).where(col(Record.deleted).is_(False), *conds)
    return int(session.exec(stmt).one())


def screening_health(session: Session, *, target_recall: float = TARGET_RECALL,
                     dual: bool = False) -> dict[str, Any]:
    """The health summary (module docstring); ``dual`` adds the dual-screening counts."""
    decided = col(Record.decision).is_not(None)
    undecided = col(Record.decision).is_(None)
    is_include = col(Record.decision).in_(["include", "maybe"])
    n_records = count_live(session)
    screened = count_live(session, decided)
    found = count_live(session, is_include)
    remaining = n_records - screened
    flagged_left = count_live(session, undecided, col(Record.flagged).is_(True))
    low_left = count_live(session, undecided, col(Record.flagged).is_(False))
    audit_n = count_live(session, decided, col(Record.audit_sample).is_(True))
    audit_k = count_live(session, is_include, col(Record.audit_sample).is_(True))
    flagged_decided = count_live(session, decided, col(Record.flagged).is_(True))
    flagged_inc = count_live(session, is_include, col(Record.flagged).is_(True))
    flagged_rate = flagged_inc / flagged_decided if flagged_decided else 1.0
    est_flagged = flagged_left * flagged_rate

    out: dict[str, Any] = {
        "records": n_records, "screened": screened, "includes_found": found,
        "records_remaining": remaining,
    }
    if dual:
        # Parts of records_remaining that no longer wait for a first look: a methodologist
        # tells "not screened yet" from "screened once" and "screeners disagree" (MECIR C40).
        out["awaiting_second_vote"] = count_live(session, undecided,
                                                 col(Record.pmid).in_(screened_once()))
        out["conflicts_awaiting_resolution"] = count_live(session, in_conflict())
    out.update({"flagged_remaining": flagged_left,
                "audit_screened": audit_n, "audit_includes": audit_k})
    if audit_n == 0:
        out.update({
            "estimated_remaining_includes": None, "estimated_recall": None,
            "stopping_test": "not yet possible: no audit-sample record has been screened",
        })
    else:
        rate = audit_k / audit_n
        upper = float(beta.ppf(1 - ALPHA, audit_k + 1, audit_n - audit_k)) if audit_k < audit_n \
            else 1.0
        est_low, est_low_hi = rate * low_left, upper * low_left
        est_total = est_low + est_flagged
        out["estimated_remaining_includes"] = round(est_total, 1)
        out["estimated_remaining_includes_upper95"] = round(est_low_hi + est_flagged, 1)
        out["estimated_recall"] = round(found / (found + est_total), 3) if found else None
        out["estimated_recall_lower95"] = (round(found / (found + est_low_hi + est_flagged), 3)
                                           if found else None)
        # Hypergeometric stopping test on the low-score pool (audited + still unscreened).
        p = stopping_p_value(found=found, pool=low_left + audit_n, sample=audit_n,
                             sample_includes=audit_k, target_recall=target_recall)
        out["stopping_p_value"] = round(p, 4)
        out["stopping_test"] = (
            f"recall ≥ {target_recall:.0%} with 95% confidence (p = {p:.3f})" if p < ALPHA
            else f"cannot yet claim recall ≥ {target_recall:.0%} (p = {p:.3f}); screen more "
                 "audit-sample records")
    out["method"] = ("random audit sample of low-score records; Clopper–Pearson bound and "
                     "hypergeometric stopping test (Callaghan & Müller-Hansen 2020)")
    out["assumptions"] = list(ASSUMPTIONS)
    return out
