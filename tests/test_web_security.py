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

import pytest
import test_web
import test_web_funnel
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from markdown_it import MarkdownIt
from pydantic import SecretStr
from sqlmodel import func, select
from test_web import PASSWORD, api_as, as_role, csrf_from, db, login, update_user
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
CURATOR_PAGES = {("GET", "/trials/new"), ("GET", "/estimates/{estimate_id}/edit"),
                 ("GET", "/fetch")}
#: API reads for admins only: the audit trail holds every login attempt with its address.
ADMIN_API = {("GET", "/api/audit")}
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
_IDS = {"pmid": "90000002", "trial_id": "1", "estimate_id": "1", "user_id": "1",
        "subscriber_id": "1", "result_id": "1", "digest_id": "1", "report_id": "1"}


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
    if path.startswith("/admin/") or (method, path) in ADMIN_API:
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
        before = session.exec(select(func.max(AuditLog.id))).one() or 0
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
        # token), and the curator's Pool now, which needs no field (it pooled no evidence):
        # no change of data
        actions = set(session.exec(select(AuditLog.action).where(AuditLog.id > before)))
        assert actions <= {"auth.login", "user.token_issued", "user.token_revoked",
                           "pool.requested"}, actions
        assert session.exec(select(func.count()).select_from(PooledResult)).one() == 0


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
    update_user(app, users["curator"], active=False)
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
            assert response.headers["x-content-type-options"] == "nosniff", path
            assert response.headers["cross-origin-resource-policy"] == "same-origin", path
            assert "content-security-policy" in response.headers, path
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


def test_a_password_typed_as_the_login_name_is_written_nowhere(
        app: Any, users: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    """Someone types their password into the e-mail field: it was logged ("failed login for
    another secret phrase 77 from ...") and kept in the audit trail as the actor and object
    of the failed login. A login name that is not an e-mail address is written as "a login
    name that is not an e-mail address"; it still counts against the client address."""
    typed = "Another Secret Phrase 77"
    caplog.set_level("INFO", logger="screening.web.auth")
    here = TestClient(app, raise_server_exceptions=False, client=("198.51.100.40", 40000))
    assert login(here, typed, "whatever it was").status_code == 401
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "failed login for a login name that is not an e-mail address from 198.51.100.40" \
        in logged
    with db(app) as session:
        (row,) = session.exec(select(AuditLog).where(
            AuditLog.action == "auth.login_failed")).all()
    assert (row.actor, row.object_type, row.object_id) == ("anonymous", "login", None)
    assert row.details == {"client": "198.51.100.40",
                           "login": "a login name that is not an e-mail address"}
    for where in (logged, f"{row.actor} {row.object_id} {row.details}"):
        assert typed.lower() not in where.lower()
    # the address's limit counts such logins: then even a real account's right password waits
    for i in range(auth.MAX_FAILED_LOGINS_PER_CLIENT - 1):
        assert login(here, f"not an address {i}", "x").status_code == 401
    assert login(here, users["curator"]).status_code == 429


# ----------------------------------------------------------------------------- password hash
@pytest.mark.shipped_password_cost
def test_the_password_hash_costs_at_least_owasps_minimum() -> None:
    """OWASP's Password Storage Cheat Sheet sets scrypt's minimum as a table of forms it rates
    alike, each with block size 8, trading memory (N) for passes (p): 2**17 x 1, 2**16 x 2,
    2**15 x 3, 2**14 x 5, 2**13 x 10. A hash is made at the constants' cost and says so, and
    a login at that cost fits under the ceilings verify_password allows."""
    n, r, p = auth._SCRYPT_N, auth._SCRYPT_R, auth._SCRYPT_P
    owasp_p = {2**17: 1, 2**16: 2, 2**15: 3, 2**14: 5, 2**13: 10}
    assert r >= 8 and n >= 2**13 and p >= owasp_p[min(n, 2**17)], (n, r, p)
    assert 128 * n * r < auth._SCRYPT_MAXMEM and n * r * p <= auth._SCRYPT_MAX_WORK
    stored = auth.hash_password(PASSWORD)
    assert stored.startswith(f"scrypt${n}${r}${p}$")
    assert auth.verify_password(PASSWORD, stored) and not auth.needs_rehash(stored)
    assert not auth.verify_password(PASSWORD + "!", stored)


@pytest.mark.shipped_password_cost
@pytest.mark.parametrize("n", [2**10, 2**14], ids=["weak", "before-2026-12"])
def test_a_hash_of_a_lower_cost_is_redone_at_the_next_login(app: Any, users: dict[str, str],
                                                            n: int) -> None:
    """Raising the scrypt cost must reach the passwords already stored: the one time the
    password is known is a successful login. 2**14 x 8 x 1 is the cost mmlr shipped before it
    moved to OWASP's minimum: every account made before then takes this path."""
    salt = b"\x01" * 16
    weak = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=n, r=8, p=1, dklen=32)
    stored_weak = f"scrypt${n}$8$1${salt.hex()}${weak.hex()}"
    with db(app) as session:
        user = session.exec(select(User).where(User.email == users["viewer"])).one()
        user.password_hash = stored_weak
        session.add(user)
        session.commit()
    assert auth.needs_rehash(stored_weak)
    admin = as_role(app, users, "admin")
    assert _old_hash_marked(admin) == {users["viewer"]}  # the admin's own hash is current
    refused = login(TestClient(app), users["viewer"], "wrong password!")
    assert refused.status_code == 401
    with db(app) as session:  # a failed login changes nothing
        stored = session.exec(select(User).where(User.email == users["viewer"])).one()
        assert stored.password_hash == stored_weak
    assert login(TestClient(app), users["viewer"]).status_code == 303
    with db(app) as session:
        stored = session.exec(select(User).where(User.email == users["viewer"])).one()
        assert not auth.needs_rehash(stored.password_hash)
        assert stored.password_hash.startswith(
            f"scrypt${auth._SCRYPT_N}${auth._SCRYPT_R}${auth._SCRYPT_P}$")
        assert auth.verify_password(PASSWORD, stored.password_hash)
    assert _old_hash_marked(admin) == set()


