"""Finding records and trials by what a curator remembers of them: a PMID, a DOI, a
registration number, a trial's name, words of the title or abstract, an author. A DOI may be
pasted as its link (``https://doi.org/10.…``) or with ``doi:``: the prefix is left out.

Every term must match (AND), each in any of the searched fields (OR); a "quoted phrase" is
one term. Matching is a case-insensitive substring test (``lower(field) LIKE '%term%'``),
the same on SQLite and PostgreSQL, so no search index has to be built or kept in step with
the polls. SQLite's own ``lower`` folds ASCII letters only ("Çelik" stayed "Çelik" and no
spelling found it), so there the fold is Python's (``store.engine.SQLITE_LOWER``). The JSON
lists (authors, keywords, registrations) are searched item by item as decoded text: their
stored form escapes non-ASCII letters ("\\u00c7"), whose hex digits matched a search for a
year ("2019" in the apostrophe of "O\\u2019Brien").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from sqlalchemy import Boolean, String, and_, func, literal_column, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Session, col, select

from store.engine import SQLITE_LOWER
from store.errors import ValidationError
from store.ids import parse_id
from store.models import BY_SCORE, Record, Trial

MAX_QUERY_CHARS = 300
MAX_TERMS = 10
# An opening quote never closed (a slip, or a paste cut short) makes a phrase to the end of
# the query: kept as a word it would carry the quote mark and silently match nothing.
_TERM = re.compile(r'"([^"]*)"?|(\S+)')
# A DOI as pasted from a paper or a reference manager: its link (https://doi.org/…, the older
# dx.doi.org) or "doi:" in front. Records store the bare DOI ("10.…"), so the prefix made a
# pasted link find nothing; a link may also carry the DOI percent-encoded ("%2F" for "/").
_DOI_PREFIX = re.compile(r"(?:(?P<link>(?:https?://)?(?:dx\.|www\.)?doi\.org/)|doi:)\s*")


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
        term = _bare_doi(" ".join((phrase or word).split()).lower())
        if term and term not in terms:
            terms.append(term)
    if len(terms) > MAX_TERMS:
        raise ValidationError(f"the search has {len(terms)} terms",
                              hint=f"use at most {MAX_TERMS}; every term must match")
    return tuple(terms)


def _bare_doi(term: str) -> str:
    """``term`` without a DOI's link or "doi:" prefix at its start ("doi:" alone, as in
    "DOI: 10.…", leaves nothing: the DOI is the next term)."""
    prefix = _DOI_PREFIX.match(term)
    if prefix is None:
        return term
    rest = term[prefix.end():]
    return unquote(rest) if prefix.group("link") else rest


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class _Folded(FunctionElement[str]):
    """Text lower-cased, every letter of it (not only ASCII's, as SQLite's ``lower``)."""

    type = String()
    name = "folded"
    inherit_cache = True


@compiles(_Folded)
def _folded(element: _Folded, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(_Folded, "sqlite")
def _folded_sqlite(element: _Folded, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{SQLITE_LOWER}({compiler.process(element.clauses, **kw)})"


class _ItemLike(FunctionElement[bool]):
    """Whether an item of a JSON list column, as decoded text lower-cased, is LIKE a pattern
    (``_ItemLike(column, pattern)``)."""

    type = Boolean()
    name = "item_like"
    inherit_cache = True


def _item_condition(element: _ItemLike, compiler: SQLCompiler, **kw: Any) -> tuple[str, str]:
    column, pattern = list(element.clauses)
    like = _Folded(literal_column("item.value")).like(pattern, escape="\\")
    return compiler.process(column, **kw), compiler.process(like, **kw)


@compiles(_ItemLike, "sqlite")
def _item_like_sqlite(element: _ItemLike, compiler: SQLCompiler, **kw: Any) -> str:
    column, like = _item_condition(element, compiler, **kw)
    return f"EXISTS (SELECT 1 FROM json_each({column}) AS item WHERE {like})"


@compiles(_ItemLike, "postgresql")
def _item_like_postgresql(element: _ItemLike, compiler: SQLCompiler, **kw: Any) -> str:
    column, like = _item_condition(element, compiler, **kw)
    # json_array_elements_text refuses anything but an array (a JSON null included)
    array = f"CASE WHEN json_typeof({column}) = 'array' THEN {column} ELSE '[]'::json END"
    return f"EXISTS (SELECT 1 FROM json_array_elements_text({array}) AS item(value) WHERE {like})"


def _contains(column: Any, term: str) -> Any:
    return _Folded(column).like(_like(term), escape="\\")


def _json_contains(column: Any, term: str) -> Any:
    """A term in an item of a JSON list column, compared with the item's decoded text."""
    return _ItemLike(column, _like(term))


def _record_matches(term: str) -> Any:
    fields = [_contains(col(Record.title), term), _contains(col(Record.abstract), term),
              _contains(col(Record.journal), term), _contains(col(Record.journal_abbrev), term),
              _contains(col(Record.doi), term), _json_contains(col(Record.authors), term),
              _json_contains(col(Record.nct_ids), term),
              _json_contains(col(Record.keywords), term)]
    pmid = parse_id(term)  # a number no PMID can be is still searched as words
    if pmid is not None:
        fields.append(col(Record.pmid) == pmid)
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
    # One rule with the fetch form's (store.ids): offering to fetch 9999999999, a number no
    # PMID can be, led to that form's refusal.
    return parse_id(stripped)
