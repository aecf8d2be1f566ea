"""Feature extractors: turn screening documents into one sparse matrix.

A ``Document`` holds what a record offers a screener (title, abstract, MeSH, publication
types, keywords, journal). Each extractor is a small named component (see ``registry``) with
``fit(docs)`` / ``transform(docs)``; ``FeatureSet`` stacks them, each block scaled by its
weight. TF-IDF is fitted on the whole corpus to be ranked: that uses no labels, only the
vocabulary, exactly as a screener sees the whole search result before deciding.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from screening.registry import FEATURES


@dataclass(frozen=True, slots=True)
class Document:
    """The text of one record as the classifier sees it."""

    title: str = ""
    abstract: str = ""
    mesh: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    publication_types: tuple[str, ...] = ()
    journal: str = ""

    @property
    def text(self) -> str:
        return f"{self.title}\n{self.abstract}"

    def terms(self) -> list[str]:
        """Controlled-vocabulary terms, each one token (``mesh:``, ``pt:``, ``kw:``, ``j:``)."""
        out = [f"mesh:{t.strip().lower()}" for t in self.mesh if t.strip()]
        out += [f"kw:{t.strip().lower()}" for t in self.keywords if t.strip()]
        out += [f"pt:{t.strip().lower()}" for t in self.publication_types if t.strip()]
        if self.journal.strip():
            out.append(f"j:{self.journal.strip().lower()}")
        return out


class Extractor(Protocol):
    def fit(self, docs: Sequence[Document]) -> Extractor: ...

    def transform(self, docs: Sequence[Document]) -> sp.csr_matrix: ...

    def fit_transform(self, docs: Sequence[Document]) -> sp.csr_matrix: ...


def _texts(docs: Iterable[Document]) -> list[str]:
    return [d.text for d in docs]


def doc_terms(doc: Document) -> list[str]:
    """Analyzer of the ``terms`` extractor (module level so fitted models pickle)."""
    return doc.terms()


def _identity(doc: Any) -> Any:
    return doc


class _Tfidf:
    """A TfidfVectorizer over one view of the document."""

    def __init__(self, view: str, **params: Any) -> None:
        self.view = view
        self.params = params
        self.vectorizer = TfidfVectorizer(**params)
        self.fitted = False

    def _view(self, docs: Sequence[Document]) -> list[Any]:
        return _texts(docs) if self.view == "text" else list(docs)

    def fit(self, docs: Sequence[Document]) -> _Tfidf:
        try:
            self.vectorizer.fit(self._view(docs))
            self.fitted = True
        except ValueError:  # empty vocabulary (e.g. no MeSH anywhere): contributes nothing
            self.fitted = False
        return self

    def transform(self, docs: Sequence[Document]) -> sp.csr_matrix:
        if not self.fitted:
            return sp.csr_matrix((len(docs), 0))
        return sp.csr_matrix(self.vectorizer.transform(self._view(docs)))

    def fit_transform(self, docs: Sequence[Document]) -> sp.csr_matrix:
        # One pass over the texts instead of two (tokenising dominates feature time).
        try:
            matrix = self.vectorizer.fit_transform(self._view(docs))
        except ValueError:  # empty vocabulary, as in fit()
            self.fitted = False
            return sp.csr_matrix((len(docs), 0))
        self.fitted = True
        return sp.csr_matrix(matrix)


@FEATURES.register("word_tfidf", doc="word uni- and bigram TF-IDF of title and abstract")
def word_tfidf(ngram_max: int = 2, min_df: int = 1, max_df: float = 0.95,
               stop_words: str | None = None) -> _Tfidf:
    return _Tfidf("text", ngram_range=(1, ngram_max), sublinear_tf=True, min_df=min_df,
                  max_df=max_df, stop_words=stop_words, strip_accents="unicode")


class TextAndTerms:
    """Analyzer of ``text_terms_tfidf``: the word n-grams of title and abstract, optionally the
    title's n-grams again as title features (``t:``), then the controlled terms, in one token
    stream. A class (not a closure) so fitted models pickle; the word analyzer is rebuilt
    after unpickling rather than stored."""

    def __init__(self, ngram_max: int = 2, stop_words: str | None = None,
                 strip_accents: str | None = "unicode", title_tokens: bool = False) -> None:
        self.params = {"ngram_range": (1, ngram_max), "stop_words": stop_words,
                       "strip_accents": strip_accents}
        self.title_tokens = title_tokens
        self._words: Any = None

    def __call__(self, doc: Document) -> list[str]:
        if self._words is None:
            self._words = TfidfVectorizer(**self.params).build_analyzer()
        title = [f"t:{t}" for t in self._words(doc.title)] if self.title_tokens else []
        return [*self._words(doc.text), *title, *doc.terms()]

    def __getstate__(self) -> dict[str, Any]:
        return {"params": self.params, "title_tokens": self.title_tokens}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.params, self._words = state["params"], None
        self.title_tokens = bool(state.get("title_tokens", False))


#: Prefixes of the controlled-term tokens of ``Document.terms`` (the rest are word n-grams).
TERM_PREFIXES = ("mesh:", "kw:", "pt:", "j:")


class _TermsWeightedTfidf(_Tfidf):
    """One vocabulary whose controlled-term columns are scaled by ``terms_weight`` before the
    rows are L2-normalised, so a term weighs ``terms_weight`` times a word of the same TF-IDF
    instead of the same."""

    def __init__(self, view: str, terms_weight: float, **params: Any) -> None:
        super().__init__(view, norm=None, **params)
        self.terms_weight = terms_weight
        self.column_scale: np.ndarray | None = None

    def _finish(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        if self.column_scale is None:
            names = self.vectorizer.get_feature_names_out()
            is_term = np.char.startswith(names.astype(str), TERM_PREFIXES[0])
            for prefix in TERM_PREFIXES[1:]:
                is_term |= np.char.startswith(names.astype(str), prefix)
            self.column_scale = np.where(is_term, self.terms_weight, 1.0)
        return sp.csr_matrix(normalize(matrix @ sp.diags(self.column_scale)))

    def fit(self, docs: Sequence[Document]) -> _TermsWeightedTfidf:
        super().fit(docs)
        self.column_scale = None
        return self

    def transform(self, docs: Sequence[Document]) -> sp.csr_matrix:
        matrix = super().transform(docs)
        return self._finish(matrix) if self.fitted else matrix

    def fit_transform(self, docs: Sequence[Document]) -> sp.csr_matrix:
        self.column_scale = None
        matrix = super().fit_transform(docs)
        return self._finish(matrix) if self.fitted else matrix


@FEATURES.register("text_terms_tfidf", doc="word uni- and bigrams of title and abstract plus "
                   "MeSH, keywords, publication types and journal, as one TF-IDF vocabulary")
def text_terms_tfidf(ngram_max: int = 2, min_df: int = 1, max_df: float = 0.95,
                     stop_words: str | None = None, title_tokens: bool = False,
                     terms_weight: float = 1.0) -> _Tfidf:
    # Why one vocabulary rather than a separate ``terms`` block: a record has ~15 controlled
    # terms against ~250 word n-grams, so in one L2-normalised vector each term weighs about
    # as much as a word; as a block of its own (weight 0.5) the terms carried a fifth of the
    # vector and cost up to 0.1 WSS@95 where MeSH is shared by includes and excludes
    # (docs/benchmarks.md, Screening, third round). ``terms_weight`` scales the terms inside
    # the one vocabulary (an option; 1.0 keeps the plain TfidfVectorizer path bit for bit).
    analyzer = TextAndTerms(ngram_max, stop_words, title_tokens=title_tokens)
    if terms_weight != 1.0:
        return _TermsWeightedTfidf("doc", terms_weight, analyzer=analyzer, sublinear_tf=True,
                                   min_df=min_df, max_df=max_df)
    return _Tfidf("doc", analyzer=analyzer, sublinear_tf=True, min_df=min_df, max_df=max_df)


@FEATURES.register("char_tfidf", doc="character 3-5-gram TF-IDF of title and abstract")
def char_tfidf(ngram_min: int = 3, ngram_max: int = 5, min_df: int = 2,
               max_features: int | None = 200_000) -> _Tfidf:
    return _Tfidf("text", analyzer="char_wb", ngram_range=(ngram_min, ngram_max),
                  sublinear_tf=True, min_df=min_df, max_features=max_features,
                  strip_accents="unicode", dtype=np.float32)


@FEATURES.register("terms", doc="MeSH, keywords, publication types and journal as tokens")
def terms(min_df: int = 1) -> _Tfidf:
    return _Tfidf("doc", analyzer=doc_terms, min_df=min_df, sublinear_tf=True)


#: Design cues of a randomised (maintenance) trial report. Transparent on purpose: each is one
#: readable pattern; the classifier learns their weights.
DESIGN_CUES: dict[str, str] = {
    "randomised": r"\brandomi[sz]", "rct_pt": r"randomized controlled trial",
    "phase3": r"\bphase (?:iii|3)\b", "phase2": r"\bphase (?:ii|2)\b",
    "placebo": r"\bplacebo", "blind": r"\b(?:double|single)[- ]blind",
    "versus": r"\b(?:versus|vs\.?|compared with)\b", "allocation": r"\ballocat",
    "maintenance": r"\bmaintenance\b", "consolidation": r"\bconsolidation\b",
    "asct": r"\b(?:asct|autologous (?:stem[- ]cell|haematopoietic|hematopoietic)|"
            r"high[- ]dose (?:therapy|chemotherapy|melphalan))",
    "myeloma": r"\bmyeloma\b", "pfs": r"progression[- ]free|event[- ]free|time to progression",
    "os": r"overall survival", "hazard": r"hazard ratio|\bhr\b",
    "review": r"\b(?:review|meta-analys[ie]s|systematic)\b",
    "case": r"\bcase (?:report|series)\b|\bwe (?:report|describe) a\b",
    "retrospective": r"\bretrospective|\bcohort\b|\bregistry\b",
    "preclinical": r"\bin vitro\b|\bmice\b|\bmouse\b|\bcell lines?\b|\brats?\b",
}


class _DesignCues:
    """Binary indicators of DESIGN_CUES in title, abstract and publication types."""

    def __init__(self) -> None:
        self.patterns = [re.compile(p, re.IGNORECASE) for p in DESIGN_CUES.values()]

    def fit(self, docs: Sequence[Document]) -> _DesignCues:
        return self

    def fit_transform(self, docs: Sequence[Document]) -> sp.csr_matrix:
        return self.transform(docs)

    def transform(self, docs: Sequence[Document]) -> sp.csr_matrix:
        rows = []
        for d in docs:
            text = f"{d.text}\n{' '.join(d.publication_types)}"
            rows.append([1.0 if p.search(text) else 0.0 for p in self.patterns])
        m = np.asarray(rows, dtype=np.float64).reshape(len(docs), len(self.patterns))
        return sp.csr_matrix(normalize(m))


@FEATURES.register("design_cues", doc="indicators of trial-design cues (randomised, phase 3, "
                   "maintenance after ASCT, …)")
def design_cues() -> _DesignCues:
    return _DesignCues()


@dataclass
class FeatureSet:
    """Several extractors stacked side by side, each block multiplied by its weight."""

    extractors: list[tuple[str, float, Any]] = field(default_factory=list)

    @classmethod
    def from_config(cls, spec: Sequence[dict[str, Any]]) -> FeatureSet:
        parts = []
        for item in spec:
            params = dict(item.get("params", {}))
            parts.append((item["name"], float(item.get("weight", 1.0)),
                          FEATURES.create(item["name"], **params)))
        return cls(parts)

    def fit(self, docs: Sequence[Document]) -> FeatureSet:
        for _, _, ext in self.extractors:
            ext.fit(docs)
        return self

    def transform(self, docs: Sequence[Document]) -> sp.csr_matrix:
        blocks = [ext.transform(docs) * weight for _, weight, ext in self.extractors]
        return sp.csr_matrix(sp.hstack(blocks, format="csr"))

    def fit_transform(self, docs: Sequence[Document]) -> sp.csr_matrix:
        blocks = []
        for _, weight, ext in self.extractors:
            blocks.append(ext.fit_transform(docs) * weight)
        return sp.csr_matrix(sp.hstack(blocks, format="csr"))
