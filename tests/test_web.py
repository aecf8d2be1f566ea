"""The curator web app in-process (starlette TestClient over the real app and database).

Helpers at the top are reused by the other test_web*/test_browser* modules.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import lxml.html
import pytest
from conftest import ROOT
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from screening.web.app import create_app
from screening.web.auth import (
    add_user,
    hash_password,
    issue_api_token,
    verify_password,
)
from store.errors import ValidationError
from store.models import (
    AuditLog,
    Decision,
    LoginSession,
    ModelVersion,
    Record,
    Trial,
    TrialReport,
    User,
    utcnow,
)

PASSWORD = "correct horse battery"
XSS_TITLE = "<script>alert(1)</script> maintenance lenalidomide"
XSS_ABSTRACT = '"><img src=x onerror=alert(1)> randomised'
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


# ----------------------------------------------------------------------------- helpers
def db(app: Any) -> Session:
    return app.state.ctx.sessions()  # type: ignore[no-any-return]


def make_user(app: Any, email: str, role: str, password: str = PASSWORD) -> None:
    with db(app) as session:
        add_user(session, email, role=role, password=password)
        session.commit()


def update_user(app: Any, email: str, **fields: Any) -> None:
    """Set stored fields of one user directly (an expiry, a hash of another cost)."""
    with db(app) as session:
        user = session.exec(select(User).where(User.email == email)).one()
        for name, value in fields.items():
            setattr(user, name, value)
        session.add(user)
        session.commit()


def csrf_from(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def login(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    token = csrf_from(client.get("/login").text)
    return client.post("/login", data={"email": email, "password": password,
                                       "csrf_token": token, "next": "/"},
                       follow_redirects=False)


def add_records(app: Any, rows: list[dict[str, Any]]) -> None:
    with db(app) as session:
        for row in rows:
            session.add(Record(**row))
        session.commit()


def add_model(app: Any) -> int:
    with db(app) as session:
        model = ModelVersion(name="test", n_train=10, n_positive=2)
        session.add(model)
        session.commit()
        assert model.id is not None
        return model.id


@pytest.fixture
def app(settings: Any) -> Iterator[Any]:
    application = create_app(settings)
    yield application
    application.state.retrainer.join(timeout=30)
    application.state.pooler.join(timeout=30)
    application.state.ctx.dispose()


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def users(app: Any) -> dict[str, str]:
    emails = {"admin": "admin@example.org", "curator": "curator@example.org",
              "viewer": "viewer@example.org"}
    for role, email in emails.items():
        make_user(app, email, role)
    return emails


def as_role(app: Any, users: dict[str, str], role: str) -> TestClient:
    c = TestClient(app, raise_server_exceptions=False)
    assert login(c, users[role]).status_code == 303
    return c


def api_as(app: Any, users: dict[str, str], role: str) -> TestClient:
    """A client without a session that sends a fresh API token of the ``role`` user."""
    with db(app) as s:
        user = s.exec(select(User).where(User.email == users[role])).one()
        token = issue_api_token(s, user, actor="test", days=90)
        s.commit()
    return TestClient(app, raise_server_exceptions=False,
                      headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def records(app: Any) -> int:
    model_id = add_model(app)
    add_records(app, [
        {"pmid": 90000001, "title": "Low-score case report", "score": 0.05,
         "score_model_version_id": model_id, "journal": "J Low", "year": 2020},
        {"pmid": 90000002, "title": XSS_TITLE, "abstract": XSS_ABSTRACT, "score": 0.97,
         "flagged": True, "score_model_version_id": model_id, "journal": "Blood", "year": 2024,
         "authors": ["Doe J", "Roe R"], "mesh": [{"descriptor": "Multiple Myeloma",
                                                   "major": True, "qualifiers": ["therapy"]}],
         "publication_types": ["Randomized Controlled Trial"], "nct_ids": ["NCT00114101"],
         "doi": "10.1000/xyz\"><b>bad"},
        {"pmid": 90000003, "title": "Middle-score induction trial", "score": 0.41,
         "audit_sample": True, "score_model_version_id": model_id, "journal": "Lancet",
         "year": 2023},
        {"pmid": 90000004, "title": "Unscored new record", "journal": "NEJM", "year": 2025},
        {"pmid": 90000005, "title": "Deleted citation", "score": 0.99, "deleted": True},
    ])
    return model_id


# ----------------------------------------------------------------------------- auth
def test_password_hashing_is_salted_and_verifies() -> None:
    first, second = hash_password("s3cret-pass"), hash_password("s3cret-pass")
    assert first != second and first.startswith("scrypt$")
    assert verify_password("s3cret-pass", first)
    assert not verify_password("s3cret-pasS", first)
    assert not verify_password("s3cret-pass", "not-a-hash")
    assert not verify_password("s3cret-pass", "bcrypt$1$2$3$00$00")


def test_add_user_validates_and_generates(app: Any) -> None:
    with db(app) as session:
        generated = add_user(session, " New.User@Example.ORG ", role="curator")
        session.commit()
        assert generated and len(generated) >= 12
        user = session.exec(select(User).where(User.email == "new.user@example.org")).one()
        assert verify_password(generated, user.password_hash)
        assert add_user(session, "given@example.org", role="viewer",
                        password="long enough, in words") is None
        for email, role, password, fragment in [
            ("not-an-email", "viewer", None, "is not an e-mail address"),
            ("x@example.org", "superuser", None, "unknown role"),
            ("new.user@example.org", "viewer", None, "already exists"),
            ("short@example.org", "viewer", "abc", "too short"),
            ("short@example.org", "viewer", "x" * 14, "too short: 14 characters"),
            # NIST SP 800-63B-4's context-specific words and repetitive or sequential runs
            ("ann.smith@example.org", "viewer", "I am Ann.Smith, really",
             "contains 'ann.smith', the name part of the account's e-mail address"),
            # the name part alone was called "the e-mail address"
            ("mark@example.org", "viewer", "my bookmarks are all gone now",
             "contains 'mark', the name part of the account's e-mail address"),
            ("al@example.org", "viewer", "AL@example.org forever",
             "contains the account's e-mail address"),
            ("rep@example.org", "viewer", "z" * 20, "one character repeated"),
            ("run@example.org", "viewer", "abcdefghijklmnopq", "consecutive characters"),
            ("run@example.org", "viewer", "9876543210/.-,+*", "consecutive characters"),
            ("<script>@example.org", "viewer", None, "is not an e-mail address"),
        ]:
            with pytest.raises(ValidationError, match=fragment):
                add_user(session, email, role=role, password=password)
            session.rollback()
        # a short name part ("al") occurs in ordinary words: only the whole address counts
        assert add_user(session, "al@example.org", role="viewer",
                        password="totally normal words") is None


def test_pages_need_login(client: TestClient, records: int) -> None:
    for path in ["/", "/records/90000002", "/trials", "/trials/new", "/estimates",
                 "/digests", "/admin/users"]:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=")
    for path in ["/api/records", "/api/estimates", "/api/trials"]:
        response = client.get(path)
        assert response.status_code == 401
        assert response.json() == {"code": "unauthenticated",
                                   "error": "authentication required (send Authorization: "
                                             "Bearer <token>; create one at /account)"}


def test_login_logout_and_next(client: TestClient, users: dict[str, str]) -> None:
    bad = login(client, users["curator"], "wrong password!")
    assert bad.status_code == 401 and "wrong e-mail or password" in bad.text
    token = csrf_from(client.get("/login").text)
    ok = client.post("/login", data={"email": users["curator"].upper(), "password": PASSWORD,
                                     "csrf_token": token, "next": "/trials"},
                     follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/trials"
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    assert client.get("/").status_code == 200
    # the pre-login CSRF token is worthless after login (rotated)
    stale = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert stale.status_code == 403
    fresh = csrf_from(client.get("/").text)
    out = client.post("/logout", data={"csrf_token": fresh}, follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303


def test_logout_ends_the_session_on_the_server(app: Any, users: dict[str, str]) -> None:
    """A copy of the cookie taken before logging out (a shared computer, a stolen cookie)
    no longer works: the login ended on the server, not only in this browser."""
    browser = TestClient(app)
    login(browser, users["curator"])
    stolen = dict(browser.cookies)
    copy = TestClient(app, cookies=stolen)
    assert copy.get("/account", follow_redirects=False).status_code == 200
    out = browser.post("/logout", data={"csrf_token": csrf_from(browser.get("/").text)},
                       follow_redirects=False)
    assert out.status_code == 303
    assert copy.get("/account", follow_redirects=False).status_code == 303  # to /login
    assert TestClient(app, cookies=stolen).get("/api/fulltext").status_code == 401
    with db(app) as session:
        (row,) = session.exec(select(LoginSession)).all()
        assert row.ended_at is not None
    # logging in again opens a new login; other people's logins are untouched
    other = TestClient(app)
    login(other, users["viewer"])
    login(browser, users["curator"])
    assert browser.get("/account").status_code == 200 and other.get("/").status_code == 200
    with db(app) as session:
        assert len([r for r in session.exec(select(LoginSession)) if r.ended_at is None]) == 2


def test_a_login_older_than_a_working_day_has_ended(app: Any, users: dict[str, str]) -> None:
    browser = TestClient(app)
    login(browser, users["curator"])
    assert browser.get("/account", follow_redirects=False).status_code == 200
    with db(app) as session:
        row = session.exec(select(LoginSession)).one()
        row.created_at = utcnow() - timedelta(hours=13)
        session.add(row)
        session.commit()
    assert browser.get("/account", follow_redirects=False).status_code == 303


def test_login_next_cannot_leave_the_site(client: TestClient, users: dict[str, str]) -> None:
    for target in ["//evil.example/", "https://evil.example/", "/\\evil.example"]:
        token = csrf_from(client.get("/login").text)
        response = client.post("/login", data={"email": users["viewer"], "password": PASSWORD,
                                               "csrf_token": token, "next": target},
                               follow_redirects=False)
        assert response.headers["location"] == "/", target
        client.cookies.clear()


def test_login_throttle_after_repeated_failures(client: TestClient, app: Any,
                                                users: dict[str, str]) -> None:
    for _ in range(5):
        assert login(client, users["curator"], "wrong password!").status_code == 401
    blocked = login(client, users["curator"])  # even the right password is refused now
    assert blocked.status_code == 429
    assert "too many failed logins for curator@example.org" in blocked.text
    assert login(client, users["viewer"]).status_code == 303  # other accounts unaffected
    with db(app) as session:
        failures = session.exec(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "auth.login_failed")).one()
    assert failures == 5


def test_deactivated_user_loses_access_at_once(app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    assert curator.get("/").status_code == 200
    update_user(app, users["curator"], active=False)
    assert curator.get("/", follow_redirects=False).status_code == 303
    assert login(TestClient(app), users["curator"]).status_code == 401


# ----------------------------------------------------------------------------- CSRF
def _unsafe_routes(app: Any) -> list[tuple[str, str]]:
    found = []
    for included in app.routes:
        router = getattr(included, "original_router", None)
        for route in getattr(router, "routes", []):
            for method in sorted(getattr(route, "methods", None) or []):
                if method in {"POST", "PUT", "PATCH", "DELETE"}:
                    found.append((method, route.path))
    return found


def test_every_form_route_refuses_a_missing_or_wrong_csrf_token(app: Any, users: dict[str, str],
                                                                records: int) -> None:
    admin = as_role(app, users, "admin")
    routes = _unsafe_routes(app)
    # The one form route without a CSRF token: the unsubscribe link's token is its only
    # authority (RFC 8058 one-click; screening/web/routes_unsubscribe.py, tests/test_subscribers.py)
    exempt = {("POST", "/unsubscribe")}
    assert exempt <= set(routes)
    page_routes = [(m, p) for m, p in routes if not p.startswith("/api/") and (m, p) not in exempt]
    assert len(page_routes) >= 10, page_routes  # the enumeration really found the forms
    params = {"pmid": "90000002", "trial_id": "1", "estimate_id": "1", "user_id": "1",
              "subscriber_id": "1", "report_id": "1"}
    for method, path in page_routes:
        url = re.sub(r"\{(\w+)\}", lambda m: params[m.group(1)], path)
        for data in ({"decision": "include"}, {"decision": "include", "csrf_token": "x" * 43}):
            response = admin.request(method, url, data=data, follow_redirects=False)
            assert response.status_code == 403, (method, url, data)
            assert "security token is missing or does not match" in response.text
    with db(app) as session:
        assert session.exec(select(func.count()).select_from(Decision)).one() == 0
    # the JSON API's writes are not cookie-authenticated, so CSRF cannot reach them
    api = [p for _, p in routes if p.startswith("/api/")]
    assert set(api) == {"/api/decisions", "/api/estimates",
                        "/api/estimates/{estimate_id}/withdraw",
                        "/api/estimates/{estimate_id}/correct",
                        "/api/estimates/{estimate_id}/verify", "/api/trials/{trial_id}",
                        "/api/records/{pmid}/resolution", "/api/trials/{trial_id}/risk-of-bias",
                        "/api/estimates/baseline", "/api/records/{pmid}/fulltext",
                        "/api/records/{pmid}/fulltext/resolve"}
    assert admin.post("/api/decisions", json={"pmid": 90000002,
                                              "decision": "include"}).status_code == 401


def app_routes(application: Any) -> Iterator[Any]:
    """Every route of the app, through the routers it includes (FastAPI wraps each
    ``include_router`` in an object of its own that has no path)."""
    def walk(found: list[Any]) -> Iterator[Any]:
        for route in found:
            if hasattr(route, "methods") and hasattr(route, "path"):
                yield route
            elif getattr(route, "original_router", None) is not None:
                yield from walk(route.original_router.routes)
    yield from walk(application.routes)


def _routes_with_ids(app: Any) -> list[tuple[str, str]]:
    return [(m, route.path) for route in app_routes(app)
            if re.search(r"\{(pmid|\w+_id)\}", route.path)
            for m in sorted(route.methods or []) if m != "HEAD"]


@pytest.mark.parametrize("huge", ["9223372036854775808", "99999999999999999999999",
                                  "2147483648"])
def test_ids_no_row_can_have_are_404_everywhere(app: Any, users: dict[str, str],
                                                records: int, huge: str) -> None:
    """Every route with an id in its path, by every method, as an admin with a valid CSRF
    token and as an API token holder: an id beyond any column (SQLite overflows past 2^63,
    PostgreSQL's integer past 2^31) is a 404 naming it, never a 500."""
    routes = _routes_with_ids(app)
    assert len(routes) >= 30, routes  # the enumeration found the routes
    admin = as_role(app, users, "admin")
    token = csrf_from(admin.get("/").text)
    api = api_as(app, users, "admin")
    for method, path in routes:
        url = re.sub(r"\{(\w+)\}", lambda m: huge, path)
        client = api if path.startswith("/api/") else admin
        kwargs: dict[str, Any] = ({"json": {}} if path.startswith("/api/") else
                                  {"data": {"csrf_token": token}}) if method != "GET" else {}
        response = client.request(method, url, follow_redirects=False, **kwargs)
        assert response.status_code == 404, (method, url, response.status_code)
        assert f"{huge} is not in the database" in response.text, (method, url)


def test_digits_that_are_not_ascii_are_no_id_anywhere(app: Any, users: dict[str, str],
                                                      records: int) -> None:
    """"²" passes str.isdigit() but not int(): a path id, a PMID and a rank written with it
    are refused as what they are, never a 500."""
    admin = as_role(app, users, "admin")
    for path in ("/records/%C2%B2", "/trials/%C2%B2", "/digests/%C2%B2"):
        assert admin.get(path).status_code in (400, 404, 422), path
    api = api_as(app, users, "curator")
    pmid = api.post("/api/decisions", json={"pmid": "\u00b2", "decision": "include"})
    assert pmid.status_code == 400 and "is not a PMID" in pmid.json()["error"]
    rank = api.post("/api/decisions", json={"pmid": 90000002, "decision": "include",
                                            "rank_shown": "1\u00b2"})
    assert rank.status_code == 400 and "rank_shown" in rank.json()["error"]


def test_numbers_in_forms_and_bodies_beyond_any_column_are_refused(
        app: Any, users: dict[str, str], records: int) -> None:
    huge = 9223372036854775808
    api = api_as(app, users, "curator")
    assert api.get(f"/api/records?offset={huge}").status_code in (400, 422)
    assert api.get(f"/api/searches?offset={huge}").status_code in (400, 422)
    rank = api.post("/api/decisions", json={"pmid": 90000002, "decision": "include",
                                            "rank_shown": str(huge)})
    assert rank.status_code == 400 and "rank_shown" in rank.json()["error"]
    pmid = api.post("/api/decisions", json={"pmid": huge, "decision": "include"})
    assert pmid.status_code == 400 and "is not a PMID" in pmid.json()["error"]
    trial = api.post("/api/estimates", json={"trial_id": huge, "endpoint": "PFS"})
    assert trial.status_code == 400 and "trial_id" in trial.json()["error"]  # as pmid above
    with db(app) as session:
        t = Trial(name="Myeloma XI", drug="lenalidomide", setting="post_asct")
        session.add(t)
        session.commit()
        trial_id = t.id
    counts = api.post("/api/estimates", json={
        "trial_id": trial_id, "endpoint": "PFS", "hr": 0.5, "ci_low": 0.4, "ci_high": 0.6,
        "n_maintenance": huge, "n_control": 1e30})
    assert counts.status_code == 400, counts.text
    assert "must be at most 2147483647" in counts.text
    nested = api.post("/api/estimates", content=b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}",
                      headers={"Content-Type": "application/json"})
    assert nested.status_code == 400 and "nested too deeply" in nested.json()["error"]
    with db(app) as session:
        assert session.exec(select(func.count()).select_from(Decision)).one() == 0


