"""MEDLINE text (efetch ``rettype=medline&retmode=text``) -> :class:`ParsedRecord`.

Bio.Medline does the line-level work (tags, continuation lines, repeated tags as lists); this
module maps its records onto the same value object the XML parser yields, so the poller can
store either. The text format carries less than the XML: structured-abstract labels stay inline
("PURPOSE: ... METHODS: ...") and there is no ISO journal abbreviation (``TA`` is the MEDLINE
abbreviation), which is why XML stays the primary format.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from Bio import Medline

from monitor.pubmed_xml import NCT_RE
from monitor.records import ParsedRecord
from store.errors import ParseError
from store.ids import parse_id

TextSource = str | Path | bytes | IO[str]

#: MEDLINE tags for CommentsCorrections, mapped to the XML RefType names.
COMMENT_TAGS = {
    "CON": "CommentOn", "CIN": "CommentIn", "EIN": "ErratumIn", "EFR": "ErratumFor",
    "CRI": "CorrectedandRepublishedIn", "CRF": "CorrectedandRepublishedFrom",
    "PRIN": "PartialRetractionIn", "PROF": "PartialRetractionOf",
    "RPI": "RepublishedIn", "RPF": "RepublishedFrom", "RIN": "RetractionIn",
    "ROF": "RetractionOf", "UIN": "UpdateIn", "UOF": "UpdateOf",
    "SPIN": "SummaryForPatientsIn", "ORI": "OriginalReportIn",
    "ECI": "ExpressionOfConcernIn", "ECF": "ExpressionOfConcernFor",
}
_PMID_IN_REF = re.compile(r"PMID:\s*(\d+)")
_YEAR_RE = re.compile(r"\b(1[89]\d\d|2\d\d\d)\b")


def _list(record: dict[str, Any], tag: str) -> list[str]:
    value = record.get(tag)
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _one(record: dict[str, Any], tag: str) -> str | None:
    value = record.get(tag)
    if isinstance(value, list):
        value = value[0] if value else None
    value = " ".join(value.split()) if value else None
    return value or None


def _tagged(values: Iterable[str], kind: str) -> str | None:
    """First "value [kind]" among LID/AID entries, e.g. "10.1118/1.4748329 [doi]"."""
    suffix = f"[{kind}]"
    for value in values:
        value = value.strip()
        if value.endswith(suffix):
            return value[: -len(suffix)].strip() or None
    return None


def _medline_date(value: str | None) -> date | None:
    """CRDT/EDAT "2012/10/09 06:00" or PHST "2012/10/09 06:00 [entrez]" -> date."""
    if not value:
        return None
    try:
        return datetime.strptime(value.split()[0], "%Y/%m/%d").date()
    except ValueError:
        return None


def _create_date(record: dict[str, Any]) -> date | None:
    found = _medline_date(_one(record, "CRDT"))
    if found:
        return found
    for entry in _list(record, "PHST"):
        if entry.strip().endswith("[entrez]"):
            return _medline_date(entry)
    return _medline_date(_one(record, "EDAT"))


def _mesh(record: dict[str, Any]) -> list[dict[str, Any]]:
    """"Descriptor/qualifier/*qualifier" with "*" marking a major topic."""
    headings = []
    for line in _list(record, "MH"):
        parts = [p.strip() for p in " ".join(line.split()).split("/")]
        descriptor = parts[0]
        headings.append({
            "descriptor": descriptor.lstrip("*"),
            "major": descriptor.startswith("*"),
            "qualifiers": [
                {"name": q.lstrip("*"), "major": q.startswith("*")} for q in parts[1:] if q
            ],
        })
    return headings


def _comments(record: dict[str, Any]) -> list[dict[str, Any]]:
    links = []
    for tag, ref_type in COMMENT_TAGS.items():
        for ref in _list(record, tag):
            ref = " ".join(ref.split())
            match = _PMID_IN_REF.search(ref)
            source = _PMID_IN_REF.sub("", ref).strip() or None
            links.append({
                "ref_type": ref_type,
                "pmid": parse_id(match.group(1)) if match else None,
                "source": source,
            })
    return links


def _nct_ids(record: dict[str, Any], title: str, abstract: str | None) -> list[str]:
    found: set[str] = set()
    for entry in _list(record, "SI"):
        if "clinicaltrials" in entry.lower():
            found.update("NCT" + m for m in NCT_RE.findall(entry))
    for text in (title, abstract or ""):
        found.update("NCT" + m for m in NCT_RE.findall(text))
    return sorted(found)


def medline_to_record(record: dict[str, Any], *, where: str = "record") -> ParsedRecord:
    """Map one Bio.Medline record onto ParsedRecord (ParseError when it has no PMID)."""
    raw_pmid = _one(record, "PMID")
    # parse_id: ASCII digits from 1 to MAX_ID, as in the XML parser ("²" passed isdigit and
    # failed int(); twenty digits failed the database's insert)
    pmid = parse_id(raw_pmid) if raw_pmid is not None else None
    if pmid is None:
        raise ParseError(
            f"{where} has no usable PMID (found {raw_pmid!r})",
            hint="expected MEDLINE text from efetch rettype=medline retmode=text",
        )
    title = _one(record, "TI") or _one(record, "BTI") or _one(record, "TT") or ""
    abstract = _one(record, "AB")
    pub_date = _one(record, "DP")
    year_match = _YEAR_RE.search(pub_date or "")
    ids = _list(record, "LID") + _list(record, "AID")
    return ParsedRecord(
        pmid=pmid,
        title=title,
        abstract=abstract,
        journal=_one(record, "JT"),
        journal_abbrev=_one(record, "TA"),
        year=int(year_match.group(1)) if year_match else None,
        pub_date=pub_date,
        create_date=_create_date(record),
        authors=[" ".join(a.split()) for a in _list(record, "AU")]
        or [" ".join(c.split()) for c in _list(record, "CN")],
        doi=_tagged(ids, "doi"),
        pmc=_one(record, "PMC"),
        language=_list(record, "LA"),
        publication_types=[" ".join(p.split()) for p in _list(record, "PT")],
        mesh=_mesh(record),
        keywords=[" ".join(k.split()) for k in _list(record, "OT")],
        nct_ids=_nct_ids(record, title, abstract),
        status=_one(record, "STAT"),
        comments_corrections=_comments(record),
        is_book="BTI" in record,
        volume=_one(record, "VI"),
        issue=_one(record, "IP"),
        pages=_one(record, "PG"),
        # LID is the ELocationID (AID, the article's other ids, may hold a pii too, but the
        # XML parser reads ELocationID only, and both must store the same record alike).
        elocation=_tagged(_list(record, "LID"), "pii"),
    )


def _text_handle(source: TextSource) -> tuple[IO[str], str, bool]:
    if isinstance(source, bytes):
        return io.StringIO(source.decode("utf-8", errors="replace")), "<response>", True
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source):
        path = Path(source)
        try:
            return path.open(encoding="utf-8", errors="replace"), str(path), True
        except OSError as exc:
            raise ParseError(
                f"cannot read MEDLINE file {path}: {exc.strerror or exc}",
                hint="check the path and its permissions",
            ) from exc
    if isinstance(source, str):
        return io.StringIO(source), "<response>", True
    return source, getattr(source, "name", "<response>"), False


def iter_medline_records(source: TextSource) -> Iterator[ParsedRecord]:
    """Yield the records of MEDLINE text: a path (``Path``, or a ``str`` without newlines),
    the text itself, bytes, or a text handle. Records without a PMID are reported in one
    ParseError at the end, after every good record has been yielded."""
    handle, name, owned = _text_handle(source)
    problems: list[str] = []
    try:
        for index, record in enumerate(Medline.parse(handle), 1):
            try:
                parsed = medline_to_record(record, where=f"record {index}")
            except ParseError as exc:
                # Keep going: one bad record must not cost the records after it.
                problems.append(exc.message)
                continue
            yield parsed
    finally:
        if owned:
            handle.close()
    if problems:
        raise ParseError(
            f"{name}: {len(problems)} MEDLINE record(s) unusable: " + "; ".join(problems[:5]),
            hint="the other records were read; expected efetch rettype=medline retmode=text",
        )
