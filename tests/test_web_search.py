"""``/search``: finding records and trials by PMID, DOI, registration, trial name, words or an
author, over the real app and database (SQLite, and PostgreSQL with MMLR_TEST_DATABASE_URL)."""

from __future__ import annotations

from typing import Any

import lxml.html
import pytest
import test_web
from fastapi.testclient import TestClient
from test_web import add_records, as_role, db

from screening.record_search import MAX_QUERY_CHARS, MAX_TERMS, exact_pmid, parse_terms
from store.errors import ValidationError
from store.models import Trial

app = test_web.app
users = test_web.users

RECORDS = [
    {"pmid": 1001, "title": "Lenalidomide maintenance after autologous transplantation",
     "abstract": "A randomised trial of maintenance therapy in multiple myeloma.",
     "journal": "N Engl J Med", "year": 2012, "score": 0.9, "flagged": True,
     "doi": "10.1056/NEJMoa1114083", "nct_ids": ["NCT00114101"],
     "authors": ["Attal M", "Lauwers-Cances V"]},
    {"pmid": 1002, "title": "Thalidomide after transplantation",
     "abstract": "Maintenance with thalidomide; lenalidomide was not studied.",
     "journal": "Blood", "year": 2006, "score": 0.5, "authors": ["Müller A"]},
    {"pmid": 1003, "title": "A review of <script>alert(1)</script> maintenance therapy",
     "abstract": "Reached 100% of the planned accrual; maintenance_therapy is a keyword.",
     "journal": "Leukemia", "year": 2020, "score": 0.1, "deleted": True},
]


def _search(c: TestClient, q: str, **params: Any) -> Any:
    return c.get("/search", params={"q": q, **params}, follow_redirects=False)


def _found(c: TestClient, q: str, **params: Any) -> list[int]:
    answer = _search(c, q, **params)
    assert answer.status_code == 200, answer.text
    page = lxml.html.fromstring(answer.text)
    return [int(pmid) for pmid in page.xpath("//table[contains(@class, 'search-results')]"
                                            "//tr/@data-pmid")]


@pytest.fixture
def viewer(app: Any, users: dict[str, str]) -> TestClient:
    add_records(app, RECORDS)
    return as_role(app, users, "viewer")


def test_every_term_must_match_in_any_field(viewer: TestClient) -> None:
    assert _found(viewer, "lenalidomide") == [1001, 1002]  # title, abstract; by score
    assert _found(viewer, "lenalidomide transplantation") == [1001, 1002]
    assert _found(viewer, "lenalidomide randomised") == [1001]  # title AND abstract
    assert _found(viewer, "LENALIDOMIDE Maintenance blood") == [1002]  # journal, any case
    assert _found(viewer, '"maintenance therapy"') == [1001, 1003]  # a phrase is one term
    assert _found(viewer, '"therapy maintenance"') == []
    assert _found(viewer, '"maintenance therapy') == [1001, 1003]  # the closing quote forgotten
    assert _found(viewer, "bortezomib") == []


def test_identifiers_and_authors_are_found(viewer: TestClient) -> None:
    assert _found(viewer, "nct00114101") == [1001]
    assert _found(viewer, "10.1056/nejmoa1114083") == [1001]
    # a DOI as it is pasted from a paper or a reference manager: its link or "doi:" form
    for pasted in ("https://doi.org/10.1056/NEJMoa1114083",
                   "http://dx.doi.org/10.1056/NEJMoa1114083", "doi:10.1056/NEJMoa1114083",
                   "DOI: 10.1056/NEJMoa1114083",
                   "https://doi.org/10.1056%2FNEJMoa1114083", "doi.org/10.1056/NEJMoa1114083",
                   "lenalidomide https://doi.org/10.1056/NEJMoa1114083"):
        assert _found(viewer, pasted) == [1001], pasted
    assert _found(viewer, "attal") == [1001]
    # Authors are stored as JSON text with non-ASCII letters escaped: found as typed.
    assert _found(viewer, "Müller") == [1002]
    assert _found(viewer, "MÜLLER") == [1002]


