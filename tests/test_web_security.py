"""Security of the curator web app, driven through the real app: who may reach every route
(enumerated from the app's router, so a new route cannot slip by unclassified), caching of
what a login shows, the login throttle's limits, the password hash's cost, and escaping of
text that reaches exports.

Helpers and fixtures come from tests/test_web.py.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import test_web
import test_web_funnel
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from markdown_it import MarkdownIt
from sqlmodel import func, select
from test_web import PASSWORD, api_as, as_role, csrf_from, db, login
from test_web_funnel import FEW

from screening.web import auth
from store.baselines import add_baseline, validate_baseline
from store.models import AuditLog, Decision, Estimate, PooledResult, Trial, User

app = test_web.app
client = test_web.client
users = test_web.users
records = test_web.records
pooled = test_web_funnel.pooled

#: Routes anyone may reach: logging in and out, the unsubscribe link (its token is its
#: authority), the load balancer's health check, the icon.
PUBLIC = {("GET", "/login"), ("POST", "/login"), ("POST", "/logout"), ("GET", "/unsubscribe"),
          ("POST", "/unsubscribe"), ("GET", "/api/health"), ("GET", "/favicon.ico")}
#: Pages that only show a form a curator sends: a viewer has nothing to do there.
CURATOR_PAGES = {("GET", "/trials/new"), ("GET", "/estimates/{estimate_id}/edit")}
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
_IDS = {"pmid": "90000002", "trial_id": "1", "estimate_id": "1", "user_id": "1",
        "subscriber_id": "1", "result_id": "1", "digest_id": "1"}


def all_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route of the app, included routers walked down."""
    found: list[tuple[str, str]] = []

    def walk(routes: Any) -> None:
        for route in routes:
            if isinstance(route, APIRoute):
                found.extend((m, route.path) for m in sorted(route.methods) if m != "HEAD")
            elif hasattr(route, "original_router"):
                walk(route.original_router.routes)
    walk(app.routes)
    return found


def needed_role(method: str, path: str) -> str | None:
    """The least role a route needs (None: public). The rule the app must follow, written
    once: admin pages need an admin; every write and every form page a curator, except one's
    own account; reading a viewer."""
    if (method, path) in PUBLIC:
        return None
    if path.startswith("/admin/"):
        return "admin"
    if path.startswith("/account"):
        return "viewer"  # everyone's own password and API token
    if method in UNSAFE or (method, path) in CURATOR_PAGES:
        return "curator"
    return "viewer"


def url_of(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: _IDS[m.group(1)], path)


def _refused_anonymous(response: Any, path: str) -> bool:
    if path.startswith("/api/"):
        return response.status_code == 401 and response.json()["code"] == "unauthenticated"
    if response.status_code == 303:
        return str(response.headers["location"]).startswith("/login")
    return response.status_code == 401 and "log in" in response.text


def test_every_route_is_classified_and_the_enumeration_finds_them(app: Any) -> None:
    routes = all_routes(app)
    assert len(routes) >= 80, routes
    assert set(routes) >= PUBLIC  # the public list names routes that exist
    assert set(routes) >= CURATOR_PAGES
    assert {needed_role(m, p) for m, p in routes} == {None, "viewer", "curator", "admin"}


def test_every_non_public_route_refuses_an_anonymous_request(app: Any, users: dict[str, str],
                                                             records: int) -> None:
    """With a valid CSRF token of an anonymous session, so that what refuses is the missing
    login, not the token."""
    anonymous = TestClient(app, raise_server_exceptions=False)
    token = csrf_from(anonymous.get("/login").text)
    for method, path in all_routes(app):
        if needed_role(method, path) is None:
            continue
        kwargs: dict[str, Any] = {}
        if method in UNSAFE:
            kwargs = ({"json": {"pmid": 90000002, "decision": "include"}}
                      if path.startswith("/api/")
                      else {"data": {"csrf_token": token, "decision": "include"}})
        response = anonymous.request(method, url_of(path), follow_redirects=False, **kwargs)
        assert _refused_anonymous(response, path), (method, path, response.status_code)
    with db(app) as session:
        assert session.exec(select(func.count()).select_from(Decision)).one() == 0