def test_a_nul_character_anywhere_in_a_request_is_refused_and_saves_nothing(
        app: Any, users: dict[str, str], records: int) -> None:
    # PostgreSQL cannot store NUL in text (the search was a 500 there) and SQLite's LIKE
    # stopped at it (the search matched every trial): one check before every route.
    curator = as_role(app, users, "curator")
    page = curator.get("/records/90000002").text
    said = "contains a NUL character (U+0000), which cannot be stored as text: nothing was saved"
    search = curator.get("/search", params={"q": "\x00"})
    assert search.status_code == 400 and f"the query parameter &#39;q&#39; {said}" in search.text
    assert curator.get("/search", params={"q": "lenalidomide"}).status_code == 200
    decision = curator.post("/records/90000002/decision", follow_redirects=False, data={
        "decision": "exclude", "reason": "not a trial\x00", "note": "a careful <note>",
        "csrf_token": csrf_from(page)})
    assert decision.status_code == 400 and "the form field &#39;reason&#39;" in decision.text
    # what was typed is given back, without the refused character, the token or a password
    sent = lxml.html.fromstring(decision.text).xpath("//section[@class='sent-form']")[0]
    assert "without the characters refused above" in sent.text_content()
    assert [(dt.text_content(), dd.text_content()) for dt, dd in zip(
        sent.xpath(".//dt"), sent.xpath(".//dd"), strict=True)] == [
        ("decision", "exclude"), ("reason", "not a trial"), ("note", "a careful <note>")]
    assert 'href="/static/style.css"' in decision.text and users["curator"] in decision.text
    api = api_as(app, users, "curator")
    listed = api.get("/api/records", params={"q": "a\x00b"})
    assert listed.status_code == 400 and listed.json()["code"] == "invalid"
    assert listed.json()["error"].startswith(f"the query parameter 'q' {said}")
    body = api.post("/api/decisions", json={"pmid": 90000002, "decision": "exclude",
                                            "reason": "off topic\u0000"})
    assert body.status_code == 400
    assert body.json()["error"].startswith(f"the JSON field 'reason' {said}")
    nested = api.post("/api/estimates", json={"trial_id": 1, "km": [{"arm": "x\u0000"}]})
    assert nested.json()["error"].startswith("the JSON field 'km[0].arm'")
    assert api.get("/api/records/9000000%00").status_code == 400
    with db(app) as session:
        assert session.exec(select(func.count()).select_from(Decision)).one() == 0
    # Anything else still reaches its route, which says what is wrong with it.
    assert api.post("/api/decisions", content=b"{not json",
                    headers={"Content-Type": "application/json"}).status_code == 400
    assert api.post("/api/decisions", json={"pmid": 90000002, "decision": "exclude",
                                            "reason": "off topic"}).status_code in (200, 201)


