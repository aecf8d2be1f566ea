"""Streaming parser for PubMed XML (efetch ``retmode=xml``, FTP baseline/update files).

``iter_records(source)`` yields one :class:`~monitor.records.ParsedRecord` per
``<PubmedArticle>``, ``<PubmedBookArticle>`` or old-style ``<MedlineCitationSet>/<MedlineCitation>``
and one :class:`~monitor.records.DeletedCitation` per PMID of a ``<DeleteCitation>``.

Why lxml ``iterparse`` and not ``Bio.Entrez.read``: Entrez.read loads the DTD named in the
DOCTYPE (offline that fails for new or ``http://`` DTDs, see ENTREZ.md §6), keeps inline markup
as literal text and builds the whole document in memory. Here the DTD is never loaded, nothing
touches the network, entities are not expanded, and each record is cleared once yielded, so a
30,000-record baseline file parses in constant memory.

Failure contract: a document that is not well-formed raises :class:`store.errors.ParseError`
naming the source and the line/column, but only *after* every complete record before the fault
has been yielded. A record without a usable PMID does not stop the stream: the remaining records
are still yielded and a ParseError naming each bad record's position is raised at the end.
``parse_all(..., on_error="keep")`` collects the good records and the error instead of raising.

Every field has its own small function below (``_title``, ``_abstract``, ``_doi`` ...) taking the
record's elements, so each can be tested and reasoned about on its own.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any, Literal

from lxml import etree

from monitor.records import DeletedCitation, ParsedRecord
from store.errors import ParseError
from store.ids import is_ascii_number, parse_id

log = logging.getLogger(__name__)

Source = bytes | bytearray | str | Path | IO[bytes]
Item = ParsedRecord | DeletedCitation

#: Root elements that hold article records (``MedlineCitationSet`` = pre-2017 update files).
ARTICLE_ROOTS = frozenset({"PubmedArticleSet", "MedlineCitationSet"})
_RECORD_TAGS = ("PubmedArticle", "PubmedBookArticle", "MedlineCitation", "DeleteCitation")

NCT_RE = re.compile(r"\bNCT\s?(\d{8})\b", re.IGNORECASE)
_YEAR_RE = re.compile(r"\b(1[89]\d\d|2\d\d\d)\b")
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}


# --------------------------------------------------------------------------- small helpers


_MATHML = "{http://www.w3.org/1998/Math/MathML}"


def _text(elem: Any) -> str:
    """All text under ``elem`` (inline <i>, <sup>, MathML... flattened), whitespace collapsed."""
    if elem is None:
        return ""
    if len(elem) == 0:
        return " ".join((elem.text or "").split())
    parts: list[str] = []
    _gather(elem, parts, False)
    return " ".join("".join(parts).split())


def _gather(elem: Any, parts: list[str], in_math: bool) -> None:
    """Text in document order; inside MathML the pretty-printing whitespace between tokens is
    dropped, so "<mi>V</mi> <mi>O</mi><mn>2</mn>" reads "VO2" and not "V O 2".

    Two MathML elements are read as they are shown rather than in document order: an
    ``<mtext>`` keeps its whitespace (``<mtext> </mtext>`` is the space between "¹H" and
    "MRI"), and an ``<mmultiscripts>`` puts its prescripts before its base, as isotopes are
    written ("3He", not "He3": the base comes first in the markup)."""
    tag = elem.tag if isinstance(elem.tag, str) else ""
    math = in_math or tag.startswith(_MATHML)
    if tag == f"{_MATHML}mtext":
        parts.append(elem.text or "")  # its text is the point, whitespace included
        children = list(elem)
    elif tag == f"{_MATHML}mmultiscripts":
        children = list(elem)
        split = next((i for i, c in enumerate(children) if c.tag == f"{_MATHML}mprescripts"),
                     len(children))
        # base, post-scripts, <mprescripts/>, prescripts -> prescripts, base, post-scripts
        children = children[split + 1:] + children[:split]
    else:
        if elem.text:
            parts.append(elem.text.strip() if math else elem.text)
        children = list(elem)
    for child in children:
        _gather(child, parts, math)
        if child.tail:
            parts.append(child.tail.strip() if math else child.tail)


def _int_or_none(value: str | None) -> int | None:
    # ASCII digits only: str.isdigit also takes "²", which int() refuses (a whole batch failed
    # on one such character)
    if value is None:
        return None
    value = value.strip()
    return int(value) if is_ascii_number(value) else None


def _id_or_none(value: str | None) -> int | None:
    """A PMID or version: 1 to MAX_ID, the range of every id mmlr reads, else None (a number
    past the database's integer columns failed the poll's whole batch at the insert)."""
    return None if value is None else parse_id(value)


def _year(value: str | None) -> int | None:
    """A four-digit year, else None (a year of twenty digits overflowed the ``year`` column
    and the date functions)."""
    year = _int_or_none(value)
    return year if year is not None and 1000 <= year <= 9999 else None


def _month_number(value: str | None) -> int | None:
    """PubMed months are ``8``, ``08`` or ``Aug``."""
    if not value:
        return None
    value = value.strip()
    if is_ascii_number(value):
        number = int(value)
        return number if 1 <= number <= 12 else None
    return _MONTHS.get(value[:3].lower())


def _ymd(elem: Any) -> date | None:
    """A ``<Year><Month><Day>`` element as a date (None when incomplete or impossible)."""
    if elem is None:
        return None
    year = _year(elem.findtext("Year"))
    month = _month_number(elem.findtext("Month"))
    day = _int_or_none(elem.findtext("Day"))
    if year is None or month is None or day is None:
        return None
    try:
        return date(year, month, day)
    except (ValueError, OverflowError):  # day 31 of April; a day of twenty digits
        return None


# --------------------------------------------------------------------------- field functions
# Each takes the record's parts: ``cit`` = MedlineCitation (or BookDocument), ``art`` = Article
# (or BookDocument for books), ``data`` = PubmedData / PubmedBookData (None in old files).


def _pmid(cit: Any) -> tuple[int | None, int]:
    """PMID and its Version attribute (version 1 when absent)."""
    elem = cit.find("PMID")
    if elem is None:
        return None, 1
    version = _id_or_none(elem.get("Version")) or 1
    return _id_or_none(elem.text), version


def _title(art: Any, *, book: Any = None) -> str:
    """ArticleTitle; for a book without a chapter title the BookTitle; VernacularTitle when
    the English title is empty (some non-English records)."""
    title = _text(art.find("ArticleTitle"))
    if not title and book is not None:
        title = _text(book.find("BookTitle"))
    if not title:
        title = _text(art.find("VernacularTitle"))
    return title


def _abstract(art: Any) -> str | None:
    """Abstract sections joined by blank lines, each prefixed with its Label when structured."""
    abstract = art.find("Abstract")
    if abstract is None:
        return None
    parts = []
    for section in abstract.iterfind("AbstractText"):
        text = _text(section)
        if not text:
            continue
        label = (section.get("Label") or "").strip()
        parts.append(f"{label}: {text}" if label else text)
    return "\n\n".join(parts) or None


def _author_name(author: Any) -> str | None:
    collective = author.find("CollectiveName")
    if collective is not None:
        return _text(collective) or None
    last = _text(author.find("LastName"))
    if not last:
        return None
    initials = _text(author.find("Initials"))
    if not initials:
        fore = _text(author.find("ForeName"))
        initials = "".join(part[0] for part in fore.replace("-", " ").split() if part)
    return f"{last} {initials}" if initials else last


def _authors(art: Any) -> list[str]:
    """"Last Initials" or CollectiveName, in order; ValidYN="N" entries are NLM's record of a
    wrongly spelled name and are left out. For books only the chapter authors count, not the
    book's editors."""
    names = []
    for author_list in art.iterfind("AuthorList"):
        if author_list.get("Type", "authors") != "authors":
            continue
        for author in author_list.iterfind("Author"):
            if author.get("ValidYN") == "N":
                continue
            name = _author_name(author)
            if name:
                names.append(name)
    return names