def _assert_role_rule(app: Any, who: TestClient, role: str, rank: int, *,
                      api: TestClient) -> int:
    """Drive every route as ``who`` (a ``role`` user); a route needing more must answer 403,
    one needing no more must not refuse. Returns how many routes were refused."""
    order = ["viewer", "curator", "admin"]
    token = csrf_from(who.get("/").text)
    refused = 0
    # The API first: the account page's "revoke my token" would end ``api``'s token.
    for method, path in sorted(all_routes(app), key=lambda r: not r[1].startswith("/api/")):
        need = needed_role(method, path)
        if need is None:
            continue
        client = api if path.startswith("/api/") else who
        kwargs: dict[str, Any] = {}
        if method in UNSAFE:
            kwargs = {"json": {}} if path.startswith("/api/") else {"data": {"csrf_token": token}}
        response = client.request(method, url_of(path), follow_redirects=False, **kwargs)
        if order.index(need) > rank:
            assert response.status_code == 403, (role, method, path, response.status_code)
            assert f"this needs the {need} role" in response.text, (role, method, path)
            refused += 1
        else:
            assert response.status_code not in (401, 403), (role, method, path,
                                                            response.status_code)
    return refused


def test_viewers_are_refused_every_write_and_curators_every_admin_route(
        app: Any, users: dict[str, str], records: int) -> None:
    """Page forms (with a valid CSRF token) and API writes (with the user's own token): a
    viewer gets 403 on each, a curator on each admin route; nothing is written."""
    with db(app) as session:
        before = session.exec(select(func.count()).select_from(AuditLog)).one()
    viewer = _assert_role_rule(app, as_role(app, users, "viewer"), "viewer", 0,
                               api=api_as(app, users, "viewer"))
    curator = _assert_role_rule(app, as_role(app, users, "curator"), "curator", 1,
                                api=api_as(app, users, "curator"))
    assert viewer >= 30 and curator >= 5, (viewer, curator)  # the rule was really exercised
    with db(app) as session:
        assert session.exec(select(func.count()).select_from(Decision)).one() == 0
        assert session.exec(select(func.count()).select_from(Trial)).one() == 0
        assert session.exec(select(func.count()).select_from(Estimate)).one() == 0
        # only the logins and tokens of this test were audited (a user may revoke their own
        # token), no change of data
        actions = set(session.exec(select(AuditLog.action).offset(before)))
        assert actions <= {"auth.login", "user.token_issued", "user.token_revoked"}, actions


def test_the_json_api_refuses_a_cookie_for_every_write(app: Any, users: dict[str, str],
                                                      records: int) -> None:
    """A browser's cookie never authorises an API write (it would need a CSRF token): each
    API write route, as a logged-in admin without a Bearer token, is 401."""
    admin = as_role(app, users, "admin")
    writes = [(m, p) for m, p in all_routes(app) if p.startswith("/api/") and m in UNSAFE]
    assert len(writes) >= 10, writes
    for method, path in writes:
        response = admin.request(method, url_of(path), json={"pmid": 90000002,
                                                            "decision": "include"})
        assert response.status_code == 401, (method, path)
        assert "write endpoints need an API token" in response.json()["error"], (method, path)


def test_a_bearer_token_of_a_deactivated_user_or_a_made_up_one_is_refused(
        app: Any, users: dict[str, str]) -> None:
    api = api_as(app, users, "curator")
    assert api.get("/api/records").status_code == 200
    with db(app) as session:
        user = session.exec(select(User).where(User.email == users["curator"])).one()
        user.active = False
        session.add(user)
        session.commit()
    assert api.get("/api/records").status_code == 401
    forged = TestClient(app, headers={"Authorization": "Bearer mmlr_" + "A" * 43})
    assert forged.get("/api/records").status_code == 401


# ----------------------------------------------------------------------------- caching
def test_nothing_behind_a_login_is_kept_in_a_cache(app: Any, users: dict[str, str],
                                                    records: int) -> None:
    """Pages, JSON, plots and downloads alike are no-store: a shared computer's browser must
    not keep them on disk after the user logged out. Only /static may be cached."""
    viewer = as_role(app, users, "viewer")
    served = set()
    for method, path in all_routes(app):
        if method != "GET" or needed_role(method, path) is None:
            continue
        response = viewer.get(url_of(path), follow_redirects=False)
        if response.status_code == 200:
            served.add(path)
            assert response.headers.get("cache-control") == "no-store", (
                path, response.headers.get("cache-control"))
    # the kinds that were cacheable before: an SVG plot, CSV and Markdown downloads
    assert {"/prisma.svg", "/summary.csv", "/summary.md", "/searches.csv", "/",
            "/api/records"} <= served, served
    assert "no-store" not in viewer.get("/static/style.css").headers.get("cache-control", "")


