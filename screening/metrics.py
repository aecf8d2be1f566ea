"""Screening metrics of one simulated order (definitions of issue 5, after Cohen et al. 2006).

The two prior records are excluded: N = records − 2, P = includes − 1.
- recall@x%: includes found among the first ⌊x·N⌋ screened, divided by P;
- n_r: records screened until ⌈r·P⌉ includes are found;
- WSS@r = (N − n_r)/N − (1 − r) (not asreview-insights' interpolated variant).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class OrderMetrics:
    n: int
    p: int
    recall_at_10: float
    recall_at_25: float
    wss_95: float
    wss_100: float
    n_95: int
    n_100: int


def records_to_recall(labels: Sequence[int], p: int, r: float) -> int:
    """Records screened (1-based count) until ⌈r·P⌉ includes have been found."""
    need = math.ceil(r * p - 1e-9)
    if need <= 0:
        return 0
    found = 0
    for i, label in enumerate(labels, start=1):
        found += int(label)
        if found >= need:
            return i
    raise ValueError(f"the order finds only {found} of the {need} includes needed")


def recall_at(labels: Sequence[int], n: int, p: int, share: float) -> float:
    k = math.floor(share * n + 1e-9)
    return sum(int(v) for v in labels[:k]) / p


def order_metrics(labels: Sequence[int], *, n: int, p: int) -> OrderMetrics:
    """Metrics of a screening order of the N non-prior records (labels in screening order).

    ``labels`` may stop early once every include is found: the rest are all excludes.
    """
    if p < 1 or n < 1:
        raise ValueError("need at least one include and one record besides the priors")
    n95 = records_to_recall(labels, p, 0.95)
    n100 = records_to_recall(labels, p, 1.0)
    return OrderMetrics(
        n=n, p=p,
        recall_at_10=recall_at(labels, n, p, 0.10),
        recall_at_25=recall_at(labels, n, p, 0.25),
        wss_95=(n - n95) / n - 0.05,
        wss_100=(n - n100) / n,
        n_95=n95, n_100=n100,
    )