def test_half_a_surrogate_pair_in_a_json_string_is_refused(app: Any, users: dict[str, str],
                                                           records: int) -> None:
    # "\\ud83d" alone is valid JSON (half an emoji, from a client cutting by UTF-16 length)
    # but no text: it was a UnicodeEncodeError at the database, a 500.
    api = api_as(app, users, "curator")
    for body in ('{"pmid": 90000002, "decision": "exclude", "reason": "pasted \\ud83d text"}',
                 '{"pmid": 90000002, "decision": "exclude", "reason": "x\\udc00"}'):
        answer = api.post("/api/decisions", content=body.encode(),
                          headers={"Content-Type": "application/json"})
        assert answer.status_code == 400 and answer.json()["code"] == "invalid", answer.text
        assert answer.json()["error"].startswith(
            "the JSON field 'reason' contains half of a UTF-16 surrogate pair (U+D")
    with db(app) as session:
        assert session.exec(select(func.count()).select_from(Decision)).one() == 0
    whole = '{"pmid": 90000002, "decision": "exclude", "reason": "pasted \\ud83d\\ude00"}'
    assert api.post("/api/decisions", content=whole.encode(),
                    headers={"Content-Type": "application/json"}).status_code in (200, 201)


def test_a_bidirectional_override_in_a_request_is_refused(app: Any,
                                                         users: dict[str, str]) -> None:
    # A trial named "GBRAM \u202e0001" showed the digest's "HR 0.41 (0.19–0.91)" after it as
    # "(19.0–91.0) 14.0 RH": refused wherever it comes, as NUL is.
    curator = as_role(app, users, "curator")
    form = curator.get("/trials/new").text
    fields = {"drug": "thalidomide", "setting": "post_asct", "csrf_token": csrf_from(form)}
    page = curator.post("/trials/new", follow_redirects=False,
                        data={"name": "GBRAM \u202d0001", **fields})
    assert page.status_code == 400 and "the form field &#39;name&#39; contains a bidirectional "\
        "control (U+202D)" in page.text
    assert curator.post("/trials/new", follow_redirects=False,
                        data={"name": "GBRAM 0001", **fields}).status_code == 303
    with db(app) as session:
        trial = session.exec(select(Trial).where(Trial.name == "GBRAM 0001")).one()
    api = api_as(app, users, "curator")
    renamed = api.patch(f"/api/trials/{trial.id}", json={"name": "GBRAM \u202e0001"})
    assert renamed.status_code == 400
    assert renamed.json()["error"] == (
        "the JSON field 'name' contains a bidirectional control (U+202E), which shows the text "
        "after it reordered, numbers reversed: nothing was saved (remove it and send again; "
        "text in a right-to-left script needs no such control)")
    # right-to-left letters, and the isolates that cannot reorder what follows, are stored
    hebrew = "\u05de\u05d7\u05e7\u05e8 \u2067GBRAM\u2069 0001"
    assert api.patch(f"/api/trials/{trial.id}", json={"name": hebrew}).status_code == 200
    with db(app) as session:
        assert [t.name for t in session.exec(select(Trial).where(Trial.id == trial.id))] == [
            hebrew]
    # an isolate left open is stored as sent, and closed where it is shown, so that it
    # reorders nothing after it on the page
    assert api.patch(f"/api/trials/{trial.id}", json={"name": "\u2067GBRAM 0001"}).status_code \
        == 200
    assert "\u2067GBRAM 0001\u2069" in curator.get(f"/trials/{trial.id}").text
    assert api.get(f"/api/trials/{trial.id}").json()["name"] == "\u2067GBRAM 0001"