def _old_hash_marked(admin: TestClient) -> set[str]:
    """The users /admin/users marks as stored at an older hash cost."""
    page = admin.get("/admin/users")
    assert page.status_code == 200
    rows = re.findall(r'<tr data-email="([^"]+)">(.*?)</tr>', page.text, re.S)
    assert rows
    return {email for email, row in rows if "older, weaker hash cost" in row}
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


# ----------------------------------------------------------------------------- secrets in logs
# Test values, each unique enough to grep for.
SMTP_PASSWORD = "smtp-Pa55-q7x"
ENTREZ_KEY = "entrezkey0123456789abcdef"
SECRET_KEY = "secret-key-for-the-log-test-0123456789-abcdefgh"
ADMIN_PASSWORD = "first-Pa55-zz9-plural-key"
NEW_PASSWORD = "new-Pa55-for-the-log-test"
WRONG_PASSWORD = "wrong-Pa55-for-the-log-test"
DB_PASSWORD = "db-Pa55-for-the-log-test"


def test_no_secret_reaches_the_log_or_the_audit_trail(settings: Any,
                                                      caplog: Any) -> None:
    """A run of the web app with every secret configured, through logins (failed and not), a
    password change, a new API token used on the API, an admin's generated password and an
    unsubscribe link: the log at DEBUG and the audit rows carry none of them."""
    from screening.web.app import create_app
    from screening.web.auth import add_user
    from store.subscribers import add_subscriber, unsubscribe_token

    configured = settings.model_copy(update={
        "smtp_url": SecretStr(f"smtp://digest:{SMTP_PASSWORD}@127.0.0.1:9"),
        "entrez_api_key": SecretStr(ENTREZ_KEY), "secret_key": SecretStr(SECRET_KEY),
        "admin_password": SecretStr(ADMIN_PASSWORD)})
    application = create_app(configured)
    seen: list[str] = []
    try:
        with caplog.at_level("DEBUG"):
            with db(application) as session:
                add_user(session, "admin@example.org", role="admin", password=ADMIN_PASSWORD)
                add_user(session, "cur@example.org", role="curator", password=PASSWORD)
                subscriber = add_subscriber(session, "reader@example.org", actor="test")
                session.commit()
                link = unsubscribe_token(subscriber, configured.secret())
            browser = TestClient(application, raise_server_exceptions=False)
            assert login(browser, "cur@example.org", WRONG_PASSWORD).status_code == 401
            assert login(browser, "cur@example.org").status_code == 303
            changed = browser.post("/account/password", data={
                "csrf_token": csrf_from(browser.get("/account").text),
                "current_password": PASSWORD, "new_password": NEW_PASSWORD,
                "confirm_password": NEW_PASSWORD}, follow_redirects=False)
            assert changed.status_code == 303
            page = browser.post("/account/token", data={
                "csrf_token": csrf_from(browser.get("/account").text),
                "current_password": NEW_PASSWORD})
            token = re.search(r"mmlr_[A-Za-z0-9_-]{43}", page.text)
            assert token is not None
            seen.append(token.group(0))
            api = TestClient(application, headers={"Authorization": f"Bearer {token.group(0)}"})
            assert api.get("/api/records").status_code == 200
            admin = TestClient(application, raise_server_exceptions=False)
            assert login(admin, "admin@example.org", ADMIN_PASSWORD).status_code == 303
            made = admin.post("/admin/users", data={
                "csrf_token": csrf_from(admin.get("/admin/users").text),
                "email": "new@example.org", "role": "viewer",
                "current_password": ADMIN_PASSWORD})
            assert made.status_code == 200, made.text
            generated = re.findall(r'<code class="secret">([^<]+)</code>', made.text)
            assert len(generated) == 1, made.text  # shown once, on this page
            seen += generated
            anonymous = TestClient(application, raise_server_exceptions=False)
            assert anonymous.get(f"/unsubscribe?t={link}").status_code == 200
            assert anonymous.post("/unsubscribe", data={"t": link}).status_code == 200
            assert anonymous.get(f"/unsubscribe?t={link[:-2]}xx").status_code == 400
        with db(application) as session:
            audited = " ".join(f"{row.action} {row.actor} {row.object_id} {row.details}"
                               for row in session.exec(select(AuditLog)))
    finally:
        application.state.retrainer.join(timeout=30)
        application.state.ctx.dispose()
    # The test's own HTTP client (httpx) logs the URLs it asks for; the server's log is the
    # rest (and `mmlr` keeps httpx at WARNING: test_a_cli_run_logs_no_secret).
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records
                       if not r.name.startswith(("httpx", "httpcore")))
    assert "failed login for cur@example.org" in logged  # the log was captured at all
    assert "auth.password_change" in audited and "user.token_issued" in audited
    for secret in (SMTP_PASSWORD, ENTREZ_KEY, SECRET_KEY, ADMIN_PASSWORD, NEW_PASSWORD,
                   WRONG_PASSWORD, PASSWORD, link, link.split(".")[1], *seen):
        assert secret not in logged, secret
        assert secret not in audited, secret