def _journal(art: Any, cit: Any) -> tuple[str | None, str | None]:
    """Journal title and ISO abbreviation (MedlineTA when the ISO form is missing)."""
    journal = art.find("Journal")
    if journal is None:
        return None, None
    title = _text(journal.find("Title")) or None
    abbrev = _text(journal.find("ISOAbbreviation")) or None
    if abbrev is None:
        abbrev = (cit.findtext("MedlineJournalInfo/MedlineTA") or "").strip() or None
    return title, abbrev


def _pub_date(pub_date: Any) -> tuple[int | None, str | None]:
    """Year and a display string: "2012 Mar 5" from parts, or MedlineDate as given
    ("2012 Mar-Apr", "1998 Dec-1999 Jan" -> year 1998)."""
    if pub_date is None:
        return None, None
    medline = (pub_date.findtext("MedlineDate") or "").strip()
    if medline:
        match = _YEAR_RE.search(medline)
        return (int(match.group(1)) if match else None), " ".join(medline.split())
    pieces = [
        (pub_date.findtext(tag) or "").strip() for tag in ("Year", "Season", "Month", "Day")
    ]
    text = " ".join(p for p in pieces if p) or None
    return _year(pieces[0]), text


def _article_pub_date(art: Any) -> tuple[int | None, str | None]:
    year, text = _pub_date(art.find("Journal/JournalIssue/PubDate"))
    if year is None:
        # No PubDate year (rare): the electronic publication date is the next best thing.
        electronic = art.find("ArticleDate")
        if electronic is not None:
            year = _year(electronic.findtext("Year"))
    return year, text


