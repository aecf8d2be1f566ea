"""What a haematologist reads on the pages: counts with the right plural. Over the real app
and database (starlette TestClient)."""

from __future__ import annotations

import html
import re
from typing import Any

import test_network
import test_web
from test_web import add_records, as_role, csrf_from

app = test_web.app
users = test_web.users
network_evidence = test_network.network_evidence


def _text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_queue_counts_say_one_record_and_one_decision(app: Any, users: dict[str, str]) -> None:
    add_records(app, [{"pmid": 90000001, "title": "Only record", "score": 0.9,
                       "flagged": True}])
    curator = as_role(app, users, "curator")
    first = _text(curator.get("/").text)
    assert "1 of 1 record awaiting a decision (1 flagged as a likely maintenance RCT); " \
           "0 decisions so far." in first
    page = curator.get("/records/90000001").text
    assert curator.post("/records/90000001/decision", follow_redirects=False, data={
        "decision": "include", "reason": "", "csrf_token": csrf_from(page)}).status_code == 303
    assert "0 of 1 record awaiting a decision (0 flagged as likely maintenance RCTs); " \
           "1 decision so far." in _text(curator.get("/").text)


def test_a_malformed_address_is_explained_in_words_on_pages_and_as_before_in_the_api(
        app: Any, users: dict[str, str]) -> None:
    viewer = as_role(app, users, "viewer")
    for path, words in [
            ("/records/abc", "pmid must be a whole number, not “abc”"),
            ("/?offset=-5", "offset must be at least 0"),
            ("/?show=bogus", "“bogus” is not a value show can take")]:
        response = viewer.get(path)
        assert response.status_code == 400
        text = _text(response.text)
        assert f"this address or form is not valid: {words}" in text, text
        assert "Input should" not in text and "^(" not in text
        assert 'href="/"' in response.text  # a way back
    api = viewer.get("/api/records?limit=abc")
    assert api.status_code == 400 and "limit: Input should be a valid integer" in api.text


def test_error_pages_are_titled_by_what_happened(app: Any, users: dict[str, str]) -> None:
    viewer = as_role(app, users, "viewer")
    for path, title in [("/records/12345", "Not found (error 404)"),
                        ("/admin/users", "Not allowed (error 403)"),
                        ("/?offset=-1", "That did not work (error 400)")]:
        page = viewer.get(path).text
        assert f"<title>{title} · mmlr</title>" in page, path
        assert f"<h1>{title.split(' (')[0]}</h1>" in page


def test_a_records_alerts_are_named_in_words(app: Any, users: dict[str, str]) -> None:
    from test_web import db

    from store.models import Alert

    add_records(app, [{"pmid": 90000001, "title": "A trial report", "score": 0.9}])
    with db(app) as session:
        session.add(Alert(kind="expression_of_concern", pmid=90000001, related_pmid=90000009,
                          message="PMID 90000009 is an expression of concern about it"))
        session.commit()
    page = as_role(app, users, "viewer").get("/records/90000001").text
    assert "<strong>Expression of concern</strong>: " in page
    assert "PMID 90000009 is an expression of concern about it" in _text(page)
    assert "expression_of_concern" not in _text(page)


def test_an_alert_links_the_notice_it_names(app: Any, users: dict[str, str]) -> None:
    """The curator reads the retraction notice itself: on its record page when it is stored,
    on PubMed when not (never a "not found" page); the message is escaped all the same."""
    import lxml.html
    from test_web import db

    from store.models import Alert

    add_records(app, [{"pmid": 90000001, "title": "A trial report", "score": 0.9},
                      {"pmid": 90000186, "title": "Retraction notice", "score": 0.1}])
    with db(app) as session:
        session.add(Alert(kind="retraction", pmid=90000001, related_pmid=90000186,
                          message="PMID 90000001 is retracted by notice PMID 90000186"))
        session.add(Alert(kind="erratum", pmid=90000001, related_pmid=90000777,
                          message="<b>PMID 90000777</b> corrects it"))
        session.commit()
    page = lxml.html.fromstring(as_role(app, users, "viewer").get("/records/90000001").text)
    links = {a.text_content(): a.get("href")
             for a in page.xpath('//section[@aria-label="Alerts"]//a')}
    assert links == {"PMID 90000001": "/records/90000001", "PMID 90000186": "/records/90000186",
                     "PMID 90000777": "https://pubmed.ncbi.nlm.nih.gov/90000777/"}
    assert page.xpath('//section[@aria-label="Alerts"]//b') == []  # shown as text


def test_no_page_counts_with_an_s_in_parentheses(network_evidence: Any, app: Any,
                                                 users: dict[str, str]) -> None:
    """"3 trial row(s)" reads as a form, not a sentence: counts take their plural."""
    viewer = as_role(app, users, "viewer")
    for path in ["/", "/network", "/network?key=PFS/post_asct", "/trials", "/estimates",
                 "/summary", "/prisma", "/fulltext", "/searches"]:
        assert "(s)" not in _text(viewer.get(path).text), path
    networks = _text(viewer.get("/network").text)
    assert re.search(r"— \d+ trial rows\b", networks), networks[:400]