def test_a_cli_run_logs_no_secret(tmp_path: Any, db_url: str) -> None:
    """`mmlr -v init`, a poll that cannot reach E-utilities, `config`, `users add` and an
    `init` whose database (its URL with a password) is unreachable, with every secret in
    the environment: the log file and the terminal carry none of them."""
    from conftest import cli_env, run_cli

    data = tmp_path / "cli"
    env = cli_env(MMLR_DATA_DIR=str(data), MMLR_DATABASE_URL=db_url,
                  MMLR_SECRET_KEY=SECRET_KEY, MMLR_ADMIN_PASSWORD=ADMIN_PASSWORD,
                  MMLR_ENTREZ_API_KEY=ENTREZ_KEY, MMLR_ENTREZ_EMAIL="t@example.org",
                  MMLR_SMTP_URL=f"smtp://digest:{SMTP_PASSWORD}@127.0.0.1:9",
                  MMLR_ENTREZ_URL="http://127.0.0.1:9/entrez/eutils/",
                  MMLR_ENTREZ_MAX_RETRIES="0")
    out = ""
    for args in (("-v", "init"), ("-v", "poll"), ("-v", "config"),
                 ("-v", "users", "add", "x@example.org", "--role", "curator")):
        proc = run_cli(*args, env=env)
        out += proc.stdout + proc.stderr
    # and a database that cannot be reached, whose URL carries a password
    unreachable = {**env, "MMLR_DATABASE_URL":
                   f"postgresql+psycopg://mmlr:{DB_PASSWORD}@127.0.0.1:9/mmlr"}
    proc = run_cli("-v", "init", env=unreachable)
    out += proc.stdout + proc.stderr
    assert "cannot connect to the database postgresql+psycopg://mmlr:***@" in out
    assert "cannot reach E-utilities" in out  # the poll failed as intended
    generated = re.search(r"password \(shown once\): (\S+)", out)
    assert generated is not None
    log = (data / "mmlr.log").read_text(encoding="utf-8")
    assert "user x@example.org added" in log
    assert generated.group(1) not in log
    for secret in (SMTP_PASSWORD, ENTREZ_KEY, SECRET_KEY, ADMIN_PASSWORD, DB_PASSWORD):
        assert secret not in log and secret not in out, secret


