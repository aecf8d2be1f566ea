"""Features, registry, configuration, threshold calibration and model persistence."""

from __future__ import annotations

import numpy as np
import pytest

from screening.config import ScreeningConfig
from screening.features import Document, FeatureSet
from screening.model import (
    ScreeningModel,
    calibrate_threshold,
    cross_validate,
    train_model,
)
from screening.registry import CLASSIFIERS, FEATURES, QUERIES
from screening.simulate import load_dataset
from store.errors import ScreeningError, ValidationError


def _toy() -> tuple[list[Document], np.ndarray]:
    pos = [Document(title=f"Lenalidomide maintenance after ASCT in myeloma: randomised phase 3 "
                          f"trial {i}", abstract="Progression-free survival improved.",
                    mesh=("Multiple Myeloma", "Lenalidomide"),
                    publication_types=("Randomized Controlled Trial",)) for i in range(6)]
    neg = [Document(title=f"Case report {i} of a rare skin lesion",
                    abstract="We describe a patient with a rash.", mesh=("Skin Diseases",),
                    publication_types=("Case Reports",)) for i in range(12)]
    return pos + neg, np.asarray([1] * 6 + [0] * 12)


def test_registry_answers_unknown_names_with_the_valid_options() -> None:
    with pytest.raises(ValidationError) as err:
        CLASSIFIERS.create("random_forest")
    assert "random_forest" in err.value.one_line()
    assert "svm" in err.value.one_line() and "logistic" in err.value.one_line()
    assert {"word_tfidf", "char_tfidf", "terms", "design_cues"} <= set(FEATURES.names())
    assert "max" in QUERIES.names()
    with pytest.raises(ValidationError, match="bad parameters"):
        CLASSIFIERS.create("svm", gamma=3)


def test_config_round_trips_and_rejects_bad_input() -> None:
    cfg = ScreeningConfig(classifier="logistic", target_recall=0.95)
    again = ScreeningConfig.from_dict(cfg.to_dict())
    assert again == cfg
    with pytest.raises(ValidationError, match="unknown screening configuration key"):
        ScreeningConfig.from_dict({**cfg.to_dict(), "classifer": "svm"})
    with pytest.raises(ValidationError, match="unknown feature extractor 'bert'"):
        ScreeningConfig(features=[{"name": "bert"}]).validate()
    with pytest.raises(ValidationError, match="unknown query strategy"):
        ScreeningConfig(query="min").validate()
    with pytest.raises(ValidationError, match="target recall"):
        ScreeningConfig(target_recall=1.5).validate()


def test_feature_blocks_include_mesh_terms_and_design_cues() -> None:
    docs, _ = _toy()
    fs = FeatureSet.from_config([{"name": "terms"}, {"name": "design_cues"}]).fit(docs)
    X = fs.transform(docs)
    assert X.shape[0] == len(docs)
    terms = fs.extractors[0][2].vectorizer.vocabulary_
    assert "mesh:multiple myeloma" in terms and "pt:case reports" in terms
    # The trial reports and the case reports share no term or cue pattern.
    assert (X[0].toarray() != X[-1].toarray()).any()
    # No MeSH anywhere: the block is empty, not an error.
    empty = FeatureSet.from_config([{"name": "terms"}]).fit([Document(title="x")])
    assert empty.transform([Document(title="y")]).shape == (1, 0)


def test_default_features_put_words_and_controlled_terms_in_one_vocabulary() -> None:
    docs, _ = _toy()
    fs = FeatureSet.from_config(ScreeningConfig().features)
    X = fs.fit_transform(docs)
    vocab = fs.extractors[0][2].vectorizer.vocabulary_
    assert {"lenalidomide maintenance", "mesh:multiple myeloma", "pt:case reports"} <= set(vocab)
    # One L2-normalised vector per record: a term weighs like a word, not like a whole block.
    assert np.allclose(np.sqrt(X.multiply(X).sum(axis=1)).A1, 1.0)
    # Same fit and transform in one pass as in two.
    again = FeatureSet.from_config(ScreeningConfig().features).fit(docs).transform(docs)
    assert (abs(X - again) > 1e-12).nnz == 0