def test_accented_capitals_match_in_any_case_and_escapes_match_nothing(
        app: Any, users: dict[str, str]) -> None:
    # SQLite's lower() folds ASCII only, and the JSON lists keep "\u00c7" for "Ç": no
    # spelling found "Çelik"; and the hex digits of those escapes matched a year ("2019" in
    # the apostrophe of "O’Brien", "\u2019").
    add_records(app, [
        {"pmid": 2001, "title": "Étude ÉLAN de maintenance", "journal": "Blood", "year": 2020,
         "authors": ["Çelik A", "O\u2019Brien P"], "keywords": ["myeloma \u2013 maintenance"]},
        {"pmid": 2002, "title": "Observation after transplant, 2019 update", "year": 2019,
         "authors": ["Yılmaz B"]},
    ])
    viewer = as_role(app, users, "viewer")
    for q in ("Çelik", "çelik", "ÇELIK", "étude", "ÉTUDE", "élan", "o’brien", "yılmaz"):
        assert _found(viewer, q) == ([2002] if q == "yılmaz" else [2001]), q
    assert _found(viewer, "2019") == [2002]  # not the escaped apostrophe of 2001
    for q in ("2013", "u00c7", "0131", "\\"):  # what the stored escapes are made of
        assert _found(viewer, q) == [], q
    api = test_web.api_as(app, users, "viewer")
    assert [r["pmid"] for r in api.get("/api/records", params={"q": "ÇELIK"}).json()[
        "records"]] == [2001]


def test_like_wildcards_are_taken_literally(viewer: TestClient) -> None:
    assert _found(viewer, "100%") == [1003]
    assert _found(viewer, "maintenance_therapy") == [1003]
    assert _found(viewer, "%") == [1003]  # the one record with a percent sign, not all
    assert _found(viewer, "_") == [1003]


def test_one_pmid_opens_its_record(viewer: TestClient) -> None:
    for q in ("1002", " 1002 ", "PMID 1002", "pmid:1002"):
        answer = _search(viewer, q)
        assert answer.status_code == 303 and answer.headers["location"] == "/records/1002", q
    missing = _search(viewer, "99999999")
    assert missing.status_code == 200
    text = " ".join(lxml.html.fromstring(missing.text).text_content().split())
    assert "No record with PMID 99999999 is stored" in text
    assert 'href="https://pubmed.ncbi.nlm.nih.gov/99999999/"' in missing.text
    # Nothing mentions it either: no "listed below" above "0 records".
    assert "listed below" not in text
    # The percentage "100" is in an abstract: there the records are listed below the note.
    mentioned = " ".join(lxml.html.fromstring(_search(viewer, "100").text).text_content().split())
    assert "No record with PMID 100 is stored" in mentioned
    assert "Records mentioning it are listed below." in mentioned


def test_deleted_records_are_found_and_marked_and_text_is_escaped(viewer: TestClient) -> None:
    answer = _search(viewer, "<script>")
    assert answer.status_code == 200
    assert "<script>alert(1)</script>" not in answer.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text  # the title, and the query
    row = lxml.html.fromstring(answer.text).xpath("//tr[@data-pmid='1003']")[0]
    assert "deleted from PubMed" in row.text_content()


def test_trials_are_listed_beside_the_records(app: Any, viewer: TestClient) -> None:
    with db(app) as session:
        session.add(Trial(name="IFM 2005-02", drug="lenalidomide", setting="post_asct",
                          comparator="placebo", registry_ids=["NCT00430365"]))
        session.add(Trial(name="CALGB 100104", drug="lenalidomide", setting="post_asct"))
        session.commit()
    page = lxml.html.fromstring(_search(viewer, "ifm lenalidomide").text)
    assert [a.text for a in page.xpath("//ul[@class='search-trials']//a")] == ["IFM 2005-02"]
    page = lxml.html.fromstring(_search(viewer, "NCT00430365").text)
    assert [a.text for a in page.xpath("//ul[@class='search-trials']//a")] == ["IFM 2005-02"]


def test_results_are_paged_with_the_query_kept(app: Any, users: dict[str, str]) -> None:
    add_records(app, [{"pmid": 2000 + i, "title": f"Maintenance study {i}", "score": i / 100}
                      for i in range(60)])
    viewer = as_role(app, users, "viewer")
    first = _found(viewer, "maintenance study")
    assert first == [2000 + i for i in range(59, 9, -1)]
    page = lxml.html.fromstring(_search(viewer, "maintenance study").text)
    (next_link,) = page.xpath("//nav[@class='pager']//a[contains(., 'Next')]/@href")
    assert next_link == "/search?q=maintenance+study&offset=50"
    assert _found(viewer, "maintenance study", offset=50) == [2000 + i for i in range(9, -1, -1)]
    assert "60 records" in page.text_content()
    # A page past the end (an old link, a shrunken result) says so and leads back to the first.
    past = lxml.html.fromstring(_search(viewer, "maintenance study", offset=500).text)
    assert "on this page" in past.text_content()
    assert past.xpath("//section[@aria-label='Records']//a[contains(., 'first page')]/@href") == [
        "/search?q=maintenance+study&offset=0"]