# ----------------------------------------------------------------------------- redirects
def test_no_next_sends_a_browser_to_another_site(app: Any, users: dict[str, str]) -> None:
    """Browsers drop tabs and newlines from a URL and read "\\" as "/": every spelling of
    "//elsewhere" must stay on this site, after a login and for a user already logged in."""
    targets = ["//evil.example/", "/\t/evil.example/", "/\n/evil.example/", "/\\evil.example",
               "\\/evil.example", "https://evil.example/", "javascript:alert(1)",
               "/%2F/evil.example", " //evil.example", "/\r\n/evil.example"]
    for target in targets:
        browser = TestClient(app, raise_server_exceptions=False)
        token = csrf_from(browser.get("/login").text)
        response = browser.post("/login", data={"email": users["viewer"], "password": PASSWORD,
                                                "csrf_token": token, "next": target},
                                follow_redirects=False)
        assert response.status_code == 303, target
        for location in (response.headers["location"],
                         browser.get("/login", params={"next": target},
                                     follow_redirects=False).headers["location"]):
            cleaned = re.sub(r"[\t\n\r ]", "", location).replace("\\", "/")
            assert cleaned.startswith("/") and not cleaned.startswith("//"), (target, location)


# ----------------------------------------------------------------------------- enumeration
@pytest.mark.shipped_password_cost
def test_a_login_says_and_does_the_same_for_an_unknown_address(
        app: Any, users: dict[str, str], monkeypatch: Any) -> None:
    """No account, a deactivated one, a wrong password: the same answer, and the same scrypt
    work at the same cost (counted on the standard library's function, never timed), so that
    neither the words nor the response time tell which addresses have accounts."""
    with db(app) as session:
        gone = session.exec(select(User).where(User.email == users["admin"])).one()
        gone.active = False
        session.add(gone)
        session.commit()
    real = hashlib.scrypt
    calls: list[tuple[int, int, int]] = []

    def counting(password: bytes, **kwargs: Any) -> bytes:
        calls.append((kwargs["n"], kwargs["r"], kwargs["p"]))
        return real(password, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    answers = []
    for email in ("nobody@example.org", users["admin"], users["curator"]):
        browser = TestClient(app, raise_server_exceptions=False)
        token = csrf_from(browser.get("/login").text)
        calls.clear()
        response = browser.post("/login", data={"email": email, "password": "wrong-pass-1",
                                                "csrf_token": token, "next": "/"})
        page = re.sub(r'name="csrf_token" value="[^"]+"', "", response.text)  # random
        answers.append((response.status_code, page.replace(email, "EMAIL")))
        assert len(calls) == 1, (email, calls)
        assert calls[0] == (auth._SCRYPT_N, auth._SCRYPT_R, auth._SCRYPT_P), (email, calls)
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] == 401 and "wrong e-mail or password" in answers[0][1]


# ----------------------------------------------------------------------------- deactivation
def test_a_reactivated_account_gets_no_old_login_or_token_back(app: Any,
                                                                users: dict[str, str]) -> None:
    """An account is deactivated when it may be in the wrong hands: its reactivation must not
    bring back a cookie or an API token from before."""
    curator = as_role(app, users, "curator")
    api = api_as(app, users, "curator")
    assert curator.get("/account").status_code == 200
    assert api.get("/api/records").status_code == 200
    admin = as_role(app, users, "admin")
    with db(app) as session:
        target = session.exec(select(User).where(User.email == users["curator"])).one()
    for active in ("0", "1"):
        changed = admin.post(f"/admin/users/{target.id}/active", data={
            "active": active, "csrf_token": csrf_from(admin.get("/admin/users").text)},
            follow_redirects=False)
        assert changed.status_code == 303, changed.text
    with db(app) as session:
        assert session.exec(select(User).where(User.email == users["curator"])).one().active
    assert curator.get("/account", follow_redirects=False).status_code == 303  # to /login
    assert api.get("/api/records").status_code == 401
    assert login(TestClient(app), users["curator"]).status_code == 303  # a new login works