def test_without_controlled_terms_the_default_features_equal_word_tfidf() -> None:
    # This is what makes the default model rank exactly as ELAS u4 on data without MeSH
    # (docs/benchmarks.md): the terms add tokens, they change nothing else.
    docs = [Document(title=d.title, abstract=d.abstract) for d in _toy()[0]]
    docs[0] = Document(title="Café-au-lait spots", abstract="Naïve patients")
    ours = FeatureSet.from_config(ScreeningConfig().features).fit_transform(docs)
    words = FeatureSet.from_config(
        [{"name": "word_tfidf", "params": {"stop_words": None}}]).fit_transform(docs)
    assert ours.shape == words.shape
    assert abs(ours - words).max() < 1e-12


def test_title_tokens_repeat_the_title_as_title_features_and_survive_pickling() -> None:
    import pickle

    docs, _ = _toy()
    spec = [{"name": "text_terms_tfidf", "params": {"title_tokens": True}}]
    fs = FeatureSet.from_config(spec)
    X = fs.fit_transform(docs)
    vocab = fs.extractors[0][2].vectorizer.vocabulary_
    # the title's n-grams twice (as words and as title features), the abstract's once
    assert {"lenalidomide maintenance", "t:lenalidomide maintenance", "t:rare skin"} <= set(vocab)
    assert "survival improved" in vocab and "t:survival improved" not in vocab
    assert "t:mesh:multiple myeloma" not in vocab and "mesh:multiple myeloma" in vocab
    plain = FeatureSet.from_config([{"name": "text_terms_tfidf"}]).fit_transform(docs)
    assert X.shape[1] > plain.shape[1]
    again = pickle.loads(pickle.dumps(fs))
    assert (abs(again.transform(docs) - X) > 1e-12).nnz == 0


def test_terms_weight_scales_the_controlled_terms_inside_the_one_vocabulary() -> None:
    import pickle

    docs, _ = _toy()
    plain_fs = FeatureSet.from_config([{"name": "text_terms_tfidf"}])
    plain = plain_fs.fit_transform(docs).toarray()
    names = plain_fs.extractors[0][2].vectorizer.get_feature_names_out()
    is_term = np.asarray([n.startswith(("mesh:", "kw:", "pt:", "j:")) for n in names])
    assert is_term.any() and (~is_term).any()
    half_fs = FeatureSet.from_config([{"name": "text_terms_tfidf",
                                       "params": {"terms_weight": 0.5}}])
    half = half_fs.fit_transform(docs).toarray()
    for row_plain, row_half in zip(plain, half, strict=True):
        words, terms = row_plain[~is_term], row_plain[is_term]
        if not terms.any():
            assert np.allclose(row_half, row_plain)  # nothing to scale: the same row
            continue
        # each term weighs half a word of the same TF-IDF, then the row is L2-normalised
        expected = np.concatenate([words, terms * 0.5])
        expected /= np.linalg.norm(expected)
        assert np.allclose(np.concatenate([row_half[~is_term], row_half[is_term]]), expected)
        assert np.isclose(np.linalg.norm(row_half), 1.0)
    again = pickle.loads(pickle.dumps(half_fs))
    assert np.allclose(again.transform(docs).toarray(), half)
    # 1.0 is the plain TfidfVectorizer path, bit for bit (the default configuration)
    one = FeatureSet.from_config([{"name": "text_terms_tfidf", "params": {"terms_weight": 1.0}}])
    assert (one.fit_transform(docs).toarray() == plain).all()


