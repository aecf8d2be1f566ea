"""The transparent keyword prior used until a classifier can be trained.

Each pattern adds its weight when it occurs in the title, abstract, MeSH or publication
types; the sum minus ``BIAS`` goes through a logistic function. A record mentioning myeloma
and a randomised design scores above 0.5 and is flagged; reviews, case reports and lab work
score low. Curators can read exactly why a record ranks where it does.
"""

from __future__ import annotations

import math
import re

from screening.features import Document

KEYWORD_WEIGHTS: dict[str, float] = {
    r"\bmyeloma\b": 2.0,
    r"\bmaintenance\b": 2.0,
    r"\brandomi[sz]": 1.5,
    r"\bphase (?:iii|3)\b": 1.0,
    r"\b(?:lenalidomide|thalidomide|pomalidomide|bortezomib|ixazomib|carfilzomib|"
    r"daratumumab|isatuximab|elotuzumab|interferon)\b": 1.0,
    r"\b(?:asct|autologous|transplant)": 0.5,
    r"progression[- ]free|overall survival|event[- ]free": 0.5,
    r"\b(?:review|meta-analysis|editorial|comment|letter|case reports?)\b": -2.0,
    r"\bin vitro\b|\bmice\b|\bcell lines?\b": -2.0,
}
BIAS = 3.0
#: A prior score at or above this flags the record (myeloma + randomised ≈ 0.62).
PRIOR_THRESHOLD = 0.5

_COMPILED = [(re.compile(p, re.IGNORECASE), w) for p, w in KEYWORD_WEIGHTS.items()]


def prior_score(doc: Document) -> float:
    text = " ".join([doc.title, doc.abstract, *doc.mesh, *doc.keywords, *doc.publication_types])
    total = sum(w for pattern, w in _COMPILED if pattern.search(text)) - BIAS
    return 1.0 / (1.0 + math.exp(-total))


def prior_config() -> dict[str, object]:
    """What a keyword-prior ModelVersion stores as its configuration."""
    return {"name": "keyword-prior", "keyword_weights": KEYWORD_WEIGHTS, "bias": BIAS,
            "threshold": PRIOR_THRESHOLD}
