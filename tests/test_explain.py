"""Per-feature explanations of a record's score (screening.explain) and the prior's account."""

from __future__ import annotations

import random

import numpy as np
import pytest

from screening.config import ScreeningConfig
from screening.explain import Explanation, explain_prior, explain_record, feature_names
from screening.features import Document
from screening.model import FoldEnsemble, ScreeningModel, _Linear, train_model
from screening.prior import PRIOR_THRESHOLD, prior_gates, prior_score
from store.settings import PROTOCOL_QUERY

GATES = prior_gates(PROTOCOL_QUERY)

_FILLER = ["patients", "were", "enrolled", "and", "followed", "at", "several", "centres", "with",
           "data", "collected", "prospectively", "by", "the", "study", "team", "over", "many",
           "years", "of", "routine", "clinical", "care"]
_DRUGS = ("lenalidomide", "thalidomide", "bortezomib", "ixazomib")
_LESIONS = ("rash", "ulcer", "nodule", "plaque", "lesion", "eruption")


def _filler(rng: random.Random) -> str:
    return " ".join(rng.sample(_FILLER, 8))


def _include(rng: random.Random, i: int) -> Document:
    drug = _DRUGS[i % len(_DRUGS)]
    return Document(
        title=f"{drug.capitalize()} maintenance in multiple myeloma after transplant",
        abstract=f"{_filler(rng)}. Maintenance with {drug} prolonged progression-free "
                 f"survival in myeloma.",
        mesh=("Multiple Myeloma", drug.capitalize(), "Humans"),
        publication_types=("Randomized Controlled Trial",), journal=rng.choice(["Blood", "Lancet"]))


def _exclude(rng: random.Random, i: int) -> Document:
    lesion = _LESIONS[i % len(_LESIONS)]
    return Document(
        title=f"An unusual {lesion} of the skin: a case report",
        abstract=f"{_filler(rng)}. We describe a case of a skin {lesion} in one patient.",
        mesh=("Skin Diseases", "Humans"), publication_types=("Case Reports",),
        journal=rng.choice(["Blood", "Lancet", "Dermatology"]))


def toy_corpus(seed: int = 1) -> tuple[list[Document], np.ndarray]:
    rng = random.Random(seed)
    pos = [_include(rng, i) for i in range(10)]
    neg = [_exclude(rng, i) for i in range(20)]
    return pos + neg, np.asarray([1] * len(pos) + [0] * len(neg))


def trained(config: ScreeningConfig | None = None, *, calibrate: bool = True) -> ScreeningModel:
    docs, y = toy_corpus()
    model, _ = train_model(docs, y, config or ScreeningConfig(), calibrate=calibrate)
    return model


NEW_INCLUDE = Document(
    title="Ixazomib maintenance for multiple myeloma: a randomised trial",
    abstract="Maintenance prolonged progression-free survival in myeloma patients.",
    mesh=("Multiple Myeloma",), publication_types=("Randomized Controlled Trial",))
NEW_EXCLUDE = Document(
    title="A case report of a skin rash", abstract="We describe a skin rash in one patient.",
    mesh=("Skin Diseases",), publication_types=("Case Reports",))


def _parts(ex: Explanation) -> float:
    assert ex.intercept is not None
    return ex.intercept + sum(c.contribution for c in ex.up + ex.down) + ex.rest


@pytest.fixture(scope="module")
def model() -> ScreeningModel:
    return trained()


def test_include_like_record_is_pushed_up_by_myeloma_and_maintenance(model) -> None:
    assert isinstance(model.classifier, FoldEnsemble) and len(model.classifier.members) > 1
    ex = explain_record(model, NEW_INCLUDE, k=8)
    assert ex.kind == "linear" and ex.available and ex.classifier == "svm"
    labels = [c.label for c in ex.up]
    assert any("myeloma" in label or "maintenance" in label for label in labels), labels
    assert all(c.contribution > 0 for c in ex.up)
    # nothing of the exclude vocabulary pushes an include-like record up
    assert not any("skin" in label or "case" in label for label in labels), labels
    assert ex.score is not None
    assert ex.score == pytest.approx(float(model.score([NEW_INCLUDE])[0]), abs=1e-12)


def test_exclude_like_record_is_pushed_down_by_case_and_skin(model) -> None:
    ex = explain_record(model, NEW_EXCLUDE, k=8)
    labels = [c.label for c in ex.down]
    assert any("case" in label or "skin" in label for label in labels), labels
    assert all(c.contribution < 0 for c in ex.down)
    assert not any("myeloma" in label for label in labels)
    # (the include-favouring class weights lift the intercept, so compare, not sign-test)
    include = explain_record(model, NEW_INCLUDE, k=8)
    assert ex.decision is not None and include.decision is not None
    assert ex.decision < include.decision


def test_intercept_plus_contributions_is_the_models_decision(model) -> None:
    docs, _ = toy_corpus(seed=7)  # other filler: records the model has not seen
    for doc in [NEW_INCLUDE, NEW_EXCLUDE, Document(title="nothing known here"),
                Document(title=""), *docs[::4]]:
        ex = explain_record(model, doc, k=3)
        decision = float(model.decision([doc])[0])
        assert ex.decision == pytest.approx(decision, abs=1e-12)
        assert abs(_parts(ex) - decision) < 1e-9, doc.title