def test_the_openapi_schema_needs_a_login(app: Any, client: TestClient,
                                          users: dict[str, str]) -> None:
    assert client.get("/api/openapi.json").status_code == 401
    schema = api_as(app, users, "viewer").get("/api/openapi.json")
    assert schema.status_code == 200 and "/api/records" in schema.json()["paths"]


# ----------------------------------------------------------------------------- queue + records
def test_queue_is_ordered_by_score_and_marks_records(app: Any, users: dict[str, str],
                                                     records: int) -> None:
    page = as_role(app, users, "viewer").get("/")
    assert page.status_code == 200
    order = [int(p) for p in re.findall(r'data-pmid="(\d+)"', page.text)]
    # highest score first, unscored last, the deleted record left out; the audit-sample
    # record (90000003) is placed by the learner's interleaving, wherever that puts it
    assert [p for p in order if p != 90000003] == [90000002, 90000001, 90000004]
    assert sorted(order) == [90000001, 90000002, 90000003, 90000004]
    row = page.text.split('data-pmid="90000002"')[1].split("</tr>")[0]
    assert "0.970" in row and "flagged" in row
    assert "audit" in page.text.split('data-pmid="90000003"')[1].split("</tr>")[0]
    assert "audit" not in page.text.split('data-pmid="90000001"')[1].split("</tr>")[0]
    # what the marks mean, in words on the page (a tooltip reaches neither keyboard nor touch)
    doc = lxml.html.fromstring(page.text)
    [legend] = doc.xpath('//dl[contains(@class, "marks-legend")]')
    meanings = {dt.text_content().strip(): " ".join(dd.text_content().split())
                for dt, dd in zip(legend.xpath("dt"), legend.xpath("dd"), strict=True)}
    assert list(meanings) == ["flagged", "audit"]  # only the marks this page shows
    assert meanings["flagged"].startswith("scored above the flag threshold")
    for offset in range(4):  # the pages from each record on: their rows' marks, only those
        one = lxml.html.fromstring(as_role(app, users, "viewer").get(f"/?offset={offset}").text)
        shown = [b.text_content() for b in one.xpath('//table[@class="queue"]//span[contains('
                                                      '@class, "badge")]')]
        explained = [dt.text_content().strip()
                     for dt in one.xpath('//dl[contains(@class, "marks-legend")]/dt')]
        assert sorted(explained) == sorted(set(shown)), offset


