"""Why a record scores what it does: per-feature contributions to the model's decision.

The default classifier is linear (``_Linear`` around LinearSVC or LogisticRegression, and the
``FoldEnsemble`` of such fold models, whose decision is the mean of the members' decisions,
hence itself linear with the mean coefficients and the mean intercept). For such a model the
decision splits exactly into ``intercept + Σ_j x_j·w_j``, so listing the largest terms is an
honest account of the ranking, not an approximation; ``Explanation.rest`` carries the terms
that are not listed so the parts always add up to the decision. Any other classifier gets an
explanation that says it has none rather than a guess (a surrogate would look just as precise
while explaining something else). The keyword prior of the cold start is explained from its
own table (``screening.prior``): matched patterns, the bias, the gates of the query it
scored with that the record fails, and the cap.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from screening.features import DESIGN_CUES, Document, _DesignCues, _Tfidf
from screening.model import FoldEnsemble, ScreeningModel, _Linear, to_score
from screening.prior import (
    BIAS,
    PRIOR_CAP,
    failed_gates,
    matched_keywords,
    not_trial_report_types,
    prior_score,
)
from screening.query_gates import QueryGates

log = logging.getLogger(__name__)

#: Token prefixes of the controlled-term features (``Document.terms`` and title tokens).
#: Plain words get curly quotes: straight ones would show as &#34; in the page source.
_PREFIXES = {"mesh:": "MeSH: ", "pt:": "publication type: ", "kw:": "keyword: ",
             "j:": "journal: ", "t:": "title: "}

HOW_TO_READ_LINEAR = (
    "The score is the logistic of the sum of the intercept and every contribution; bigger "
    "positive numbers pushed the record up the queue, negative ones pushed it down. A "
    "contribution is the feature's weight in this record (TF-IDF) times the model's "
    "coefficient for it.")
HOW_TO_READ_PRIOR = (
    "The score is the logistic of the sum of the matched patterns' weights minus the bias; "
    "bigger positive numbers pushed the record up the queue. A record that misses a gate (a "
    "concept the protocol's PubMed query ANDs together) or is typed as not a trial report is "
    "capped just below the flag threshold.")


@dataclass(frozen=True, slots=True)
class Contribution:
    """One feature's part of the decision: ``value × weight``."""

    feature: str  # the model's own feature name (or the prior's pattern)
    label: str  # what a curator reads
    value: float  # the feature's value in this record (after block weights)
    weight: float  # the model's coefficient (the prior's pattern weight)
    contribution: float


@dataclass
class Explanation:
    """What pushed one record's decision up or down.

    ``kind`` is "linear" (a trained linear model), "prior" (the keyword prior) or
    "unavailable" (``message`` says why). For the first two,
    ``intercept + Σ up + Σ down + rest == decision``.
    """

    kind: str
    classifier: str
    up: list[Contribution] = field(default_factory=list)
    down: list[Contribution] = field(default_factory=list)
    intercept: float | None = None
    rest: float = 0.0  # sum of the contributions not listed in up/down
    n_rest: int = 0
    decision: float | None = None
    score: float | None = None
    message: str | None = None
    how_to_read: str = ""
    # keyword prior only: every gate of the query it scored with, and those this record fails
    gates: list[str] = field(default_factory=list)
    failed_gates: list[str] = field(default_factory=list)
    not_trial_report: list[str] = field(default_factory=list)
    capped: bool = False
    # filled in by the caller that knows the stored version
    model_version_id: int | None = None
    model_name: str | None = None

    @property
    def available(self) -> bool:
        return self.kind != "unavailable"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["available"] = self.available
        return data


def unavailable(message: str, *, classifier: str = "") -> Explanation:
    return Explanation(kind="unavailable", classifier=classifier, message=message)


# ----------------------------------------------------------------------------- trained models
def _linear_members(classifier: Any) -> list[Any] | None:
    """The fitted sklearn estimators whose mean decision is the classifier's, or None when
    the classifier is not a (mean of) plain linear model(s)."""
    members = classifier.members if isinstance(classifier, FoldEnsemble) else [classifier]
    if not members or not all(isinstance(m, _Linear) for m in members):
        return None
    estimators = [m.estimator for m in members]
    for est in estimators:
        coef = getattr(est, "coef_", None)
        intercept = getattr(est, "intercept_", None)
        # Binary models only: one row of coefficients, one intercept.
        if coef is None or intercept is None or np.shape(coef)[0] != 1 \
                or np.size(intercept) != 1:
            return None
    return estimators


def _block_label(extractor: Any, name: str) -> str:
    analyzer = getattr(getattr(extractor, "vectorizer", None), "analyzer", None)
    if analyzer in ("char", "char_wb"):
        return f"characters “{name}”"
    for prefix, label in _PREFIXES.items():
        if name.startswith(prefix):
            return label + name[len(prefix):]
    return f"“{name}”"


def _blocks(model: ScreeningModel) -> list[tuple[Any, Any]] | None:
    """(extractor, its feature names) per column block, or None for an extractor we cannot
    name (the caller then says there is no explanation instead of mislabelling columns)."""
    out: list[tuple[Any, Any]] = []
    for block, _weight, extractor in model.features.extractors:
        if isinstance(extractor, _Tfidf):
            if extractor.fitted:  # an unfitted block has no columns
                out.append((extractor, extractor.vectorizer.get_feature_names_out()))
        elif isinstance(extractor, _DesignCues):
            out.append((extractor, np.asarray([f"cue:{cue}" for cue in DESIGN_CUES])))
        else:
            log.debug("no feature names for extractor %s", block)
            return None
    return out