def _history_date(data: Any) -> date | None:
    """Create date: PubMedPubDate "entrez" (= [crdt]), else "pubmed"."""
    if data is None:
        return None
    history = data.find("History")
    if history is None:
        return None
    dates = {d.get("PubStatus"): d for d in history.iterfind("PubMedPubDate")}
    for status in ("entrez", "pubmed"):
        found = _ymd(dates.get(status))
        if found is not None:
            return found
    return None


def _create_date(cit: Any, data: Any) -> date | None:
    """History entrez/pubmed date; old MedlineCitationSet files have no History, there
    DateCreated is the same event (the day NLM created the citation)."""
    return _history_date(data) or _ymd(cit.find("DateCreated"))


def _article_ids(data: Any) -> dict[str, str]:
    """PubmedData/ArticleIdList by IdType (not the ArticleIdLists inside ReferenceList)."""
    ids: dict[str, str] = {}
    if data is None:
        return ids
    for elem in data.iterfind("ArticleIdList/ArticleId"):
        kind = elem.get("IdType")
        value = (elem.text or "").strip()
        if kind and value and kind not in ids:
            ids[kind] = value
    return ids


def _doi(art: Any, ids: dict[str, str]) -> str | None:
    """ELocationID EIdType="doi" (whatever precedes it, often a pii), else ArticleId doi."""
    for loc in art.iterfind("ELocationID"):
        if loc.get("EIdType") == "doi" and loc.get("ValidYN", "Y") != "N":
            value = (loc.text or "").strip()
            if value:
                return value
    return ids.get("doi")


def _journal_issue(art: Any) -> tuple[str | None, str | None]:
    """Volume and issue as printed ("8 Suppl 3", "3 Pt 2"); None when absent or empty."""
    issue = art.find("Journal/JournalIssue")
    if issue is None:
        return None, None
    return _text(issue.find("Volume")) or None, _text(issue.find("Issue")) or None


