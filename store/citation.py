"""A record's place in its journal: page ranges and the one-line citation.

PubMed prints pages the way the journal's index does, with the end page abbreviated to the
digits that change ("3003-15" is pages 3003 to 3015) and sometimes a note after the range
("1787-8; discussion 1791"). People read the printed form, so it is what we store
(``Record.pages``) and show; a reference manager wants the start and end page as numbers it
can print in its own style, so RIS gets :func:`page_range`'s expansion.

An article with no pagination is either numbered (``e0227333``, ``euae122``: its ELocationID,
kept as ``Record.elocation``, is its article number) or not yet in an issue at all (online
first: no volume, and the ELocationID is a publisher's item identifier, not a place in the
journal). :func:`article_location` says which one to cite.

Only store-level helpers here (reports and the web app both import them); no database.
"""

from __future__ import annotations

import re

#: A start or end page: an optional letter prefix ("e", "S", "H", "OL"), digits, and anything
#: the journal adds after them (".e6" of "1016-1021.e6").
_PAGE_RE = re.compile(r"^(?P<prefix>[A-Za-z]*)(?P<digits>\d+)(?P<suffix>.*)$")


def page_range(pages: str | None) -> tuple[str | None, str | None]:
    """Start and end page of a printed page range, the end page written out in full:
    "3003-15" → ("3003", "3015"), "e225-6" → ("e225", "e226"), "S22-5" → ("S22", "S25"),
    "H1270-H1280" unchanged, "1787-8; discussion 1791" → ("1787", "1788") (the article's own
    pages; the discussion is elsewhere), "e0227333" → ("e0227333", None).

    An end the rule cannot expand (not digits, or fewer digits that would make it smaller than
    the start) is kept as printed rather than guessed."""
    text = " ".join((pages or "").split())
    # The article's own range comes first; "; discussion 1791" or ", 1799" are other places.
    first = re.split(r"[;,]", text, maxsplit=1)[0].strip()
    if not first:
        return None, None
    start, dash, end = first.partition("-")
    start, end = start.strip(), end.strip()
    if not dash or not end:
        return start or None, None
    if not start:
        return end, None
    return start, _full_end(start, end)


def _full_end(start: str, end: str) -> str:
    head = _PAGE_RE.match(start)
    tail = _PAGE_RE.match(end)
    if head is None or tail is None or tail["suffix"] or head["suffix"]:
        return end
    if tail["prefix"] and tail["prefix"] != head["prefix"]:
        return end
    digits, short = head["digits"], tail["digits"]
    if len(short) >= len(digits):
        return f"{head['prefix']}{short}" if not tail["prefix"] else end
    full = digits[: len(digits) - len(short)] + short
    if int(full) < int(digits):
        return end  # "95-3" is no range we can read; keep it as printed
    return f"{head['prefix']}{full}"


def article_location(pages: str | None, elocation: str | None,
                     volume: str | None) -> str | None:
    """Where the article is in its journal, as printed: its pages, else (in an issue, i.e.
    with a volume) its article number from the ELocationID; None for an online-first
    article, whose identifier is no place in the journal (its DOI locates it)."""
    if pages and pages.strip():
        return " ".join(pages.split())
    if volume and elocation and elocation.strip():
        return elocation.strip()
    return None


def locator(volume: str | None, issue: str | None, pages: str | None,
            elocation: str | None) -> str:
    """The part of a citation after the year: "119(9):2000-5", "26(6):euae122", "(3):12-5"
    (an issue without a volume), ":12-5" (pages without a volume); "" when PubMed has none
    of them (online first: :func:`article_location`)."""
    volume = (volume or "").strip()
    issue = (issue or "").strip()
    text = volume + (f"({issue})" if issue else "")
    location = article_location(pages, elocation, volume)
    if location:
        text += f":{location}"
    return text


def citation_line(journal: str | None, year: int | None, volume: str | None,
                  issue: str | None, pages: str | None, elocation: str | None) -> str:
    """PubMed's citation form "Journal. Year;Vol(Issue):pages." with the parts a record lacks
    left out: "Blood. 2012;119(9):2000-5.", "Blood. 2024." (online first),
    "Europace. 2024;26(6):euae122." (an article number). Empty when there is no journal."""
    journal = " ".join((journal or "").split()).rstrip(".")
    if not journal:
        return ""
    where = "" if year is None else str(year)
    place = locator(volume, issue, pages, elocation)
    if place:
        where += (";" if where and not place.startswith(":") else "") + place
    if not where:
        return f"{journal}."
    return f"{journal}. {where}" + ("" if where.endswith(".") else ".")


#: A DOI in a citation's text ("doi:10.1038/s41408-025-01411-9", "https://doi.org/10.…"):
#: the prefix "10." and a registrant code, a slash, then anything up to a space, or to a
#: ";" "," ")" that ends the citation's part (DOIs themselves rarely hold those).
_DOI_RE = re.compile(r"\b(10\.\d{4,9}/[^\s;,)]+)")


def publication_key(pmid: int | None, citation: str | None) -> str:
    """What one publication is, for counting reports as PRISMA 2020 does (a report is a
    publication, however many trials or rows cite it): its PMID, else the DOI its citation
    gives, else the citation's letters and digits in lower case (spaces and punctuation
    differ between two typings of one reference)."""
    if pmid is not None:
        return f"pmid:{pmid}"
    text = citation or ""
    found = _DOI_RE.search(text)
    if found:
        return "doi:" + found.group(1).rstrip(".").casefold()
    return "text:" + " ".join(re.findall(r"[^\W_]+", text.casefold()))
