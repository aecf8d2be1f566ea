"""The 1 MiB limit on request bodies (``screening.web.body_limit``): the API's JSON and the
forms, with a length announced and without one (chunked), in-process and over a real socket
to uvicorn. Real app and database (SQLite, or PostgreSQL with MMLR_TEST_DATABASE_URL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import test_browser_web
import test_web
from fastapi.testclient import TestClient
from sqlmodel import func, select
from test_web import as_role, csrf_from, db
from test_web_api import _token

from screening.web.body_limit import MAX_BODY_BYTES
from store.models import Decision

app = test_web.app
users = test_web.users
records = test_web.records
server = test_browser_web.server  # uvicorn on loopback

PMID = 90000002
TOO_LARGE = ("the request is larger than 1 MiB, the most this server accepts: nothing was "
             "saved (send less at once: a form or a JSON body filled in by hand is far smaller "
             "than this)")


@pytest.fixture
def api(app: Any) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def _decisions(app: Any) -> int:
    with db(app) as session:
        return int(session.exec(select(func.count()).select_from(Decision)).one())


def _padded(size: int, decision: str = "include") -> bytes:
    """A decision's JSON padded with spaces to exactly ``size`` bytes (still valid JSON)."""
    body = json.dumps({"pmid": PMID, "decision": decision}).encode()
    return body + b" " * (size - len(body))


def _chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """``body`` as a stream: sent without Content-Length (Transfer-Encoding: chunked)."""
    for start in range(0, len(body), size):
        yield body[start:start + size]


def test_an_api_body_over_the_limit_is_refused_with_the_error_body(
        app: Any, api: TestClient, users: dict[str, str], records: int) -> None:
    headers = {**_token(app, users["curator"]), "content-type": "application/json"}
    at_limit = api.post("/api/decisions", headers=headers, content=_padded(MAX_BODY_BYTES))
    assert at_limit.status_code == 201, at_limit.text  # the limit itself is allowed
    over = api.post("/api/decisions", headers=headers,
                    content=_padded(MAX_BODY_BYTES + 1, "exclude"))
    assert over.status_code == 413
    assert over.json() == {"code": "too_large", "error": TOO_LARGE}
    # streamed in-process without a length: refused once the limit is passed
    streamed = api.post("/api/decisions", headers=headers,
                        content=_chunks(_padded(MAX_BODY_BYTES + 1, "exclude")))
    assert streamed.status_code == 413 and streamed.json()["code"] == "too_large"
    assert _decisions(app) == 1
    # before authentication: an anonymous client cannot make the server read it either
    anonymous = api.post("/api/decisions", content=_padded(2 * MAX_BODY_BYTES))
    assert anonymous.status_code == 413


def test_a_form_over_the_limit_gets_a_page_that_says_so(app: Any, users: dict[str, str],
                                                        records: int) -> None:
    curator = as_role(app, users, "curator")
    token = csrf_from(curator.get(f"/records/{PMID}").text)
    response = curator.post(f"/records/{PMID}/decision", follow_redirects=False, data={
        "decision": "include", "csrf_token": token, "reason": "x" * MAX_BODY_BYTES})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>Too large</h1>" in response.text
    # no route ran, yet the header is the signed-in one, not a logged-out page's
    assert f'{users["curator"]} <span class="role">(curator)</span>' in response.text
    assert 'action="/logout"' in response.text and 'href="/estimates"' in response.text
    assert "the request is larger than 1 MiB, the most this server accepts: nothing was " \
           "saved" in response.text
    assert _decisions(app) == 0
    # a form of ordinary size still works, on the same login
    saved = curator.post(f"/records/{PMID}/decision", follow_redirects=False, data={
        "decision": "include", "csrf_token": token, "reason": "phase 3"})
    assert saved.status_code == 303 and _decisions(app) == 1


def test_a_form_over_the_limit_without_a_login_gets_the_page_without_a_user(
        app: Any) -> None:
    anonymous = TestClient(app, raise_server_exceptions=False)
    response = anonymous.post("/login", content=b"x" * (MAX_BODY_BYTES + 1),
                              headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413 and "<h1>Too large</h1>" in response.text
    assert 'action="/logout"' not in response.text


def test_a_chunked_body_over_a_real_socket_is_cut_off_at_the_limit(
        app: Any, server: str, users: dict[str, str], records: int) -> None:
    """httpx sends a generator without Content-Length (Transfer-Encoding: chunked): the
    server cannot know the size before reading, and must stop at the limit."""
    headers = {**_token(app, users["curator"]), "content-type": "application/json"}
    with httpx.Client(base_url=server, timeout=60) as client:
        over = client.post("/api/decisions", headers=headers,
                           content=_chunks(_padded(4 * MAX_BODY_BYTES)))
        assert over.request.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in over.request.headers
        assert over.status_code == 413
        assert over.json() == {"code": "too_large", "error": TOO_LARGE}
        # announced too large: refused without reading it
        announced = client.post("/api/decisions", headers=headers,
                                content=_padded(MAX_BODY_BYTES + 1))
        assert announced.status_code == 413 and announced.json()["code"] == "too_large"
        assert _decisions(app) == 0
        # a chunked body under the limit is read whole and handled as usual
        small = client.post("/api/decisions", headers=headers,
                            content=_chunks(_padded(200 * 1024), size=10 * 1024))
        assert small.request.headers.get("transfer-encoding") == "chunked"
        assert small.status_code == 201, small.text
    assert _decisions(app) == 1
