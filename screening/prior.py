"""The transparent keyword prior used until a classifier can be trained.

Each pattern adds its weight when it occurs in the title, abstract, MeSH or publication
types; the sum minus ``BIAS`` goes through a logistic function, which orders the queue. A
record is *flagged* only when it passes the gates of the protocol's PubMed query — the
concepts the query ANDs together, read from the configured query (``MMLR_QUERY``) by
``screening.query_gates`` — and is not typed as something that is never a trial report
(``NOT_TRIAL_REPORTS``: a review, editorial, comment, letter, case report or a notice);
otherwise its score is capped just below the threshold, so it keeps its place in the
order but is not flagged. Without the gates an additive score flags every randomised myeloma
trial (induction, transplant) and maintenance RCTs in other cancers: on the demo corpus 170 of
186 records instead of 62, with the same 45 of 45 eligible trials found. Curators can read
exactly why a record ranks where it does.

A keyword-prior ModelVersion stores its configuration (``prior_config``): the weights, the
query and the gates derived from it, so ``gates_from_config`` explains a past score with the
query that produced it even after ``MMLR_QUERY`` changes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from screening.features import Document
from screening.pubmed_query import RecordText
from screening.query_gates import Gate, QueryGates, query_gates
from store.errors import ValidationError

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

#: Publication types that are never a trial report. The notices (erratum, retraction,
#: expression of concern) are *about* a report and reach curators through the digest's
#: alerts; flagging them as likely trials would only put them in the queue twice. PubMed
#: names a retraction notice "Retraction of Publication" (the retracted article itself is
#: "Retracted Publication" and stays flaggable); "Retraction Notice" is the demo corpus's.
NOT_TRIAL_REPORTS = frozenset({"review", "systematic review", "meta-analysis", "editorial",
                               "comment", "letter", "case reports", "published erratum",
                               "retraction of publication", "retraction notice",
                               "expression of concern"})
#: Where a record that fails a gate is capped: just below the flag threshold.
PRIOR_CAP = PRIOR_THRESHOLD - 0.01


def _prior_text(doc: Document) -> str:
    return " ".join([doc.title, doc.abstract, *doc.mesh, *doc.keywords, *doc.publication_types])


# ----------------------------------------------------------------------------- gates
def prior_gates(query: str) -> QueryGates:
    """The gates of the configured query (``settings.query``), derived once and cached.

    A query the gate reader cannot evaluate raises ValidationError naming MMLR_QUERY: the
    prior cannot flag faithfully without it. PubMed itself may well understand the query, so
    only the parts of mmlr that need the prior call this (docs/curation.md)."""
    try:
        return query_gates(query)
    except ValidationError as exc:
        advice = ("PubMed may accept this query, but the keyword prior cannot: rewrite "
                  "MMLR_QUERY in the syntax docs/curation.md lists (\"The keyword prior and "
                  "the protocol's query\") or simplify it")
        hint = f"{exc.hint}; {advice}" if exc.hint else advice
        raise ValidationError(f"MMLR_QUERY: {exc.message}", hint=hint) from None


class _Pattern:
    """A gate of a configuration stored before gates came from the query: a regex over the
    prior's text (kept so the old versions' scores stay explainable)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = re.compile(pattern, re.IGNORECASE)

    def matches(self, record: RecordText) -> bool:
        return self.pattern.search(_prior_text(record.doc)) is not None


def gates_from_config(config: Mapping[str, Any]) -> QueryGates:
    """The gates a stored keyword-prior version scored with: derived again from its stored
    query, or (configurations without one) its stored regular expressions."""
    query = config.get("query")
    if isinstance(query, str):
        return query_gates(query)
    legacy = config.get("flag_gates")
    if isinstance(legacy, dict):
        return QueryGates(query=None, gates=tuple(
            Gate(name=str(name), expression=str(pattern), required=True,
                 matcher=_Pattern(str(pattern))) for name, pattern in legacy.items()))
    raise ValidationError("this keyword-prior version stores neither a query nor gates",
                          hint="run `mmlr screen --retrain`")


# ----------------------------------------------------------------------------- scoring
@dataclass(frozen=True, slots=True)
class KeywordMatch:
    """One KEYWORD_WEIGHTS pattern found in a record, with the text it matched first."""

    pattern: str
    weight: float
    matched: str


def matched_keywords(doc: Document, text: str | None = None) -> list[KeywordMatch]:
    """The patterns that add their weight to this record's prior score (in table order).
    ``prior_score`` sums exactly these, so the record page's explanation cannot drift."""
    if text is None:
        text = _prior_text(doc)
    out = []
    for (pattern, weight), source in zip(_COMPILED, KEYWORD_WEIGHTS, strict=True):
        found = pattern.search(text)
        if found:
            out.append(KeywordMatch(source, weight, found.group(0)))
    return out


def prior_decision(doc: Document, text: str | None = None) -> float:
    """The sum the logistic is applied to: matched weights minus ``BIAS``."""
    return sum(m.weight for m in matched_keywords(doc, text)) - BIAS


def prior_score(doc: Document, gates: QueryGates) -> float:
    """The logistic of ``prior_decision``, capped below the threshold unless the record
    passes ``gates`` (see the module docstring)."""
    score = 1.0 / (1.0 + math.exp(-prior_decision(doc)))
    if not passes_gates(doc, gates):
        score = min(score, PRIOR_CAP)
    return score


def failed_gates(doc: Document, gates: QueryGates) -> list[str]:
    """Names of the query's gates this record does not pass, in query order."""
    return gates.failed(doc)


def not_trial_report_types(doc: Document) -> list[str]:
    """The record's publication types that can never be a trial report."""
    return [pt for pt in doc.publication_types if pt.lower() in NOT_TRIAL_REPORTS]


def passes_gates(doc: Document, gates: QueryGates) -> bool:
    """True when the prior may flag the record (see the module docstring)."""
    if not_trial_report_types(doc):
        return False
    return not failed_gates(doc, gates)


def prior_config(gates: QueryGates) -> dict[str, object]:
    """What a keyword-prior ModelVersion stores as its configuration: enough to explain its
    scores after the configured query changes."""
    return {"name": "keyword-prior", "keyword_weights": KEYWORD_WEIGHTS, "bias": BIAS,
            "threshold": PRIOR_THRESHOLD, "query": gates.query, "query_gates": gates.to_json(),
            "not_trial_reports": sorted(NOT_TRIAL_REPORTS)}