def _pages(art: Any) -> str | None:
    """Pagination as PubMed prints it: MedlinePgn ("3003-15", "e0227333", "1787-8; discussion
    1791"); when only StartPage/EndPage are given (newer records may), "start-end". The
    abbreviated end page is kept: ``store.citation.page_range`` expands it where a full one
    is needed. An empty MedlinePgn (an online-first article's placeholder) is no pages."""
    pagination = art.find("Pagination")
    if pagination is None:
        return None
    printed = _text(pagination.find("MedlinePgn"))
    if printed:
        return printed
    start, end = _text(pagination.find("StartPage")), _text(pagination.find("EndPage"))
    if start and end and end != start:
        return f"{start}-{end}"
    return start or end or None


def _elocation(art: Any) -> str | None:
    """The first valid ELocationID that is not the DOI (the DOI is its own field): a
    numbered article's number ("e0227333", "euae122") or, before the article is in an issue,
    the publisher's item identifier ("S0140-6736(20)31234-5")."""
    for loc in art.iterfind("ELocationID"):
        if loc.get("EIdType") == "doi" or loc.get("ValidYN", "Y") == "N":
            continue
        value = _text(loc)
        if value:
            return value
    return None


def _pmc(cit: Any, ids: dict[str, str]) -> str | None:
    """ArticleId pmc; old files carry it as OtherID "PMC123 [Available on 12/22/16]"."""
    if "pmc" in ids:
        return ids["pmc"]
    for other in cit.iterfind("OtherID"):
        value = (other.text or "").strip()
        if value.upper().startswith("PMC"):
            return value.split()[0]
    return None


def _languages(art: Any) -> list[str]:
    return [t for t in (_text(e) for e in art.iterfind("Language")) if t]


def _publication_types(art: Any) -> list[str]:
    types = art.iterfind("PublicationTypeList/PublicationType")
    if art.tag == "BookDocument":
        types = art.iterfind("PublicationType")
    return [t for t in (_text(e) for e in types) if t]


def _mesh(cit: Any) -> list[dict[str, Any]]:
    """MeSH descriptors with their qualifiers and major-topic flags."""
    headings = []
    for heading in cit.iterfind("MeshHeadingList/MeshHeading"):
        descriptor = heading.find("DescriptorName")
        if descriptor is None:
            continue
        headings.append({
            "descriptor": _text(descriptor),
            "major": descriptor.get("MajorTopicYN") == "Y",
            "qualifiers": [
                {"name": _text(q), "major": q.get("MajorTopicYN") == "Y"}
                for q in heading.iterfind("QualifierName")
            ],
        })
    return headings


def _keywords(cit: Any) -> list[str]:
    seen: dict[str, None] = {}
    for keyword in cit.iterfind("KeywordList/Keyword"):
        text = _text(keyword)
        if text:
            seen.setdefault(text, None)
    return list(seen)


def _nct_ids(art: Any, title: str, abstract: str | None) -> list[str]:
    """ClinicalTrials.gov numbers: DataBankList accessions plus NCT######## in title/abstract."""
    found = set()
    for bank in art.iterfind("DataBankList/DataBank"):
        if "clinicaltrials" not in (bank.findtext("DataBankName") or "").lower():
            continue
        for acc in bank.iterfind("AccessionNumberList/AccessionNumber"):
            match = NCT_RE.search(acc.text or "")
            if match:
                found.add("NCT" + match.group(1))
    for text in (title, abstract or ""):
        found.update("NCT" + m for m in NCT_RE.findall(text))
    return sorted(found)


def _status(cit: Any) -> str | None:
    return cit.get("Status")


def _comments_corrections(cit: Any) -> list[dict[str, Any]]:
    """CommentsCorrections links: {"ref_type", "pmid" (int or None), "source"}."""
    links = []
    for link in cit.iterfind("CommentsCorrectionsList/CommentsCorrections"):
        links.append({
            "ref_type": link.get("RefType"),
            "pmid": _id_or_none(link.findtext("PMID")),
            "source": " ".join((link.findtext("RefSource") or "").split()) or None,
        })
    return links