def test_malicious_pubmed_text_is_escaped(app: Any, users: dict[str, str],
                                          records: int) -> None:
    viewer = as_role(app, users, "viewer")
    for path in ["/", "/records/90000002", "/?show=all"]:
        html = viewer.get(path).text
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<img src=x" not in html and "<b>bad" not in html
    record = viewer.get("/records/90000002").text
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in record
    assert 'href="https://doi.org/10.1000/xyz%22%3E%3Cb%3Ebad"' in record


def test_record_page_shows_details_and_viewer_has_no_form(app: Any, users: dict[str, str],
                                                         records: int) -> None:
    html = as_role(app, users, "viewer").get("/records/90000002").text
    for fragment in ["Blood", "Doe J, Roe R", "Multiple Myeloma*/therapy",
                     "Randomized Controlled Trial", "NCT00114101", "No decisions yet."]:
        assert fragment in html
    assert "decision-form" not in html
    forbidden = as_role(app, users, "viewer")
    token = csrf_from(forbidden.get("/").text)
    response = forbidden.post("/records/90000002/decision",
                              data={"decision": "include", "csrf_token": token})
    assert response.status_code == 403
    assert "viewer@example.org is a viewer; this needs the curator role" in response.text
    assert "decision-form" in as_role(app, users, "curator").get("/records/90000002").text


def test_record_page_puts_the_record_before_the_decision(app: Any, users: dict[str, str],
                                                          records: int) -> None:
    """A curator reads before deciding: title, journal, abstract, publication types and MeSH
    come before the decision form in the page; the score's explanation after it."""
    html = as_role(app, users, "curator").get("/records/90000002").text
    order = [html.index(fragment) for fragment in [
        "<h1>", "Blood", 'class="abstract"', "Randomized Controlled Trial",
        "Multiple Myeloma*/therapy", 'class="decision-form', 'class="why-score"']]
    assert order == sorted(order)


def test_record_page_links_past_the_record_to_the_decision_and_names_the_access_keys(
        app: Any, users: dict[str, str], records: int) -> None:
    """After each "…, next" the page opens at the top: its first link leads the keyboard to
    the decision (it was 18 Tab presses away), and the one-click buttons' keys are named as
    what they are, access keys, with the modifiers that press them."""
    import lxml.html

    page = lxml.html.fromstring(as_role(app, users, "curator").get("/records/90000002").text)
    (content,) = page.xpath("//main")
    first = content.xpath(".//a")[:2]
    assert [a.text_content() for a in first] == ["← Queue", "Skip to the decision"]
    (fieldset,) = page.xpath(f'//fieldset[@id="{first[1].get("href")[1:]}"]')
    assert fieldset.xpath(".//input/@name") == ["decision"] * 3
    assert fieldset.getparent().get("class").startswith("decision-form")
    label = " ".join(page.xpath('string(//*[@id="quick-decision-label"])').split())
    assert label == "Save and open the next (access keys: Alt+Shift+I, E, M; on a Mac Ctrl+Option):"
    viewer = as_role(app, users, "viewer").get("/records/90000002").text
    assert "Skip to the decision" not in viewer  # nothing to skip to


