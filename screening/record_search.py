"""Finding records and trials by what a curator remembers of them: a PMID, a DOI, a
registration number, a trial's name, words of the title or abstract, an author.

Every term must match (AND), each in any of the searched fields (OR); a "quoted phrase" is
one term. Matching is a case-insensitive substring test (``lower(field) LIKE '%term%'``),
the same on SQLite and PostgreSQL, so no search index has to be built or kept in step with
the polls. SQLite's ``lower`` folds ASCII letters only, so there an accented capital matches
only as typed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, and_, cast, func, or_
from sqlmodel import Session, col, select

from store.errors import ValidationError
from store.models import BY_SCORE, Record, Trial

MAX_QUERY_CHARS = 300
MAX_TERMS = 10
# An opening quote never closed (a slip, or a paste cut short) makes a phrase to the end of
# the query: kept as a word it would carry the quote mark and silently match nothing.
_TERM = re.compile(r'"([^"]*)"?|(\S+)')
#: PubMed's PMIDs are at most 8 digits today; a longer number is still searched as words.
_PMID = re.compile(r"\d{1,10}")


@dataclass(frozen=True)
class SearchResult:
    terms: tuple[str, ...]
    total: int
    records: list[Record]
    trials: list[Trial]


def parse_terms(text: str) -> tuple[str, ...]:
    """The terms of a query: words, and "quoted phrases" as one term; lower-cased.

    Raises ValidationError for a query too long or with too many terms (each term is a scan
    of the records, so the number is bounded)."""
    if len(text) > MAX_QUERY_CHARS:
        raise ValidationError(f"the search is {len(text):,} characters long",
                              hint=f"use at most {MAX_QUERY_CHARS} characters")
    terms: list[str] = []
    for phrase, word in _TERM.findall(text):
        term = " ".join((phrase or word).split()).lower()
        if term and term not in terms:
            terms.append(term)
    if len(terms) > MAX_TERMS:
        raise ValidationError(f"the search has {len(terms)} terms",
                              hint=f"use at most {MAX_TERMS}; every term must match")
    return tuple(terms)


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _contains(column: Any, term: str) -> Any:
    return func.lower(column).like(_like(term), escape="\\")


def _json_contains(column: Any, term: str) -> Any:
    """A term in a JSON list column. The lists are stored as JSON text with non-ASCII letters
    escaped (``"M\\u00fcller"``), so the term is compared in that form too."""
    text = cast(column, String)
    forms = dict.fromkeys((term, json.dumps(term)[1:-1]))  # one form when all ASCII
    return or_(*(_contains(text, form) for form in forms))


def _record_matches(term: str) -> Any:
    fields = [_contains(col(Record.title), term), _contains(col(Record.abstract), term),
              _contains(col(Record.journal), term), _contains(col(Record.journal_abbrev), term),
              _contains(col(Record.doi), term), _json_contains(col(Record.authors), term),
              _json_contains(col(Record.nct_ids), term),
              _json_contains(col(Record.keywords), term)]
    if _PMID.fullmatch(term):
        fields.append(col(Record.pmid) == int(term))
    return or_(*fields)


def _trial_matches(term: str) -> Any:
    return or_(_contains(col(Trial.name), term), _contains(col(Trial.regimen), term),
               _contains(col(Trial.drug), term), _contains(col(Trial.comparator), term),
               _json_contains(col(Trial.registry_ids), term))


def records_matching(terms: tuple[str, ...]) -> Any:
    """The WHERE condition of records matching every term (for the page and the API)."""
    return and_(*(_record_matches(t) for t in terms))


def search(session: Session, text: str, *, limit: int = 50, offset: int = 0) -> SearchResult:
    """Records (highest score first, as the queue) and trials (by name) matching every term
    of ``text``; deleted records are found too (the page marks them). No terms: nothing."""
    terms = parse_terms(text)
    if not terms:
        return SearchResult(terms=(), total=0, records=[], trials=[])
    where = records_matching(terms)
    total = int(session.exec(select(func.count()).select_from(Record).where(where)).one())
    records = list(session.exec(
        select(Record).where(where)
        .order_by(*BY_SCORE)
        .offset(max(0, offset)).limit(max(0, limit))))
    trials = list(session.exec(select(Trial).where(and_(*(_trial_matches(t) for t in terms)))
                               .order_by(col(Trial.name))))
    return SearchResult(terms=terms, total=total, records=records, trials=trials)


def exact_pmid(text: str) -> int | None:
    """The PMID when the whole query is one (so the page can open that record at once)."""
    stripped = text.strip()
    if stripped.lower().startswith("pmid"):
        stripped = stripped[4:].lstrip(" :")
    return int(stripped) if _PMID.fullmatch(stripped) else None