# --------------------------------------------------------------------------- record builders


def _article_record(cit: Any, data: Any, pmid: int, version: int) -> ParsedRecord:
    art = cit.find("Article")
    if art is None:
        art = etree.Element("Article")  # a citation without Article: keep PMID and status
    title = _title(art)
    abstract = _abstract(art)
    journal, abbrev = _journal(art, cit)
    year, pub_date = _article_pub_date(art)
    volume, issue = _journal_issue(art)
    ids = _article_ids(data)
    return ParsedRecord(
        pmid=pmid,
        pmid_version=version,
        title=title,
        abstract=abstract,
        journal=journal,
        journal_abbrev=abbrev,
        year=year,
        pub_date=pub_date,
        create_date=_create_date(cit, data),
        authors=_authors(art),
        doi=_doi(art, ids),
        pmc=_pmc(cit, ids),
        language=_languages(art),
        publication_types=_publication_types(art),
        mesh=_mesh(cit),
        keywords=_keywords(cit),
        nct_ids=_nct_ids(art, title, abstract),
        status=_status(cit),
        comments_corrections=_comments_corrections(cit),
        is_book=False,
        volume=volume,
        issue=issue,
        pages=_pages(art),
        elocation=_elocation(art),
    )


def _book_record(doc: Any, data: Any, pmid: int, version: int) -> ParsedRecord:
    book = doc.find("Book")
    if book is None:
        book = etree.Element("Book")
    title = _title(doc, book=book)
    abstract = _abstract(doc)
    year, pub_date = _pub_date(book.find("PubDate"))
    ids = _article_ids(data)
    return ParsedRecord(
        pmid=pmid,
        pmid_version=version,
        title=title,
        abstract=abstract,
        # A chapter's "journal" is the book it belongs to (e.g. GeneReviews).
        journal=_text(book.find("BookTitle")) or None,
        journal_abbrev=None,
        year=year,
        pub_date=pub_date,
        create_date=_history_date(data),
        authors=_authors(doc),
        doi=_doi(doc, ids),
        pmc=ids.get("pmc"),
        language=_languages(doc),
        publication_types=_publication_types(doc),
        mesh=_mesh(doc),
        keywords=_keywords(doc),
        nct_ids=_nct_ids(doc, title, abstract),
        status=None,
        comments_corrections=_comments_corrections(doc),
        is_book=True,
    )


# --------------------------------------------------------------------------- the stream


def _source_name(source: Source, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, str) and source.lstrip().startswith("<"):
        return "<response>"
    if isinstance(source, str | Path):
        return str(source)
    file_name = getattr(source, "name", None)
    return file_name if isinstance(file_name, str) else "<response>"


def _open(source: Source) -> tuple[IO[bytes] | gzip.GzipFile, bool]:
    """A binary stream over ``source`` (gzip decoded) and whether we must close it."""
    if isinstance(source, str) and source.lstrip().startswith("<"):
        source = source.encode("utf-8")  # XML text passed as str, not a path
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
        if data[:2] == b"\x1f\x8b":
            return gzip.GzipFile(fileobj=io.BytesIO(data)), True
        return io.BytesIO(data), True
    if isinstance(source, str | Path):
        path = Path(source)
        try:
            stream = path.open("rb")
        except OSError as exc:
            raise ParseError(
                f"cannot read PubMed XML file {path}: {exc.strerror or exc}",
                hint="check the path and its permissions",
            ) from exc
        if path.suffix == ".gz" or stream.read(2) == b"\x1f\x8b":
            stream.close()
            # gzip.open owns (and closes) the file; GzipFile(fileobj=...) would not.
            return gzip.open(path, "rb"), True
        stream.seek(0)
        return stream, True
    return source, False