def test_calibrate_threshold_keeps_the_target_share_of_includes() -> None:
    scores = np.asarray([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    y = np.asarray([1, 1, 0, 1, 0, 1, 0, 0, 1, 0])
    assert calibrate_threshold(scores, y, 0.99) == 0.1  # every include
    assert calibrate_threshold(scores, y, 0.80) == 0.4  # may miss one of five
    with pytest.raises(ScreeningError):
        calibrate_threshold(scores, np.zeros(10, dtype=int), 0.9)


def test_threshold_reaches_target_recall_in_cross_validation_and_held_out(
        screening_dir) -> None:
    data = load_dataset(screening_dir / "cohen2006_AtypicalAntipsychotics.csv.gz")
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(data.labels))
    half_a, half_b = idx[: len(idx) // 2], idx[len(idx) // 2:]
    cfg = ScreeningConfig(target_recall=0.95)
    docs = data.docs
    model, cv = train_model([docs[i] for i in half_a], data.labels[half_a], cfg, corpus=docs)
    assert cv is not None
    assert cv.metrics["recall"] >= 0.95
    assert cv.metrics["flagged_share"] < 0.9  # the threshold is not trivially "flag everything"
    assert model.threshold == cv.threshold
    # On records the model never saw, recall stays near the target. The threshold rests on
    # the few lowest-scoring includes, so the held-out recall varies (0.85–1.0 over splits of
    # this set): the bound is loose on purpose, but a scale mismatch (refit on all data
    # scored against a CV threshold) would fall far below it.
    held = model.score([docs[i] for i in half_b]) >= model.threshold
    yb = data.labels[half_b]
    recall = (held & (yb == 1)).sum() / (yb == 1).sum()
    assert recall >= 0.8, recall
    assert held.mean() < 0.9


def test_cross_validation_needs_two_of_each_class() -> None:
    docs, y = _toy()
    X = FeatureSet.from_config([{"name": "word_tfidf"}]).fit_transform(docs)
    y1 = y.copy()
    y1[1:6] = 0
    with pytest.raises(ScreeningError, match="at least 2 includes"):
        cross_validate(X, y1, ScreeningConfig())


def test_model_persistence_round_trip_gives_identical_scores() -> None:
    docs, y = _toy()
    cfg = ScreeningConfig()
    model, _ = train_model(docs, y, cfg)
    blob = model.to_bytes()
    again = ScreeningModel.from_bytes(blob, config=cfg, threshold=model.threshold)
    assert np.array_equal(model.score(docs), again.score(docs))
    assert model.score(docs[:6]).min() > model.score(docs[6:]).max()
    corrupt = blob[:-10] + b"0123456789"
    with pytest.raises(ScreeningError, match="corrupt"):
        ScreeningModel.from_bytes(corrupt, config=cfg, threshold=None)
    with pytest.raises(ScreeningError, match="no stored artifact"):
        ScreeningModel.from_bytes(None, config=cfg, threshold=None)


def test_training_needs_both_classes() -> None:
    docs, _ = _toy()
    with pytest.raises(ScreeningError, match="both includes and excludes"):
        train_model(docs, np.ones(len(docs)), ScreeningConfig())


def test_hypergeometric_stopping_test() -> None:
    from scipy.stats import hypergeom

    from screening.stopping import audit_p_value as stopping_p_value

    # 95 found, target 95%: recall < 95% needs ≥ 6 missed (5 missed is exactly 95%).
    p = stopping_p_value(found=95, pool=1000, sample=300, sample_includes=0, target_recall=0.95)
    assert p == pytest.approx(hypergeom.cdf(0, 1000, 6, 300))
    assert p < 0.2
    # a bigger clean sample gives more confidence; an include in the sample gives less
    assert stopping_p_value(found=95, pool=1000, sample=600, sample_includes=0,
                            target_recall=0.95) < p
    assert stopping_p_value(found=95, pool=1000, sample=300, sample_includes=1,
                            target_recall=0.95) > p
    # screening the whole pool without finding anything proves the target
    assert stopping_p_value(found=10, pool=50, sample=50, sample_includes=0,
                            target_recall=0.95) == 0.0
