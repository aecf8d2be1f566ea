"""Classifiers, query strategies and the trained screening model.

Classifiers return a *decision* value (higher = more likely an include); ``score`` maps it
to (0, 1) with a logistic function so the queue and digest can show one scale. The flag
threshold is calibrated on out-of-fold decision values so that the share of known includes
at or above it reaches the target recall (``calibrate_threshold``).

Persistence: a fitted model is pickled (joblib) into ``ModelVersion.artifact``. That is
acceptable because the artifact is produced only by this code and read back only from our
own database, which is already fully trusted (anyone who can write it can change every
decision); a SHA-256 digest kept beside the bytes catches truncation or mix-ups before
unpickling, and a version mismatch is reported as a clear error asking for a retrain.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import joblib
import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.naive_bayes import ComplementNB
from sklearn.svm import LinearSVC

from screening.config import ScreeningConfig
from screening.features import Document, FeatureSet
from screening.registry import CLASSIFIERS, QUERIES
from store.errors import ScreeningError

log = logging.getLogger(__name__)

ARTIFACT_FORMAT = "mmlr-screening-model/1"


# ------------------------------------------------------------------------- classifiers
def _balanced_weights(y: np.ndarray, ratio: float) -> np.ndarray:
    """Sample weights giving the includes `ratio` times the total weight of the excludes."""
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    w = np.where(y == 1, 1.0, n_pos / (ratio * n_neg) if n_neg else 1.0)
    return w * (len(y) / w.sum())


class _Linear:
    """A linear model trained with include-favouring sample weights."""

    def __init__(self, estimator: Any, ratio: float) -> None:
        self.estimator = estimator
        self.ratio = ratio

    def fit(self, X: sp.csr_matrix, y: np.ndarray) -> _Linear:
        self.estimator.fit(X, y, sample_weight=_balanced_weights(y, self.ratio))
        return self

    def decision(self, X: sp.csr_matrix) -> np.ndarray:
        return np.asarray(self.estimator.decision_function(X), dtype=np.float64)


@CLASSIFIERS.register("svm", doc="linear SVM (squared hinge) with include-favouring weights")
def svm(C: float = 0.11, ratio: float = 9.8, seed: int = 0) -> _Linear:
    # ELAS u4's values (ASReview 2+, tuned on SYNERGY): on records without controlled terms
    # our default model then ranks exactly as ELAS u4 does, so the terms are the only
    # difference the benchmark measures.
    return _Linear(LinearSVC(C=C, loss="squared_hinge", random_state=seed, max_iter=5000), ratio)


@CLASSIFIERS.register("logistic", doc="L2 logistic regression with include-favouring weights")
def logistic(C: float = 10.0, ratio: float = 5.0, seed: int = 0) -> _Linear:
    return _Linear(LogisticRegression(C=C, solver="liblinear", random_state=seed,
                                      max_iter=1000), ratio)


class _NaiveBayes:
    def __init__(self, alpha: float) -> None:
        self.estimator = ComplementNB(alpha=alpha)

    def fit(self, X: sp.csr_matrix, y: np.ndarray) -> _NaiveBayes:
        self.estimator.fit(X, y, sample_weight=_balanced_weights(y, 1.0))
        return self

    def decision(self, X: sp.csr_matrix) -> np.ndarray:
        lp = self.estimator.predict_log_proba(X)
        return np.asarray(lp[:, 1] - lp[:, 0], dtype=np.float64)


@CLASSIFIERS.register("nb", doc="complement naive Bayes (balanced)")
def naive_bayes(alpha: float = 1.0, seed: int = 0) -> _NaiveBayes:
    return _NaiveBayes(alpha)


class _RankEnsemble:
    """Mean of the members' decision values, each standardised with its training statistics
    (fixed at fit time, so a record's score never depends on what it is scored with)."""

    def __init__(self, members: list[Any]) -> None:
        self.members = members
        self.stats: list[tuple[float, float]] = []

    def fit(self, X: sp.csr_matrix, y: np.ndarray) -> _RankEnsemble:
        self.stats = []
        for m in self.members:
            d = m.fit(X, y).decision(X)
            self.stats.append((float(d.mean()), float(d.std()) or 1.0))
        return self

    def decision(self, X: sp.csr_matrix) -> np.ndarray:
        total = np.zeros(X.shape[0])
        for m, (mu, sd) in zip(self.members, self.stats, strict=True):
            total += (m.decision(X) - mu) / sd
        return total / len(self.members)


class FoldEnsemble:
    """The cross-validation fold models, averaged: the flag threshold is calibrated on these
    very models' out-of-fold scores, so it keeps its meaning on new records (a refit on all
    data would score on a different scale and miss the target recall)."""

    def __init__(self, members: list[Any]) -> None:
        self.members = members

    def decision(self, X: sp.csr_matrix) -> np.ndarray:
        return np.mean([m.decision(X) for m in self.members], axis=0)


@CLASSIFIERS.register("svm+logistic", doc="ensemble of the linear SVM and logistic regression")
def svm_logistic(C_svm: float = 0.1, C_lr: float = 10.0, ratio: float = 10.0,
                 seed: int = 0) -> _RankEnsemble:
    return _RankEnsemble([svm(C=C_svm, ratio=ratio, seed=seed),
                          logistic(C=C_lr, ratio=ratio, seed=seed)])


def make_classifier(config: ScreeningConfig) -> Any:
    params = dict(config.classifier_params)
    params.setdefault("seed", config.seed)
    return CLASSIFIERS.create(config.classifier, **params)


# ------------------------------------------------------------------------- query strategies
def _query_max(scores: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    # Stable sort on the negated score: ties keep dataset order, so runs are deterministic.
    return np.argsort(-scores, kind="stable")[:n]


def _query_uncertainty(scores: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.argsort(np.abs(scores), kind="stable")[:n]


def _query_max_random(scores: np.ndarray, n: int, rng: np.random.Generator,
                      random_share: float = 0.05) -> np.ndarray:
    order = list(np.argsort(-scores, kind="stable"))
    picked: list[int] = []
    while len(picked) < min(n, len(order)):
        idx = int(rng.integers(len(order))) if rng.random() < random_share else 0
        picked.append(int(order.pop(idx)))
    return np.asarray(picked, dtype=int)


QUERIES.register("max", doc="certainty sampling: highest score first")(lambda: _query_max)
QUERIES.register("uncertainty", doc="closest to the decision boundary first")(
    lambda: _query_uncertainty)
QUERIES.register("max_random", doc="certainty sampling with 5% random picks")(
    lambda: _query_max_random)


def make_query(config: ScreeningConfig) -> Any:
    return QUERIES.create(config.query)


# ------------------------------------------------------------------------- the model
def to_score(decision: np.ndarray) -> np.ndarray:
    """Map decision values to (0, 1), monotonically."""
    return 1.0 / (1.0 + np.exp(-np.clip(decision, -30, 30)))


#: Below this many includes the calibrated recall cannot be verified: at the default target of
#: 99% no include may fall below the threshold (⌊0.01 × includes⌋ = 0), so the threshold is the
#: lowest out-of-fold include score and the cross-validated recall is 1.0 by construction, not
#: a measurement of what the flag will catch among new records.
VERIFIABLE_INCLUDES = 100


def calibrate_threshold(scores: np.ndarray, y: np.ndarray, target_recall: float) -> float:
    """The highest threshold at which ≥ target_recall of the includes score at or above it."""
    pos = np.sort(scores[y == 1])
    if len(pos) == 0:
        raise ScreeningError("cannot calibrate a threshold without any include")
    # We may miss at most ⌊(1 − r)·P⌋ includes; the threshold is the next include's score.
    allowed_misses = math.floor((1.0 - target_recall) * len(pos) + 1e-9)
    return float(pos[allowed_misses])


@dataclass
class CvResult:
    threshold: float
    metrics: dict[str, Any] = field(default_factory=dict)
    models: list[Any] = field(default_factory=list, repr=False)


def cross_validate(X: sp.csr_matrix, y: np.ndarray, config: ScreeningConfig) -> CvResult:
    """Out-of-fold scores → threshold at the target recall, and the metrics it achieves."""
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    folds = min(config.cv_folds, n_pos, n_neg)
    if folds < 2:
        raise ScreeningError(
            f"cross-validation needs at least 2 includes and 2 excludes (have {n_pos} and "
            f"{n_neg})", hint="screen more records or add seed PMIDs")
    oof = np.zeros(len(y))
    models = []
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=config.seed)
    for train, test in skf.split(np.zeros(len(y)), y):
        clf = make_classifier(config).fit(X[train], y[train])
        oof[test] = to_score(clf.decision(X[test]))
        models.append(clf)
    threshold = calibrate_threshold(oof, y, config.target_recall)
    flagged = oof >= threshold
    tp = int((flagged & (y == 1)).sum())
    order = np.argsort(-oof, kind="stable")
    ranks = np.empty(len(y), dtype=int)
    ranks[order] = np.arange(len(y))
    # AUC from ranks (Mann–Whitney), no extra dependency on ties handling subtleties.
    pos_ranks = ranks[y == 1]
    auc = 1.0 - float(np.sum(pos_ranks) - n_pos * (n_pos - 1) / 2) / (n_pos * n_neg)
    metrics = {
        "folds": folds, "target_recall": config.target_recall,
        "recall": tp / n_pos, "precision": tp / max(1, int(flagged.sum())),
        "flagged_share": float(flagged.mean()), "auc": round(auc, 4),
        "n_positive": n_pos, "n_negative": n_neg,
    }
    return CvResult(threshold=threshold, metrics=metrics, models=models)


@dataclass
class ScreeningModel:
    """Fitted features + classifier + flag threshold, with the configuration behind them."""

    config: ScreeningConfig
    features: FeatureSet
    classifier: Any
    threshold: float | None = None

    def decision(self, docs: Sequence[Document]) -> np.ndarray:
        if not docs:
            return np.zeros(0)
        return np.asarray(self.classifier.decision(self.features.transform(docs)))

    def score(self, docs: Sequence[Document]) -> np.ndarray:
        return to_score(self.decision(docs))

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        joblib.dump({"format": ARTIFACT_FORMAT, "features": self.features,
                     "classifier": self.classifier}, buf, compress=3)
        payload = buf.getvalue()
        return hashlib.sha256(payload).hexdigest().encode("ascii") + b"\n" + payload

    @classmethod
    def from_bytes(cls, blob: bytes | None, *, config: ScreeningConfig,
                   threshold: float | None, label: str = "model") -> ScreeningModel:
        if not blob or b"\n" not in blob:
            raise ScreeningError(f"{label} has no stored artifact",
                                 hint="run `mmlr screen --retrain`")
        digest, payload = blob.split(b"\n", 1)
        if hashlib.sha256(payload).hexdigest().encode("ascii") != digest:
            raise ScreeningError(f"{label} artifact is corrupt (checksum mismatch)",
                                 hint="run `mmlr screen --retrain`")
        try:
            data = joblib.load(io.BytesIO(payload))
        except Exception as exc:  # unpickling across library versions can fail many ways
            raise ScreeningError(f"{label} artifact cannot be loaded ({type(exc).__name__})",
                                 hint="run `mmlr screen --retrain`") from None
        if not isinstance(data, dict) or data.get("format") != ARTIFACT_FORMAT:
            raise ScreeningError(f"{label} artifact has an unknown format",
                                 hint="run `mmlr screen --retrain`")
        return cls(config=config, features=data["features"], classifier=data["classifier"],
                   threshold=threshold)


def train_model(docs: Sequence[Document], y: np.ndarray, config: ScreeningConfig, *,
                corpus: Sequence[Document] | None = None, calibrate: bool = True,
                ) -> tuple[ScreeningModel, CvResult | None]:
    """Fit features on ``corpus`` (default: the training docs) and the classifier on ``docs``."""
    y = np.asarray(y, dtype=int)
    if len(set(y.tolist())) < 2:
        raise ScreeningError("training needs both includes and excludes")
    features = FeatureSet.from_config(config.features).fit(list(corpus or docs))
    X = features.transform(docs)
    if calibrate:
        cv = cross_validate(X, y, config)
        clf: Any = FoldEnsemble(cv.models)
    else:
        cv, clf = None, make_classifier(config).fit(X, y)
    model = ScreeningModel(config=config, features=features, classifier=clf,
                           threshold=cv.threshold if cv else None)
    return model, cv