def _syntax_error(name: str, exc: etree.XMLSyntaxError) -> ParseError:
    line, column = exc.position if exc.position else (exc.lineno, 0)
    if not line:
        return ParseError(f"{name} is empty (no XML at all)", hint="fetch it again")
    reason = (exc.msg or str(exc)).split(", line ")[0].strip()
    return ParseError(
        f"{name} is not well-formed XML at line {line}, column {column}: {reason}",
        hint="the body is truncated or not PubMed XML; fetch it again",
    )


def _error_text(root: Any) -> str | None:
    """Text of an E-utilities ``<ERROR>`` root or of ``<ERROR>`` children of the root."""
    if root.tag == "ERROR":
        return _text(root) or "(empty ERROR element)"
    messages = [_text(e) for e in root.iterfind("ERROR")]
    messages = [m for m in messages if m]
    return "; ".join(messages) if messages else None


def _check_root(root: Any, name: str) -> None:
    if root.tag in ARTICLE_ROOTS:
        return
    error = _error_text(root)
    if error is not None:
        raise ParseError(
            f"{name} is an E-utilities error document (<{root.tag}>): {error}",
            hint="the request failed at NCBI; retry, or fix the request if the error persists",
        )
    raise ParseError(
        f"{name} is not a PubMed article set: its root element is <{root.tag}> at line "
        f"{root.sourceline}",
        hint="expected <PubmedArticleSet> or <MedlineCitationSet> (efetch db=pubmed retmode=xml)",
    )


def _release(elem: Any) -> None:
    """Free a finished record and the already-processed siblings before it."""
    elem.clear(keep_tail=False)
    parent = elem.getparent()
    if parent is not None:
        while elem.getprevious() is not None:
            del parent[0]


def iter_records(source: Source, *, name: str | None = None) -> Iterator[Item]:
    """Yield the records of a PubMed XML document (bytes, path .xml/.xml.gz, or binary file).

    ``name`` labels the source in error messages (default: the path, or ``<response>``).
    """
    label = _source_name(source, name)
    stream, owned = _open(source)
    bad_records: list[str] = []
    index = 0
    try:
        parser = etree.iterparse(
            stream,
            events=("end",),
            tag=_RECORD_TAGS,
            load_dtd=False,
            no_network=True,
            resolve_entities=False,
            huge_tree=True,
            remove_comments=True,
            remove_pis=True,
        )
        root_checked = False
        try:
            for _event, elem in parser:
                if not root_checked:
                    _check_root(elem.getroottree().getroot(), label)
                    root_checked = True
                tag = elem.tag
                if tag == "MedlineCitation" and elem.getparent().tag != "MedlineCitationSet":
                    continue  # handled with its PubmedArticle
                if tag == "DeleteCitation":
                    for pmid_elem in elem.iterfind("PMID"):
                        pmid = _id_or_none(pmid_elem.text)
                        if pmid is None:
                            bad_records.append(
                                f"DeleteCitation at line {pmid_elem.sourceline} has an invalid "
                                f"PMID {pmid_elem.text!r}"
                            )
                        else:
                            yield DeletedCitation(pmid)
                    _release(elem)
                    continue
                index += 1
                record = _build(elem, tag)
                if isinstance(record, str):
                    bad_records.append(f"record {index} at line {elem.sourceline} {record}")
                else:
                    yield record
                _release(elem)
            if not root_checked:
                _check_root(parser.root, label)
        except etree.XMLSyntaxError as exc:
            raise _syntax_error(label, exc) from None
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise ParseError(
                f"{label} is a truncated or corrupt gzip stream after {index} records: {exc}",
                hint="download the file again",
            ) from None
    finally:
        if owned:
            stream.close()
    if bad_records:
        raise ParseError(
            f"{label}: {len(bad_records)} record(s) without a usable PMID: "
            + "; ".join(bad_records[:5])
            + ("; ..." if len(bad_records) > 5 else ""),
            hint="the other records were read; report the file to NLM or fix it by hand",
        )