def test_k_is_respected(model) -> None:
    ex = explain_record(model, NEW_INCLUDE, k=3)
    assert len(ex.up) == 3 and len(ex.down) <= 3 and ex.n_rest > 0
    wide = explain_record(model, NEW_INCLUDE, k=8)
    assert len(wide.up) == 8
    # the top 3 are the first 3 of the top 8, largest first
    assert [c.feature for c in ex.up] == [c.feature for c in wide.up[:3]]
    sizes = [c.contribution for c in wide.up]
    assert sizes == sorted(sizes, reverse=True)
    assert len(explain_record(model, NEW_INCLUDE, k=0).up) == 1  # k is at least one


@pytest.mark.parametrize("classifier,calibrate", [("svm", False), ("logistic", True),
                                                  ("logistic", False)])
def test_other_linear_models_add_up_too(classifier: str, calibrate: bool) -> None:
    m = trained(ScreeningConfig(classifier=classifier), calibrate=calibrate)
    assert isinstance(m.classifier, FoldEnsemble if calibrate else _Linear)
    for doc in (NEW_INCLUDE, NEW_EXCLUDE):
        ex = explain_record(m, doc, k=5)
        assert ex.kind == "linear" and ex.classifier == classifier
        assert abs(_parts(ex) - float(m.decision([doc])[0])) < 1e-9


def test_several_blocks_with_weights_are_named_and_still_add_up() -> None:
    config = ScreeningConfig(features=[
        {"name": "word_tfidf", "weight": 1.0},
        {"name": "terms", "weight": 0.5},
        {"name": "design_cues", "weight": 0.7},
        {"name": "text_terms_tfidf", "weight": 0.3, "params": {"title_tokens": True}},
    ])
    m = trained(config)
    names = feature_names(m)
    assert len(names) == m.features.transform([NEW_INCLUDE]).shape[1]
    labels = {label for _, label in names}
    assert {"MeSH: multiple myeloma", "publication type: case reports", "journal: blood",
            "design cue: myeloma", "“multiple myeloma”", "title: maintenance"} <= labels
    for doc in (NEW_INCLUDE, NEW_EXCLUDE):
        ex = explain_record(m, doc, k=4)
        assert abs(_parts(ex) - float(m.decision([doc])[0])) < 1e-9
        # the block weight is part of the value: a design cue of weight 0.7 in a
        # normalised block is at most 0.7
        cues = [c for c in ex.up + ex.down if c.feature.startswith("cue:")]
        assert all(0 < c.value <= 0.7 + 1e-12 for c in cues)


@pytest.mark.parametrize("classifier", ["nb", "svm+logistic"])
def test_non_linear_classifier_says_so(classifier: str) -> None:
    m = trained(ScreeningConfig(classifier=classifier))
    ex = explain_record(m, NEW_INCLUDE)
    assert ex.kind == "unavailable" and not ex.available
    assert ex.message is not None
    assert ex.message.startswith(f"no per-feature explanation for classifier {classifier}")
    assert ex.up == [] and ex.down == [] and ex.to_json()["available"] is False


def test_prior_lists_matched_patterns_and_failed_gates() -> None:
    doc = Document(title="Lenalidomide maintenance in multiple myeloma: a review",
                   abstract="Progression-free survival after ASCT.",
                   publication_types=("Review",))
    ex = explain_prior(doc, GATES)
    assert ex.kind == "prior" and ex.intercept == -3.0
    up = {c.label: c.contribution for c in ex.up}
    assert up == {"“myeloma”": 2.0, "“maintenance”": 2.0, "“Lenalidomide”": 1.0,
                  "“ASCT”": 0.5, "“Progression-free”": 0.5}
    assert [(c.label, c.contribution) for c in ex.down] == [("“review”", -2.0)]
    # the gate is named after the query's terms, not a hard-coded label
    assert ex.failed_gates == ["randomized controlled trial / randomi* / phase III / phase 3"]
    assert ex.gates == GATES.names and len(ex.gates) == 3
    assert ex.not_trial_report == ["Review"]
    # 6 − 2 − 3 = 1 → 0.73 uncapped, capped below the threshold by the gates
    assert ex.decision == pytest.approx(1.0)
    assert ex.capped and ex.score == prior_score(doc, GATES) < PRIOR_THRESHOLD
    assert _parts(ex) == pytest.approx(ex.decision)


def test_prior_of_a_full_trial_report_passes_every_gate() -> None:
    doc = Document(title="Lenalidomide maintenance after ASCT in multiple myeloma: "
                         "a randomised phase 3 trial")
    ex = explain_prior(doc, GATES, k=2)
    assert ex.failed_gates == [] and ex.not_trial_report == [] and not ex.capped
    assert len(ex.up) == 2 and ex.n_rest == 4  # six patterns matched, two shown
    assert ex.score == pytest.approx(prior_score(doc, GATES)) and ex.score >= PRIOR_THRESHOLD
    assert _parts(ex) == pytest.approx(ex.decision)