def test_record_page_cites_journal_year_volume_issue_and_pages(
        app: Any, users: dict[str, str]) -> None:
    """The citation line reads as PubMed's ("Journal. Year;Vol(Issue):pages."), pages as
    printed, parts PubMed lacks left out, and every PubMed-supplied part escaped."""
    add_records(app, [
        {"pmid": 90000031, "title": "Printed", "journal": "Journal of clinical oncology",
         "journal_abbrev": "J Clin Oncol", "year": 2013, "volume": "31", "issue": "10",
         "pages": "1207-13", "elocation": None},
        {"pmid": 90000032, "title": "Numbered", "journal_abbrev": "Europace", "year": 2024,
         "volume": "26", "issue": "6", "elocation": "euae122"},
        {"pmid": 90000033, "title": "Online first", "journal": "Virus Res", "year": 2015,
         "elocation": "S0168-1702(15)30029-0"},
        {"pmid": 90000034, "title": "Hostile", "journal_abbrev": "J <b>Bold</b>",
         "year": 2020, "volume": '1"><script>x</script>', "pages": "5-9"},
        {"pmid": 90000035, "title": "No journal", "year": 2021},
    ])
    viewer = as_role(app, users, "viewer")

    def cited(pmid: int) -> tuple[str, str | None]:
        doc = lxml.html.fromstring(viewer.get(f"/records/{pmid}").text)
        found = doc.xpath("//cite[@class='citation']")
        if not found:
            return doc.xpath("//p[@class='meta']")[0].text_content(), None
        return found[0].text_content(), found[0].get("title")

    assert cited(90000031) == ("J Clin Oncol. 2013;31(10):1207-13.",
                               "Journal of clinical oncology")
    assert cited(90000032) == ("Europace. 2024;26(6):euae122.", None)
    assert cited(90000033) == ("Virus Res. 2015.", None)
    html = viewer.get("/records/90000034").text
    assert "<script>x" not in html and "<b>Bold" not in html
    assert cited(90000034)[0] == 'J <b>Bold</b>. 2020;1"><script>x</script>:5-9.'
    text, _ = cited(90000035)
    assert "no journal · 2021" in " ".join(text.split())


def test_mesh_qualifiers_from_the_parser_read_as_pubmed_writes_them(
        app: Any, users: dict[str, str]) -> None:
    add_records(app, [{"pmid": 90000021, "title": "Parsed record", "mesh": [
        {"descriptor": "Multiple Myeloma", "major": False,
         "qualifiers": [{"name": "drug therapy", "major": True},
                        {"name": "mortality", "major": False}]},
        {"descriptor": "Lenalidomide", "major": True, "qualifiers": []}]}])
    html = as_role(app, users, "viewer").get("/records/90000021").text
    assert "Multiple Myeloma/drug therapy*/mortality; Lenalidomide*" in html
    assert "{" not in html.split("<dt>MeSH</dt>")[1].split("</dd>")[0]


def test_decision_is_stored_with_provenance(app: Any, users: dict[str, str],
                                            records: int) -> None:
    curator = as_role(app, users, "curator")
    page = curator.get("/records/90000003?rank=2").text
    response = curator.post("/records/90000003/decision", follow_redirects=False, data={
        "decision": "include", "reason": "RCT of lenalidomide maintenance",
        "rank_shown": "2", "csrf_token": csrf_from(page)})
    assert response.status_code == 303
    with db(app) as session:
        decision = session.exec(select(Decision)).one()
        assert (decision.pmid, decision.decision, decision.model_version_id) == (
            90000003, "include", records)
        assert decision.score_shown == pytest.approx(0.41)
        assert decision.rank_shown == 2 and decision.audit_sample is True
        assert decision.reason == "RCT of lenalidomide maintenance"
        assert session.get(Record, 90000003).decision == "include"  # type: ignore[union-attr]
        audit_row = session.exec(select(AuditLog).where(AuditLog.action == "decision.add")).one()
        assert audit_row.actor == users["curator"] and audit_row.object_id == "90000003"
    html = curator.get("/records/90000003").text
    assert "Decision saved: include" in html
    history = html.split("<h2>Decision history</h2>")[1]
    assert "curator@example.org" in history and f"v{records}" in history and "0.410" in history
    # a second decision is appended, never overwriting the first
    curator.post("/records/90000003/decision", data={"decision": "exclude",
                                                     "csrf_token": csrf_from(html)})
    with db(app) as session:
        assert [d.decision for d in session.exec(select(Decision).order_by(col(Decision.id)))] \
            == ["include", "exclude"]
    # the decided record left the undecided queue
    assert 'data-pmid="90000003"' not in curator.get("/").text


def test_save_and_next_says_what_was_saved_with_a_way_back(
        app: Any, users: dict[str, str], records: int) -> None:
    curator = as_role(app, users, "curator")
    token = csrf_from(curator.get("/records/90000002?rank=1").text)
    response = curator.post("/records/90000002/decision", follow_redirects=False, data={
        "decision": "exclude", "then": "next", "csrf_token": token})
    page = lxml.html.fromstring(curator.get(response.headers["location"]).text)
    [said] = page.xpath('//p[contains(@class, "flash-ok")]')
    assert said.text_content() == "Decision saved: exclude (PMID 90000002). Open it again"
    assert said.xpath("a/@href") == ["/records/90000002"]
    # a plain save stays on the record: no link to where you already are
    token = csrf_from(curator.get("/records/90000001").text)
    curator.post("/records/90000001/decision", data={"decision": "include",
                                                     "csrf_token": token})
    again = lxml.html.fromstring(curator.get("/records/90000001").text)
    assert not again.xpath('//p[contains(@class, "flash")]/a')