def _build(elem: Any, tag: str) -> ParsedRecord | str:
    """The record for one article element, or a description of why it has no PMID."""
    if tag == "PubmedBookArticle":
        cit = elem.find("BookDocument")
        data = elem.find("PubmedBookData")
        what = "<BookDocument>"
    elif tag == "PubmedArticle":
        cit = elem.find("MedlineCitation")
        data = elem.find("PubmedData")
        what = "<MedlineCitation>"
    else:  # MedlineCitation directly under MedlineCitationSet
        cit, data, what = elem, None, "<MedlineCitation>"
    if cit is None:
        return f"(<{tag}>) has no {what}"
    pmid, version = _pmid(cit)
    if pmid is None:
        raw = cit.findtext("PMID")
        return f"(<{tag}>) has no PMID" if raw is None else f"(<{tag}>) has a bad PMID {raw!r}"
    if tag == "PubmedBookArticle":
        return _book_record(cit, data, pmid, version)
    return _article_record(cit, data, pmid, version)


# --------------------------------------------------------------------------- conveniences


@dataclass(slots=True)
class ParseOutcome:
    """Everything read from one document, and the error that stopped it (if any)."""

    records: list[ParsedRecord] = field(default_factory=list)
    deleted: list[DeletedCitation] = field(default_factory=list)
    error: ParseError | None = None

    @property
    def complete(self) -> bool:
        return self.error is None


def parse_all(
    source: Source, *, name: str | None = None, on_error: Literal["raise", "keep"] = "raise"
) -> ParseOutcome:
    """Read a whole document. ``on_error="keep"`` returns the records read before (and, for
    record-level faults, after) the error together with the error instead of raising."""
    outcome = ParseOutcome()
    try:
        for item in iter_records(source, name=name):
            if isinstance(item, DeletedCitation):
                outcome.deleted.append(item)
            else:
                outcome.records.append(item)
    except ParseError as exc:
        if on_error == "raise":
            raise
        log.warning("%s", exc.one_line())
        outcome.error = exc
    return outcome


def check_eutils_error(body: bytes) -> str | None:
    """The error text if ``body`` is an E-utilities error document, else None.

    Recognises an ``<ERROR>`` root, ``<ERROR>`` children of any E-utilities result root
    (``<eFetchResult>``, ``<eSearchResult>``, ``<ePostResult>``...), and the JSON forms
    (``{"error": ...}`` from the rate limiter, ``{"esearchresult": {"ERROR": ...}}``).
    ``ErrorList``/``PhraseNotFound`` in a search result is not an error (zero hits).
    """
    head = body[:4096].lstrip()
    if head.startswith(b"{"):
        return _json_error(body)
    # An article set can be megabytes; an <ERROR> can only be near the top of a document.
    if b"<ERROR" not in head:
        return None
    parser = etree.XMLPullParser(
        events=("start",), load_dtd=False, no_network=True, resolve_entities=False
    )
    try:
        parser.feed(body)
        parser.close()
    except etree.XMLSyntaxError:
        pass  # a truncated error document still shows its root and first children
    root = next((elem for _event, elem in parser.read_events()), None)
    if root is None:
        return None
    if root.tag in ARTICLE_ROOTS:
        return None
    return _error_text(root)


def _json_error(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    for key in ("error", "ERROR"):
        if isinstance(data.get(key), str):
            return data[key]
    for key, value in data.items():
        if key == "header":
            continue
        if isinstance(value, dict):
            for inner in ("ERROR", "error"):
                if isinstance(value.get(inner), str):
                    return value[inner]
        # esummary's JSON error: {"esummaryresult": ["Invalid db name specified: x"]}
        if (key.endswith("result") and isinstance(value, list) and value
                and all(isinstance(v, str) for v in value)):
            return "; ".join(value)
    return None