# ----------------------------------------------------------------------------- throttle
def test_failures_from_elsewhere_do_not_lock_the_owner_out(app: Any,
                                                           users: dict[str, str]) -> None:
    """Five wrong passwords per window from anywhere would otherwise keep the owner of an
    account out for as long as someone cares to send them."""
    owner = TestClient(app, raise_server_exceptions=False, client=("198.51.100.20", 40000))
    assert login(owner, users["curator"]).status_code == 303  # a known address from now on
    owner.cookies.clear()
    attacker = TestClient(app, raise_server_exceptions=False, client=("203.0.113.66", 40000))
    for _ in range(auth.MAX_FAILED_LOGINS):
        assert login(attacker, users["curator"], "guess-1234").status_code == 401
    blocked = login(attacker, users["curator"])  # even the right password, from there
    assert blocked.status_code == 429
    assert f"too many failed logins for {users['curator']}" in blocked.text
    # an address the owner never logged in from is held back as before...
    stranger = TestClient(app, raise_server_exceptions=False, client=("192.0.2.77", 40000))
    assert login(stranger, users["curator"]).status_code == 429
    # ...while the owner's own address still gets in
    assert login(owner, users["curator"]).status_code == 303
    # and the owner's address has the same limit for its own failures
    owner.cookies.clear()
    for _ in range(auth.MAX_FAILED_LOGINS):
        assert login(owner, users["curator"], "typo-typo").status_code == 401
    assert login(owner, users["curator"]).status_code == 429


def test_a_known_address_ages_out(app: Any, users: dict[str, str]) -> None:
    owner = TestClient(app, raise_server_exceptions=False, client=("198.51.100.21", 40000))
    assert login(owner, users["viewer"]).status_code == 303
    owner.cookies.clear()
    with db(app) as session:
        for row in session.exec(select(AuditLog).where(AuditLog.action == "auth.login")):
            row.at = row.at - auth.KNOWN_ADDRESS_AGE
            session.add(row)
        session.commit()
    attacker = TestClient(app, raise_server_exceptions=False, client=("203.0.113.67", 40000))
    for _ in range(auth.MAX_FAILED_LOGINS):
        login(attacker, users["viewer"], "guess-1234")
    assert login(owner, users["viewer"]).status_code == 429


# ----------------------------------------------------------------------------- password hash
def test_a_hash_of_a_lower_cost_is_redone_at_the_next_login(app: Any,
                                                            users: dict[str, str]) -> None:
    """Raising the scrypt cost must reach the passwords already stored: the one time the
    password is known is a successful login."""
    salt = b"\x01" * 16
    weak = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=2**10, r=8, p=1, dklen=32)
    with db(app) as session:
        user = session.exec(select(User).where(User.email == users["viewer"])).one()
        user.password_hash = f"scrypt$1024$8$1${salt.hex()}${weak.hex()}"
        session.add(user)
        session.commit()
    assert auth.needs_rehash(f"scrypt$1024$8$1${salt.hex()}${weak.hex()}")
    refused = login(TestClient(app), users["viewer"], "wrong password!")
    assert refused.status_code == 401
    with db(app) as session:  # a failed login changes nothing
        stored = session.exec(select(User).where(User.email == users["viewer"])).one()
        assert stored.password_hash.startswith("scrypt$1024$")
    assert login(TestClient(app), users["viewer"]).status_code == 303
    with db(app) as session:
        stored = session.exec(select(User).where(User.email == users["viewer"])).one()
        assert not auth.needs_rehash(stored.password_hash)
        assert auth.verify_password(PASSWORD, stored.password_hash)
    assert login(TestClient(app), users["viewer"]).status_code == 303  # and it still works


# ----------------------------------------------------------------------------- exports
def test_a_typed_link_in_the_markdown_download_stays_text(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    """Markdown turns "[words](url)" into a link, "javascript:" ones included where the
    renderer does not filter them: a curator-typed source must reach the panel as text."""
    typed = "[open the registry](https://evil.example/) \\[x](javascript:alert(1))"
    with db(app) as s:
        curator = s.exec(select(User).where(User.email == users["curator"])).one()
        add_baseline(s, entry=validate_baseline(analysis_key=FEW, months=36,
                                                event_free_percent=40, source=typed),
                     user=curator)
        s.commit()
    md = as_role(app, users, "viewer").get("/summary.md").text
    rendered = MarkdownIt("commonmark").enable("table").render(md)
    assert "<table>" in rendered  # the table is still a table
    assert "<a " not in rendered, rendered
    assert "[open the registry](https://evil.example/) \\[x](javascript:alert(1))" in rendered