def test_the_first_session_names_the_buttons_the_record_page_has(
        app: Any, users: dict[str, str], records: int) -> None:
    """docs/curation.md walks a new curator through the record page button by button: a
    button renamed or removed there (the older "Save and open the next in your queue") left
    them looking for one that is not on the page."""
    steps = (ROOT / "docs" / "curation.md").read_text().split("## A first session")[1]
    screen = steps.split("2. **Screen**")[1].split("\n3. ")[0]
    named = {" ".join(n.split()) for n in re.findall(r"\*([^*]+)\*", screen)}
    page = lxml.html.fromstring(as_role(app, users, "curator").get("/records/90000002").text)
    # what a reader can press: the buttons, and the links (the menu's *Queue*)
    shown = {" ".join(b.text_content().split()) for b in page.xpath("//button | //a")}
    meant = named - {"include", "exclude", "maybe", "Save vote"}  # choices; a dual-only label
    assert "Save decision" in meant and "Exclude, next" in meant
    assert meant <= shown, f"the walkthrough names {sorted(meant - shown)}: not on the page"


def test_save_and_next_opens_the_top_of_the_queue_until_it_is_empty(
        app: Any, users: dict[str, str], records: int) -> None:
    curator = as_role(app, users, "curator")
    page = curator.get("/records/90000002?rank=1").text
    assert 'name="quick" value="exclude"' in page  # the one-click "Exclude, next"
    token = csrf_from(page)
    seen: list[int] = []
    pmid = 90000002
    while True:
        # What the queue page shows first is where the button must lead; the form's own
        # then=next (the older "Save and open the next") leads there too.
        data = {"quick": "exclude"} if len(seen) % 2 == 0 else {"decision": "exclude",
                                                                 "then": "next"}
        response = curator.post(f"/records/{pmid}/decision", follow_redirects=False,
                                data={**data, "csrf_token": token})
        assert response.status_code == 303
        seen.append(pmid)
        queue_page = curator.get("/").text
        top = [int(p) for p in re.findall(r'data-pmid="(\d+)"', queue_page)]
        if not top:
            assert response.headers["location"] == "/"
            assert "Your queue is empty" in queue_page  # the flash, shown once
            break
        assert response.headers["location"] == f"/records/{top[0]}?rank=1"
        pmid = top[0]
    # every live record once, the decided ones never again, the deleted one never
    assert sorted(seen) == [90000001, 90000002, 90000003, 90000004]
    # by score, unscored last; the audit-sample record wherever the interleaving puts it
    assert [p for p in seen if p != 90000003] == [90000002, 90000001, 90000004]
    with db(app) as session:
        assert session.exec(select(func.count()).select_from(Decision)).one() == 4
    # "then" takes only "next": anything else is refused and stores nothing
    bad = curator.post("/records/90000002/decision", data={
        "decision": "include", "then": "https://evil.example", "csrf_token": token})
    assert bad.status_code in (400, 422)
    with db(app) as session:
        assert session.exec(select(func.count()).select_from(Decision)).one() == 4


def test_bad_decisions_are_refused_and_change_nothing(app: Any, users: dict[str, str],
                                                      records: int) -> None:
    curator = as_role(app, users, "curator")
    token = csrf_from(curator.get("/").text)
    bad_value = curator.post("/records/90000002/decision",
                             data={"decision": "delete", "csrf_token": token})
    assert bad_value.status_code == 400
    assert "decision &#39;delete&#39; is not valid" in bad_value.text
    missing = curator.post("/records/90000002/decision", data={"csrf_token": token})
    assert missing.status_code == 400 and "no decision was chosen" in missing.text
    # a one-click button's value is checked as a decision is
    bad_quick = curator.post("/records/90000002/decision",
                             data={"quick": "delete", "decision": "include", "csrf_token": token})
    assert bad_quick.status_code == 400
    assert "decision &#39;delete&#39; is not valid" in bad_quick.text
    unknown = curator.post("/records/12345/decision",
                           data={"decision": "include", "csrf_token": token})
    assert unknown.status_code == 404 and "record PMID 12345 is not in the database" in unknown.text
    bad_rank = curator.post("/records/90000002/decision",
                            data={"decision": "include", "rank_shown": "-3", "csrf_token": token})
    assert bad_rank.status_code == 400
    assert curator.get("/records/424242").status_code == 404
    with db(app) as session:
        assert session.exec(select(func.count()).select_from(Decision)).one() == 0
        assert session.get(Record, 90000002).decision is None  # type: ignore[union-attr]


# ----------------------------------------------------------------------------- errors + headers
def test_security_headers_and_error_pages(client: TestClient) -> None:
    page = client.get("/login")
    csp = page.headers["content-security-policy"]
    assert "script-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "same-origin"  # the log-in-again link uses it
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "<script" not in page.text  # no inline (or any) scripts
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and "no such page" in missing.text
    assert missing.headers["x-frame-options"] == "DENY"
    api_missing = client.get("/api/nothing")
    assert api_missing.status_code == 404 and api_missing.json() == {"code": "not_found",
                                                                     "error": "no such page"}