# ----------------------------------------------------------------------------- CSRF
def test_a_csrf_token_works_only_in_its_own_session(app: Any, users: dict[str, str],
                                                    records: int) -> None:
    """A token is the session's, not a password to the forms: one read from another login
    (the attacker's own, say) is refused, as is one from before this login."""
    victim = as_role(app, users, "curator")
    attacker = as_role(app, users, "viewer")
    foreign = csrf_from(attacker.get("/").text)
    sent = victim.post("/records/90000002/decision", data={
        "csrf_token": foreign, "decision": "include"}, follow_redirects=False)
    assert sent.status_code == 403 and "does not match this session" in sent.text
    # and the same request with the victim's own token goes through (the refusal above was
    # the token's, nothing else)
    own = victim.post("/records/90000002/decision", data={
        "csrf_token": csrf_from(victim.get("/").text), "decision": "include"},
        follow_redirects=False)
    assert own.status_code == 303, own.text
    with db(app) as session:
        assert session.exec(select(func.count()).select_from(Decision)).one() == 1


def test_a_cookie_planted_before_login_is_not_logged_in_by_it(app: Any,
                                                               users: dict[str, str]) -> None:
    """Session fixation: someone hands the victim a session cookie of their own making (an
    anonymous one from the login page), the victim logs in with it; the planted cookie is
    still anonymous, and the victim's login has a session nobody else knew."""
    attacker = TestClient(app, raise_server_exceptions=False)
    attacker.get("/login")
    planted = dict(attacker.cookies)
    victim = TestClient(app, raise_server_exceptions=False)
    victim.cookies.set("mmlr_session", planted["mmlr_session"], domain="testserver.local")
    assert login(victim, users["curator"]).status_code == 303
    assert [c.value for c in victim.cookies.jar if c.name == "mmlr_session"] != [
        planted["mmlr_session"]]
    assert victim.get("/account", follow_redirects=False).status_code == 200
    assert attacker.get("/account", follow_redirects=False).status_code == 303  # to /login


def _store_hash(app: Any, email: str, stored: str) -> None:
    update_user(app, email, password_hash=stored)


def test_a_hash_of_owasps_cost_logs_in_and_one_beyond_any_is_refused(
        app: Any, users: dict[str, str]) -> None:
    """OWASP's 2**17 x 8 form (128 MiB) must work if the constants ever move to it: Python's own
    32 MiB ceiling would turn every such login into "wrong password". A stored
    hash asking for more than one login should ever get (1 GiB) is a failed login, not a
    crash or an exhausted machine."""
    salt = b"\x02" * 16
    owasp = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=2**17, r=8, p=1, dklen=32,
                           maxmem=2**28)
    _store_hash(app, users["viewer"], f"scrypt${2**17}$8$1${salt.hex()}${owasp.hex()}")
    assert login(TestClient(app), users["viewer"]).status_code == 303
    _store_hash(app, users["curator"], f"scrypt${2**20}$8$1${salt.hex()}${'00' * 32}")
    refused = login(TestClient(app, raise_server_exceptions=False), users["curator"])
    assert refused.status_code == 401 and "wrong e-mail or password" in refused.text


def test_a_stored_hash_asking_for_endless_work_is_refused_without_computing_it(
        app: Any, users: dict[str, str], monkeypatch: Any, caplog: Any) -> None:
    """The memory ceiling does not bound p: a hash of 2**14 x 8 x 10**6 fits in 16 MiB and
    would hold a login thread for hours. It is a failed login, decided before any scrypt, and
    the log says why (the cost, not the hash or the password)."""
    salt = b"\x03" * 16
    _store_hash(app, users["curator"], f"scrypt${2**14}$8${10**6}${salt.hex()}${'00' * 32}")
    browser = TestClient(app, raise_server_exceptions=False)
    token = csrf_from(browser.get("/login").text)
    real, calls = hashlib.scrypt, []

    def counting(password: bytes, **kwargs: Any) -> bytes:
        calls.append((kwargs["n"], kwargs["r"], kwargs["p"]))
        return real(password, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    with caplog.at_level("WARNING", logger="screening.web.auth"):
        refused = browser.post("/login", data={"email": users["curator"], "password": PASSWORD,
                                               "csrf_token": token, "next": "/"})
    assert refused.status_code == 401 and "wrong e-mail or password" in refused.text
    assert calls == []
    assert "n=16384 r=8 p=1000000" in caplog.text and PASSWORD not in caplog.text
