"""What the PubMed parser yields and the poller stores: one value object per record."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

#: Fields whose change makes a new revision (and a re-score).
CONTENT_FIELDS = (
    "pmid_version", "title", "abstract", "journal", "journal_abbrev", "year", "pub_date",
    "create_date", "authors", "doi", "pmc", "language", "publication_types", "mesh",
    "keywords", "nct_ids", "status", "comments_corrections", "is_book",
    "volume", "issue", "pages", "elocation",
)

#: Where the article sits in its journal: stored from migration 0013 on. A record stored
#: before it has these NULL and a content hash over the other fields only, so filling them
#: in is not a change of the record (see :func:`legacy_content_hash`).
LOCATOR_FIELDS = ("volume", "issue", "pages", "elocation")


def content_digest(content: dict[str, Any]) -> str:
    """The content hash of a record's content fields (the same JSON every caller hashes)."""
    payload = json.dumps(content, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def legacy_content_hash(content: dict[str, Any]) -> str:
    """The hash a record with this content got before migration 0013: the same fields
    without the locators. A stored hash equal to it means only the locators are new."""
    return content_digest({k: v for k, v in content.items() if k not in LOCATOR_FIELDS})


@dataclass(slots=True)
class ParsedRecord:
    """One PubmedArticle / PubmedBookArticle / MEDLINE record, parsed."""

    pmid: int
    title: str
    pmid_version: int = 1
    abstract: str | None = None
    journal: str | None = None
    journal_abbrev: str | None = None
    year: int | None = None
    pub_date: str | None = None
    create_date: date | None = None
    authors: list[str] = field(default_factory=list)
    doi: str | None = None
    pmc: str | None = None
    language: list[str] = field(default_factory=list)
    publication_types: list[str] = field(default_factory=list)
    mesh: list[dict[str, Any]] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    nct_ids: list[str] = field(default_factory=list)
    status: str | None = None
    comments_corrections: list[dict[str, Any]] = field(default_factory=list)
    is_book: bool = False
    volume: str | None = None  # JournalIssue/Volume ("119", "8 Suppl 3")
    issue: str | None = None  # JournalIssue/Issue
    pages: str | None = None  # as PubMed prints them: "3003-15" (store.citation expands)
    elocation: str | None = None  # first valid non-DOI ELocationID: article number or pii

    def content(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: data[k] for k in CONTENT_FIELDS}

    def content_hash(self) -> str:
        return content_digest(self.content())

    @property
    def is_retraction_notice(self) -> bool:
        # PubMed's 2026 files say "Retraction Notice" (real baseline sample 41578200); older
        # records keep "Retraction of Publication".
        return not {"Retraction Notice", "Retraction of Publication"}.isdisjoint(
            self.publication_types) or any(
            c.get("ref_type") == "RetractionOf" for c in self.comments_corrections
        )

    @property
    def is_retracted(self) -> bool:
        return "Retracted Publication" in self.publication_types or any(
            c.get("ref_type") == "RetractionIn" for c in self.comments_corrections
        )


@dataclass(slots=True, frozen=True)
class DeletedCitation:
    """A PMID that NLM deleted (``<DeleteCitation>`` in update files)."""

    pmid: int