def test_unexpected_errors_are_generic_and_logged(app: Any, client: TestClient,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    # A route that fails the way a bug would, to exercise the catch-all for real.
    def boom() -> None:
        raise RuntimeError("password=hunter2 in SELECT * FROM secrets")

    app.add_api_route("/api/boom", boom)
    app.add_api_route("/boom", boom)
    with caplog.at_level("ERROR"):
        api = client.get("/api/boom")
        page = client.get("/boom")
    assert api.status_code == 500
    assert api.json() == {"code": "internal",
                          "error": "internal error; the details are in the server log"}
    assert page.status_code == 500 and "internal error" in page.text
    for response in (api, page):
        assert "hunter2" not in response.text and "Traceback" not in response.text
        assert response.headers["x-frame-options"] == "DENY"
    assert "hunter2" in caplog.text  # the traceback is in the log only


def test_secure_cookie_when_base_url_is_https(settings: Any) -> None:
    app = create_app(settings.model_copy(update={"base_url": "https://mmlr.example.org"}))
    try:
        with TestClient(app, base_url="https://testserver") as c:
            response = c.get("/login")
            assert "secure" in response.headers["set-cookie"].lower()
            assert "strict-transport-security" in response.headers
    finally:
        app.state.ctx.dispose()


def test_created_at_renders_in_utc(app: Any, users: dict[str, str]) -> None:
    add_records(app, [{"pmid": 1, "title": "t", "first_seen_at": datetime(2024, 3, 1, 12, 30,
                                                                           tzinfo=UTC)}])
    html = as_role(app, users, "viewer").get("/records/1").text
    assert "2024-03-01 12:30 UTC" in html


# ----------------------------------------------------------------------------- previous reports
def test_the_queue_holds_out_the_previous_versions_reports(app: Any,
                                                           users: dict[str, str]) -> None:
    """The seed evidence's reports stored as records score highest, yet neither the queue, its
    counts nor the one-click "Include, next" show them; the page says how many are held out
    and why. A curator's report of a new trial is screened like any record."""
    from previous_reports import NEW_REPORT, ORDINARY, store_previous_reports

    with db(app) as session:
        pool = store_previous_reports(session)
    curator = as_role(app, users, "curator")
    for path in ["/", "/?show=all"]:
        page = curator.get(path).text
        order = [int(p) for p in re.findall(r'data-pmid="(\d+)"', page)]
        assert order[0] == NEW_REPORT and set(order) == {*ORDINARY, NEW_REPORT}, path
    doc = lxml.html.fromstring(page)
    summary = " ".join(doc.xpath('//p[@class="summary"]')[0].text_content().split())
    assert summary.startswith(f"{len(ORDINARY) + 1} of {len(ORDINARY) + 1} records awaiting "
                              "a decision (6 flagged as likely maintenance RCTs)")
    [held_out] = doc.xpath('//p[contains(@class, "previous-reports")]')
    assert " ".join(held_out.text_content().split()).startswith(
        "3 records are reports of the previous version's trials: already included, not "
        "screened again")
    [records_item] = [dd.text_content() for dt, dd in zip(
        doc.xpath('//section[@aria-label="Screening health"]//dt'),
        doc.xpath('//section[@aria-label="Screening health"]//dd'), strict=True)
        if dt.text_content() == "records"]
    assert records_item == str(len(ORDINARY) + 1)
    # "Include, next" from the top of the queue leads to the next record of the pool
    token = csrf_from(page)
    response = curator.post(f"/records/{NEW_REPORT}/decision", follow_redirects=False,
                            data={"quick": "include", "csrf_token": token})
    assert response.status_code == 303
    assert response.headers["location"] == f"/records/{ORDINARY[0]}?rank=1"
    assert not set(pool.previous) & {int(p) for p in re.findall(
        r'data-pmid="(\d+)"', curator.get("/").text)}


def test_the_record_page_of_a_previous_report_says_it_is_not_screened_again(
        app: Any, users: dict[str, str]) -> None:
    """Opened from a search or a link, a report of the previous version names its trial
    (escaped, linked) and says it is not screened again; the decision recorded on it earlier
    is shown, and a decision may still be saved, without a "next" that suggests screening."""
    from previous_reports import NEW_REPORT, store_previous_reports

    with db(app) as session:
        pool = store_previous_reports(session)
        # the seed trials of the decided and the undecided reports, renamed with markup
        for pmid in pool.previous[:2]:
            trial = session.exec(select(Trial).join(TrialReport).where(
                TrialReport.pmid == pmid, col(TrialReport.source_key).is_not(None))).one()
            trial.name = f"IFM <i>{pmid}</i>"
            session.add(trial)
        session.commit()
    curator = as_role(app, users, "curator")
    undecided, decided = (curator.get(f"/records/{p}").text for p in pool.previous[:2])
    for html, pmid in ((undecided, pool.previous[0]), (decided, pool.previous[1])):
        assert f"<i>{pmid}</i>" not in html
        doc = lxml.html.fromstring(html)
        [note] = doc.xpath('//p[contains(concat(" ", @class, " "), " previous-report ")]')
        text = " ".join(note.text_content().split())
        assert text.startswith(f"A report of IFM <i>{pmid}</i> in the previous version of "
                               "the review: already included, it is not screened again")
        assert [a.get("href") for a in note.xpath(".//a")] == [
            href for href in doc.xpath('//ul[@class="linked-trials"]//a/@href')]
        assert "decision-form" in html and 'name="quick"' not in html
        assert "(not needed)" in html
    assert "The decision recorded on it earlier (include) is kept, but counts in none of " \
        "the screening numbers" in " ".join(decided.split())
    assert "recorded on it earlier" not in undecided
    # the decision form still works, and the record stays out of the queue's numbers
    before = curator.get("/").text
    response = curator.post(f"/records/{pool.previous[0]}/decision", follow_redirects=False,
                            data={"decision": "exclude", "csrf_token": csrf_from(undecided)})
    assert response.status_code == 303
    after = curator.get("/").text
    summary = re.compile(r'<p class="summary">(.*?)</p>', re.S)
    assert summary.search(before).group(1).split(";")[0] == \
        summary.search(after).group(1).split(";")[0]
    # a curator's report of a new trial is screened: no such note, the one-click buttons
    new = curator.get(f"/records/{NEW_REPORT}").text
    assert "previous-report" not in new and 'name="quick"' in new