def test_a_query_too_long_or_with_too_many_terms_is_refused_beside_the_box(
        viewer: TestClient) -> None:
    long_query = "a" * (MAX_QUERY_CHARS + 1)
    answer = _search(viewer, long_query)
    assert answer.status_code == 400
    page = lxml.html.fromstring(answer.text)
    assert page.xpath("string(//p[@id='search-error'])") == (
        f"the search is {MAX_QUERY_CHARS + 1} characters long (use at most "
        f"{MAX_QUERY_CHARS} characters)")
    assert page.xpath("//input[@id='search-q']/@value") == [long_query]  # kept as typed
    # typed into the address bar, far past what the box allows: the same answer, not a
    # generic error page
    answer = _search(viewer, "b" * 5000)
    assert answer.status_code == 400
    assert lxml.html.fromstring(answer.text).xpath("string(//p[@id='search-error'])") == (
        f"the search is 5,000 characters long (use at most {MAX_QUERY_CHARS} characters)")
    # the window's title (a tab, the history) names the search, shortened
    title = lxml.html.fromstring(answer.text).findtext(".//title")
    assert title.startswith("Search: bbb") and "…" in title and len(title) < 100
    many = " ".join(f"w{i}" for i in range(MAX_TERMS + 1))
    answer = _search(viewer, many)
    assert answer.status_code == 400 and f"has {MAX_TERMS + 1} terms" in answer.text


def test_search_needs_a_login_and_is_in_every_page_header(app: Any, viewer: TestClient) -> None:
    anonymous = TestClient(app, raise_server_exceptions=False)
    answer = anonymous.get("/search?q=lenalidomide", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    for path in ("/", "/trials", "/estimates"):
        page = lxml.html.fromstring(viewer.get(path).text)
        assert page.xpath("//header//form[@action='/search']//input[@name='q']"), path
    empty = _search(viewer, "")
    assert empty.status_code == 200 and "search-results" not in empty.text


def test_terms_are_parsed_as_words_and_phrases() -> None:
    assert parse_terms('  Lenalidomide  "Maintenance   therapy" lenalidomide ') == (
        "lenalidomide", "maintenance therapy")
    assert parse_terms('""') == ()
    # An unclosed quote: a phrase to the end, never a word with a quote mark in it.
    assert parse_terms('lenalidomide "Maintenance therapy') == (
        "lenalidomide", "maintenance therapy")
    assert parse_terms('"progression-free') == ("progression-free",)
    # a DOI's link or "doi:" prefix is not part of it; only a whole term's start is one
    assert parse_terms("https://doi.org/10.1056/NEJMoa1114083 doi:10.1/X") == (
        "10.1056/nejmoa1114083", "10.1/x")
    assert parse_terms("doi: 10.1/X") == ("10.1/x",)
    assert parse_terms('"see https://doi.org/10.1/x"') == ("see https://doi.org/10.1/x",)
    with pytest.raises(ValidationError):
        parse_terms("x" * (MAX_QUERY_CHARS + 1))
    assert exact_pmid("PMID: 22571200") == 22571200
    assert exact_pmid("22571200 lenalidomide") is None


def test_the_api_searches_records_with_q(app: Any, users: dict[str, str]) -> None:
    from test_web import api_as

    add_records(app, [{**r, "decision": "include" if r["pmid"] == 1002 else None}
                      for r in RECORDS])
    api = api_as(app, users, "viewer")

    def pmids(query: str) -> list[int]:
        answer = api.get(f"/api/records?{query}")
        assert answer.status_code == 200, answer.text
        return [r["pmid"] for r in answer.json()["records"]]

    assert pmids("q=lenalidomide") == [1001, 1002]
    assert pmids("q=lenalidomide&status=decided") == [1002]
    assert pmids("q=%22maintenance+therapy%22") == [1001, 1003]
    assert api.get("/api/records?q=attal").json()["total"] == 1
    for query, message in [("q=", "q is empty"), ("q=%20%22%22", "q is empty"),
                           ("q=" + "a" * (MAX_QUERY_CHARS + 1), "the search is 301 characters")]:
        answer = api.get(f"/api/records?{query}")
        assert answer.status_code == 400 and message in answer.json()["error"], query
