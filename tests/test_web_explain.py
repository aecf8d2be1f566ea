"""The record page's "Why this score" and /api/records/{pmid}/explanation, on the real app
with models trained by `mmlr screen`'s own code path (screening.service.screen)."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from typing import Any

import pytest
import test_web
from fastapi.testclient import TestClient
from sqlmodel import select
from test_explain import toy_corpus
from test_explain import trained as train_toy
from test_web import as_role, db

from screening.config import ScreeningConfig
from screening.features import Document
from screening.service import PRIOR_NAME, screen
from screening.web.auth import issue_api_token
from screening.web.decisions import record_decision
from screening.web.explanations import ModelCache
from store.context import make_context
from store.models import ModelVersion, Record, User

app = test_web.app
users = test_web.users

XSS_TERM = "<script>alert(1)</script>"
BASE = 91_000_000
PROBE = BASE + 999  # a short undecided record whose only known feature is the XSS term
_SECTION = re.compile(r'<section class="why-score".*?</section>', re.S)


def _row(pmid: int, doc: Document) -> Record:
    return Record(pmid=pmid, title=doc.title, abstract=doc.abstract, journal=doc.journal,
                  mesh=[{"descriptor": m} for m in doc.mesh],
                  publication_types=list(doc.publication_types), content_hash=f"h{pmid}")


def _load(app: Any) -> tuple[list[int], list[int]]:
    """The toy corpus as records; every include also carries the XSS MeSH term, so the
    trained model learns it as a positive feature and shows it on the page."""
    docs, y = toy_corpus()
    includes, excludes = [], []
    with db(app) as session:
        for i, (doc, label) in enumerate(zip(docs, y, strict=True)):
            if label:
                doc = replace(doc, mesh=(*doc.mesh, XSS_TERM))
            session.add(_row(BASE + i, doc))
            (includes if label else excludes).append(BASE + i)
        session.add(_row(PROBE, Document(title="Zzz", mesh=(XSS_TERM,))))
        session.commit()
    return includes, excludes


def _decide_all(app: Any, email: str, includes: list[int], excludes: list[int]) -> None:
    with db(app) as session:
        user = session.exec(select(User).where(User.email == email)).one()
        for pmid in includes:
            record_decision(session, user=user, pmid=pmid, decision="include")
        for pmid in excludes:
            record_decision(session, user=user, pmid=pmid, decision="exclude")
        session.commit()


def _section(page: str) -> str:
    match = _SECTION.search(page)
    assert match, "no Why-this-score section on the page"
    return match.group(0)


def _numbers(section: str, cls: str) -> float:
    match = re.search(rf'class="num {cls}">([^<]+)<', section)
    assert match, cls
    return float(match.group(1))


@pytest.fixture
def trained(app: Any, users: dict[str, str]) -> tuple[list[int], list[int], int]:
    includes, excludes = _load(app)
    _decide_all(app, users["curator"], includes, excludes)
    summary = screen(app.state.ctx)
    assert summary.model_name == "mmlr-default" and summary.trained
    return includes, excludes, summary.model_version_id


def test_record_page_explains_a_trained_models_score(app: Any, users: dict[str, str],
                                                      trained: tuple[list[int], list[int], int]
                                                      ) -> None:
    includes, excludes, version = trained
    viewer = as_role(app, users, "viewer")
    page = viewer.get(f"/records/{includes[0]}")
    assert page.status_code == 200
    section = _section(page.text)
    assert f"Model v{version} (mmlr-default, svm)" in section
    up = section.split('class="why-up"')[1].split("</table>")[0]
    assert "myeloma" in up or "maintenance" in up
    assert "the logistic of the sum" in section and "pushed the record up the queue" in section
    # the figures on the page add up: intercept + listed + rest == decision (3 decimals each)
    contributions = [float(x) for x in re.findall(r'<td class="num">([+-][0-9.]+)</td>', section)]
    rest = _numbers(section, "why-rest") if "why-rest" in section else 0.0
    total = _numbers(section, "why-intercept") + sum(contributions) + rest
    assert total == pytest.approx(_numbers(section, "why-decision"), abs=0.001 * 20)
    exclude = _section(viewer.get(f"/records/{excludes[0]}").text)
    down = exclude.split('class="why-down"')[1].split("</table>")[0]
    assert "case" in down or "skin" in down


def test_pubmed_terms_are_escaped_in_the_explanation(app: Any, users: dict[str, str],
                                                     trained: tuple[list[int], list[int], int]
                                                     ) -> None:
    page = as_role(app, users, "viewer").get(f"/records/{PROBE}")
    assert page.status_code == 200
    section = _section(page.text)
    assert "MeSH: " + html.escape(XSS_TERM, quote=False) in section
    assert XSS_TERM not in section and XSS_TERM not in page.text


def test_two_page_views_load_the_artifact_once(app: Any, users: dict[str, str],
                                               trained: tuple[list[int], list[int], int]) -> None:
    includes, _, version = trained
    cache = app.state.model_cache
    assert cache.loads == 0
    viewer = as_role(app, users, "viewer")
    first = _section(viewer.get(f"/records/{includes[0]}").text)
    second = _section(viewer.get(f"/records/{includes[1]}").text)
    assert f"Model v{version}" in first and f"Model v{version}" in second
    assert cache.loads == 1
    # a new version has a new id: loaded once more, no invalidation needed
    summary = screen(app.state.ctx, force_retrain=True)
    assert summary.model_version_id != version
    third = _section(viewer.get(f"/records/{includes[0]}").text)
    assert f"Model v{summary.model_version_id}" in third and cache.loads == 2


def test_corrupt_artifact_shows_one_line_and_the_page_renders(
        app: Any, users: dict[str, str], trained: tuple[list[int], list[int], int]) -> None:
    includes, _, version = trained
    with db(app) as session:
        mv = session.get(ModelVersion, version)
        assert mv is not None and mv.artifact
        mv.artifact = mv.artifact[:-10] + b"0123456789"  # the payload no longer matches
        session.add(mv)
        session.commit()
    page = as_role(app, users, "viewer").get(f"/records/{includes[0]}")
    assert page.status_code == 200
    section = _section(page.text)
    message = re.search(r'<p class="muted why-unavailable">([^<]*)</p>', section)
    assert message, section
    assert message.group(1) == (f"Model v{version}: model version {version} artifact is corrupt "
                                "(checksum mismatch) (run `mmlr screen --retrain`)")
    assert "Traceback" not in page.text and "Decision history" in page.text
    assert app.state.model_cache.loads == 1  # tried, failed, not cached as a model


def test_keyword_prior_lists_matches_and_failed_gates(app: Any, users: dict[str, str]) -> None:
    _load(app)
    assert screen(app.state.ctx).model_name == PRIOR_NAME
    viewer = as_role(app, users, "viewer")
    section = _section(viewer.get(f"/records/{BASE + 10}").text)  # a skin case report
    assert f"({PRIOR_NAME})" in section and "bias" in section
    assert "“case report”" in section.split('class="why-down"')[1]
    failed = re.search(r'class="why-failed-gates">([^<]*)<', section)
    # the gates of the configured query (PROTOCOL_QUERY), by name
    assert failed and html.unescape(failed.group(1)) == (
        "Multiple Myeloma / myeloma; maintenance / Maintenance Chemotherapy / consolidation; "
        "randomized controlled trial / randomi* / phase III / phase 3")
    assert 'class="why-not-trial">Case Reports<' in section
    assert app.state.model_cache.loads == 0  # the prior has no artifact to load


def test_prior_explains_with_the_query_its_version_stored(app: Any,
                                                          users: dict[str, str]) -> None:
    includes, _ = _load(app)
    first = screen(app.state.ctx)  # the default PROTOCOL_QUERY
    skin_query = 'myeloma[tiab] AND "skin"[tiab]'
    skin = make_context(app.state.ctx.settings.model_copy(update={"query": skin_query}))
    try:
        second = screen(skin)  # a changed query: a new prior version with its own gates
        assert second.trained and second.model_name == PRIOR_NAME
        assert second.model_version_id != first.model_version_id
        assert not screen(skin).trained  # the same query again: nothing to do
    finally:
        skin.dispose()
    viewer = as_role(app, users, "viewer")
    page = _section(viewer.get(f"/records/{includes[0]}").text)
    assert f"Model v{second.model_version_id}" in page
    failed = re.search(r'class="why-failed-gates">([^<]*)<', page)
    assert failed and html.unescape(failed.group(1)) == "skin"
    # a score of the earlier version keeps that version's gates, whatever MMLR_QUERY says now
    with db(app) as session:
        record = session.get(Record, includes[0])
        assert record is not None
        record.score_model_version_id = first.model_version_id
        session.add(record)
        session.commit()
    page = _section(viewer.get(f"/records/{includes[0]}").text)
    assert f"Model v{first.model_version_id}" in page and "why-failed-gates" not in page
    passed = re.search(r'class="why-passed-gates">([^<]*)<', page)
    assert passed and html.unescape(passed.group(1)).startswith(
        "Multiple Myeloma / myeloma; maintenance / Maintenance Chemotherapy / consolidation")


def test_unscored_record_says_so(app: Any, users: dict[str, str]) -> None:
    _load(app)
    section = _section(as_role(app, users, "viewer").get(f"/records/{BASE}").text)
    assert "this record has not been scored yet" in section


def test_explanation_api(app: Any, users: dict[str, str],
                         trained: tuple[list[int], list[int], int]) -> None:
    includes, _, version = trained
    with db(app) as session:
        user = session.exec(select(User).where(User.email == users["viewer"])).one()
        token = issue_api_token(session, user, actor="test", days=90)
        session.commit()
    api = TestClient(app, raise_server_exceptions=False)
    headers = {"Authorization": f"Bearer {token}"}
    assert api.get(f"/api/records/{includes[0]}/explanation").status_code == 401
    body = api.get(f"/api/records/{includes[0]}/explanation?k=3", headers=headers).json()
    assert body["pmid"] == includes[0] and body["model_version_id"] == version
    assert body["kind"] == "linear" and body["available"] and len(body["up"]) == 3
    parts = body["intercept"] + sum(c["contribution"] for c in body["up"] + body["down"])
    assert parts + body["rest"] == pytest.approx(body["decision"], abs=1e-9)
    # recomputed from the same content by the loaded model: the score the queue stored
    assert body["stored_score"] == pytest.approx(body["score"], abs=1e-9)
    missing = api.get(f"/api/records/{BASE + 5000}/explanation", headers=headers)
    assert missing.status_code == 404
    assert missing.json() == {"code": "not_found",
                              "error": f"record PMID {BASE + 5000} is not in the database"}
    bad_k = api.get(f"/api/records/{includes[0]}/explanation?k=0", headers=headers)
    assert bad_k.status_code in (400, 422)


def test_cache_keeps_a_bounded_number_of_versions() -> None:
    config = ScreeningConfig()
    blob = train_toy(config).to_bytes()
    first, second = (ModelVersion(id=i, name=config.name, config=config.to_dict(),
                                  artifact=blob) for i in (1, 2))
    cache = ModelCache(max_models=1)
    a = cache.get(first)
    assert a is not None and cache.get(first) is a and cache.loads == 1
    assert cache.get(second) is not a and cache.loads == 2
    assert cache.get(first) is not a and cache.loads == 3  # evicted, loaded again
    prior = ModelVersion(id=3, name=PRIOR_NAME)
    assert cache.get(prior) is None and cache.loads == 3
