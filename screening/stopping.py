"""Stopping tests: may screening stop and claim a recall target?

Both are the hypergeometric test of Callaghan & Müller-Hansen (Syst Rev 2020;9:273). The null
hypothesis is "recall is below the target": at least ``m = ⌊F·(1−r)/r⌋ + 1`` includes are still
among the unscreened records, where F is the number of includes found so far and r the
target. A sample of ``n`` records taken at random from an urn (the sample plus the records it
was drawn from) that contains only ``k`` includes is unlikely if the urn held ``k + m``:
``p = P(X ≤ k)``, X hypergeometric. A small p rejects the null: stop, recall ≥ r.

- **Audit test** (``audit_p_value``): the sample is the random audit of low-score records
  (a fixed hash of the PMID, so truly random). It needs the sample to be a large share of
  the urn: with nothing found in it, p ≈ (1 − n/N)^m, so the audit must cover 95% of the
  low-score records still unscreened when m = 1 (fewer than 19 includes found, at a 95%
  target) and 39% when m = 6. With a 5% audit it mostly confirms a review that is nearly
  screened; its value is the unbiased estimate of what the low scores still hide.
- **Prioritised-order test** (``ranked_p_value``): the records screened last, in the queue's
  order, are taken as the sample and the records still unscreened as the rest of the urn.
  They were not drawn at random: the model put them first because it thought them *more*
  likely eligible than the rest, so treating them as a random draw overstates the includes
  the rest holds, and the test is conservative (the assumption of Callaghan & Müller-Hansen,
  their evaluations and ours in docs/benchmarks.md). Every n (the last 1, 2, … screened) is a
  candidate sample and the smallest p counts, as in their implementation. A sample may only
  start after the last unscreened record arrived: a record that came in later was never in
  the urn those screenings were drawn from, and a run of excludes says nothing about it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from screening.hypergeometric import hypergeom_cdf

#: The recall the tests speak about by default (Callaghan & Müller-Hansen's usual target).
TARGET_RECALL = 0.95
ALPHA = 0.05


def recall_text(value: float) -> str:
    """A recall (target) as a percentage with the digits it has: 0.995 is "99.5%", 0.95
    "95%". Never rounded: "≥ 100%" for a 99.5% target claimed more than the test shows, and a
    target below 1 must not read as "100%". The shortest decimal that reads back as the same
    float (``repr``) is the value the setting was given as."""
    percent = Decimal(repr(float(value))) * 100
    text = format(percent.normalize(), "f")
    return f"{text}%"


def missed_for_failure(found: int, target_recall: float) -> int:
    """The fewest includes still unscreened that would make recall (found / all) < target."""
    return math.floor(found * (1 - target_recall) / target_recall + 1e-9) + 1


def null_p_values(k: np.ndarray, unsampled: int, n: np.ndarray, m: int) -> np.ndarray:
    """P(≤ k includes in a random sample of n) from an urn of the sample plus ``unsampled``
    records holding k + m includes: the null at its boundary. 0 where the unsampled records
    cannot hold m includes (the null is impossible). Elementwise over ``k`` and ``n``."""
    k, n = np.asarray(k, dtype=np.int64), np.asarray(n, dtype=np.int64)
    urn, urn_includes = unsampled + n, k + m
    p = np.zeros(np.shape(n))
    possible = urn_includes <= urn
    p[possible] = hypergeom_cdf(k[possible], urn[possible], urn_includes[possible], n[possible])
    return p


def audit_p_value(*, found: int, pool: int, sample: int, sample_includes: int,
                  target_recall: float) -> float:
    """P(≤ sample_includes includes in a random sample of ``sample`` from ``pool`` records) if
    just enough includes remained in the pool to make recall < target_recall."""
    return float(null_p_values(np.array([sample_includes]), pool - sample, np.array([sample]),
                               missed_for_failure(found, target_recall))[0])


@dataclass(frozen=True)
class RankedTest:
    """The prioritised-order test's result: the smallest p over the candidate samples, and the
    sample behind it (the last ``sample`` records screened, ``sample_includes`` of them
    includes). ``sample`` is 0 when no record was screened after the last arrival."""

    p_value: float
    sample: int
    sample_includes: int
    unscreened: int
    found: int
    target_recall: float
    screened: int

    @property
    def rejects(self) -> bool:
        return self.p_value < ALPHA

    def describe(self) -> str:
        r = recall_text(self.target_recall)
        if self.unscreened == 0:
            return "every record has been screened"
        if self.screened == 0:
            return f"cannot yet claim recall ≥ {r}: no record has been screened yet"
        if self.sample == 0:
            return (f"cannot yet claim recall ≥ {r}: no record has been screened since the "
                    "last unscreened record arrived")
        last = ("the last record screened" if self.sample == 1
                else f"the last {self.sample} records screened")
        basis = (f"{last} held {self.sample_includes} "
                 f"include{'' if self.sample_includes == 1 else 's'}; "
                 f"{self.unscreened} unscreened")
        if self.rejects:
            return f"recall ≥ {r} with 95% confidence (p = {self.p_value:.3f}; {basis})"
        return (f"cannot yet claim recall ≥ {r} (p = {self.p_value:.3f}; {basis}); "
                "keep screening in queue order")


def ranked_p_values(labels: np.ndarray, unscreened: int, target_recall: float, *,
                    start: int = 0) -> np.ndarray:
    """p for every candidate sample: element n−1 is the last n screened records' p.

    ``labels`` are the screened records' labels (1 include) in screening order; samples may
    not reach before index ``start`` (the first screening after the last arrival)."""
    y = np.asarray(labels, dtype=np.int64)
    found = int(y.sum())
    m = missed_for_failure(found, target_recall)
    tail = y[start:][::-1]  # most recent first: element n−1 closes the last-n sample
    return null_p_values(np.cumsum(tail), unscreened, np.arange(1, len(tail) + 1), m)


def ranked_p_value(labels: np.ndarray, unscreened: int, *,
                   target_recall: float = TARGET_RECALL, start: int = 0) -> RankedTest:
    """The prioritised-order test (module docstring) on screened ``labels`` in order.

    Only one candidate per include count needs computing: with k fixed, a longer sample
    (one more exclude) leaves the unscreened records a smaller share of the urn, so p falls.
    The smallest p is therefore at a sample that ends just before an include (or reaches
    ``start``): O(includes) work instead of O(screened), the same minimum as
    ``ranked_p_values(...).min()``."""
    y = np.asarray(labels, dtype=np.int64)
    found = int(y.sum())
    if unscreened == 0:
        return RankedTest(0.0, 0, 0, 0, found, target_recall, len(y))
    tail = y[start:][::-1]  # most recent first
    if len(tail) == 0:
        return RankedTest(1.0, 0, 0, unscreened, found, target_recall, len(y))
    # The longest sample holding j includes stops just before the (j+1)-th most recent one.
    n = np.r_[np.flatnonzero(tail), len(tail)]
    k = np.arange(len(n))
    keep = n > 0
    n, k = n[keep], k[keep]
    p = null_p_values(k, unscreened, n, missed_for_failure(found, target_recall))
    best = int(np.argmin(p))
    return RankedTest(float(p[best]), int(n[best]), int(k[best]), unscreened, found,
                      target_recall, len(y))


def first_stop(labels: np.ndarray, *, target_recall: float = TARGET_RECALL,
               start: int = 0) -> int | None:
    """How many of ``labels`` (every record of a finished review, in screening order) had
    been screened when the prioritised-order test first allowed stopping; None if it never
    did before the last record. The test is asked after every record from ``start`` on
    (e.g. after two priors the model did not choose), as a curator would see it."""
    y = np.asarray(labels, dtype=np.int64)
    total = len(y)
    for t in range(start + 1, total):
        if ranked_p_value(y[:t], total - t, target_recall=target_recall, start=start).rejects:
            return t
    return None


__all__ = ["ALPHA", "TARGET_RECALL", "RankedTest", "audit_p_value", "first_stop",
           "missed_for_failure", "null_p_values", "ranked_p_value", "ranked_p_values"]