def _label(extractor: Any, name: str) -> str:
    if isinstance(extractor, _DesignCues):
        return f"design cue: {name.removeprefix('cue:').replace('_', ' ')}"
    return _block_label(extractor, name)


def feature_names(model: ScreeningModel) -> list[tuple[str, str]]:
    """(feature name, human label) per column of ``model.features.transform``, in order."""
    return [(str(name), _label(ext, str(name))) for ext, names in _blocks(model) or []
            for name in names]


def _top(items: list[Contribution], k: int, *, positive: bool) -> list[Contribution]:
    chosen = [c for c in items if (c.contribution > 0 if positive else c.contribution < 0)]
    # Largest magnitude first; ties by name so the list is stable between page views.
    chosen.sort(key=lambda c: (-abs(c.contribution), c.feature))
    return chosen[:k]


def _split(items: list[Contribution], k: int) -> tuple[list[Contribution], list[Contribution],
                                                     float, int]:
    up, down = _top(items, k, positive=True), _top(items, k, positive=False)
    shown = {id(c) for c in up + down}
    rest = [c.contribution for c in items if id(c) not in shown]
    return up, down, float(np.sum(rest)) if rest else 0.0, len(rest)


class Explainer:
    """A trained model's effective coefficients, intercept and feature names, computed once.

    Building the names of a large vocabulary costs far more than explaining one record, so
    the web app keeps one Explainer per loaded model version (``screening.web.explanations``).
    """

    def __init__(self, model: ScreeningModel) -> None:
        self.model = model
        self.classifier = model.config.classifier
        self.problem: str | None = None
        self.coef = np.zeros(0)
        self.intercept = 0.0
        self._offsets: list[int] = []
        self._blocks: list[tuple[Any, Any]] = []
        estimators = _linear_members(model.classifier)
        if estimators is None:
            self.problem = (f"no per-feature explanation for classifier {self.classifier}: "
                            "only linear models can be split into exact per-feature parts")
            return
        self.coef = np.mean([np.asarray(e.coef_, dtype=np.float64).ravel()
                             for e in estimators], axis=0)
        self.intercept = float(np.mean([float(np.ravel(e.intercept_)[0]) for e in estimators]))
        blocks = _blocks(model)
        n_names = sum(len(names) for _, names in blocks or [])
        if blocks is None or n_names != self.coef.shape[0]:
            self.problem = (f"no per-feature explanation for classifier {self.classifier}: "
                            f"the model has {self.coef.shape[0]} coefficients but {n_names} "
                            "named features")
            return
        self._blocks = blocks
        self._offsets = list(np.cumsum([0] + [len(names) for _, names in blocks])[:-1])

    def _name(self, j: int) -> tuple[str, str]:
        b = bisect.bisect_right(self._offsets, j) - 1
        extractor, names = self._blocks[b]
        name = str(names[j - self._offsets[b]])
        return name, _label(extractor, name)

    def explain(self, doc: Document, k: int = 8) -> Explanation:
        """Top-``k`` features pushing ``doc``'s decision up and down."""
        if self.problem is not None:
            return unavailable(self.problem, classifier=self.classifier)
        k = max(1, k)
        x = self.model.features.transform([doc]).tocsr()
        if x.shape[1] != self.coef.shape[0]:
            return unavailable(f"no per-feature explanation for classifier {self.classifier}: "
                               f"{x.shape[1]} features but {self.coef.shape[0]} coefficients",
                               classifier=self.classifier)
        items = []
        for j, value in zip(x.indices, x.data, strict=True):
            contribution = float(value) * float(self.coef[j])
            if contribution != 0.0:
                name, label = self._name(int(j))
                items.append(Contribution(feature=name, label=label, value=float(value),
                                          weight=float(self.coef[j]),
                                          contribution=contribution))
        up, down, rest, n_rest = _split(items, k)
        # The decision comes from the model itself, not from our sum: the identity
        # intercept + Σ contributions == decision is then a check, not a tautology.
        decision = float(self.model.classifier.decision(x)[0])
        return Explanation(kind="linear", classifier=self.classifier, up=up, down=down,
                           intercept=self.intercept, rest=rest, n_rest=n_rest,
                           decision=decision, score=float(to_score(np.asarray([decision]))[0]),
                           how_to_read=HOW_TO_READ_LINEAR)


def explain_record(model: ScreeningModel, doc: Document, k: int = 8) -> Explanation:
    """Top-``k`` features pushing ``doc``'s decision up and down under a trained model (an
    "unavailable" explanation for a classifier that is not linear)."""
    return Explainer(model).explain(doc, k)


# ----------------------------------------------------------------------------- keyword prior
def explain_prior(doc: Document, gates: QueryGates, k: int = 8) -> Explanation:
    """The keyword prior's account of ``doc``: matched patterns, bias, cap and the ``gates``
    it scored with (those of the version that scored it: ``prior.gates_from_config``)."""
    if k < 1:
        k = 1
    items = [Contribution(feature=m.pattern, label=f"“{m.matched}”", value=1.0,
                          weight=m.weight, contribution=m.weight)
             for m in matched_keywords(doc)]
    up, down, rest, n_rest = _split(items, k)
    decision = sum(c.contribution for c in items) - BIAS
    failed = failed_gates(doc, gates)
    types = not_trial_report_types(doc)
    score = prior_score(doc, gates)
    uncapped = float(to_score(np.asarray([decision]))[0])
    return Explanation(kind="prior", classifier="keyword prior", up=up, down=down,
                       intercept=-BIAS, rest=rest, n_rest=n_rest, decision=decision,
                       score=score, how_to_read=HOW_TO_READ_PRIOR, gates=gates.names,
                       failed_gates=failed, not_trial_report=types,
                       capped=bool((failed or types) and uncapped > PRIOR_CAP))
