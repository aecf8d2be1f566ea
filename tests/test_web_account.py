"""The account page (own password change), `mmlr users password` and `list`, and the
per-address login throttle, over the real app and database (SQLite, or PostgreSQL with
MMLR_TEST_DATABASE_URL)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import test_web
from fastapi.testclient import TestClient
from sqlmodel import col, func, select
from test_web import PASSWORD, as_role, csrf_from, db, login

from screening.web.auth import (
    MAX_FAILED_LOGINS,
    MAX_FAILED_LOGINS_PER_CLIENT,
    MIN_PASSWORD_LENGTH,
    THROTTLE_WINDOW,
    verify_password,
)
from store.models import AuditLog, User

NEW_PASSWORD = "a brand new passphrase"

# the shared fixtures of test_web
app = test_web.app
client = test_web.client
users = test_web.users


def _user(app: Any, email: str) -> User:
    with db(app) as session:
        return session.exec(select(User).where(User.email == email)).one()


def _audit(app: Any, action: str) -> list[AuditLog]:
    with db(app) as session:
        return list(session.exec(select(AuditLog).where(AuditLog.action == action)
                                 .order_by(col(AuditLog.id))).all())


def change(client: TestClient, current: str, new: str, confirm: str, *,
           token: str | None = None) -> Any:
    if token is None:
        token = csrf_from(client.get("/account").text)
    return client.post("/account/password", follow_redirects=False,
                       data={"csrf_token": token, "current_password": current,
                             "new_password": new, "confirm_password": confirm})


def from_address(app: Any, host: str) -> TestClient:
    """A browser at another client address (the server sees it as request.client.host)."""
    return TestClient(app, raise_server_exceptions=False, client=(host, 40000))


# ----------------------------------------------------------------------------- account page
def test_account_page_shows_who_and_is_linked_from_the_header(app: Any,
                                                             users: dict[str, str]) -> None:
    viewer = as_role(app, users, "viewer")
    page = viewer.get("/account")
    assert page.status_code == 200
    assert users["viewer"] in page.text and "viewer" in page.text
    assert 'action="/account/password"' in page.text
    assert 'href="/account"' in viewer.get("/").text


def test_account_needs_login(client: TestClient, users: dict[str, str]) -> None:
    page = client.get("/account", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Faccount"
    token = csrf_from(client.get("/login").text)  # a valid token, but nobody is logged in
    response = change(client, PASSWORD, NEW_PASSWORD, NEW_PASSWORD, token=token)
    assert response.status_code == 401 and "please log in" in response.text


def test_password_change_happy_path(app: Any, users: dict[str, str]) -> None:
    email = users["curator"]
    here, elsewhere = as_role(app, users, "curator"), as_role(app, users, "curator")
    old_hash = _user(app, email).password_hash

    response = change(here, PASSWORD, NEW_PASSWORD, NEW_PASSWORD)
    assert response.status_code == 303 and response.headers["location"] == "/account"
    page = here.get("/account", follow_redirects=False)
    assert page.status_code == 200  # this session stays logged in
    assert "Your password was changed" in page.text
    assert here.get("/").status_code == 200
    # the other session (a cookie issued before the change) is logged out
    assert elsewhere.get("/", follow_redirects=False).status_code == 303
    assert elsewhere.get("/account", follow_redirects=False).status_code == 303

    user = _user(app, email)
    assert user.password_hash != old_hash and verify_password(NEW_PASSWORD, user.password_hash)
    assert login(TestClient(app), email, PASSWORD).status_code == 401
    assert login(TestClient(app), email, NEW_PASSWORD).status_code == 303

    (row,) = _audit(app, "auth.password_change")
    assert row.actor == email and row.object_id == email
    stored = json.dumps(row.details)
    assert row.details["client"] == "testclient"
    for secret in (PASSWORD, NEW_PASSWORD, user.password_hash):
        assert secret not in stored
    with db(app) as session:  # no audit row anywhere carries a password
        everything = json.dumps([r.details for r in session.exec(select(AuditLog)).all()])
    assert PASSWORD not in everything and NEW_PASSWORD not in everything


@pytest.mark.parametrize(("current", "new", "confirm", "field", "fragment"), [
    ("wrong password!", NEW_PASSWORD, NEW_PASSWORD, "current_password",
     "current password: it is wrong"),
    ("", NEW_PASSWORD, NEW_PASSWORD, "current_password", "current password: enter it"),
    (PASSWORD, "x" * (MIN_PASSWORD_LENGTH - 1), "x" * (MIN_PASSWORD_LENGTH - 1), "new_password",
     f"new password: the password is too short: {MIN_PASSWORD_LENGTH - 1} characters "
     f"(use at least {MIN_PASSWORD_LENGTH} characters; a few words make one)"),
    (PASSWORD, "i am the curator@example.org", "i am the curator@example.org", "new_password",
     "new password: the password contains the account&#39;s e-mail address"),
    (PASSWORD, "abcdefghijklmnopq", "abcdefghijklmnopq", "new_password",
     "new password: the password is one character repeated or a run of consecutive"),
    (PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "!", "confirm_password",
     "confirm password: it does not match the new password"),
    (PASSWORD, PASSWORD, PASSWORD, "new_password",
     "new password: it is the same as the current one"),
], ids=["wrong-current", "empty-current", "policy", "names-account", "run", "mismatch",
          "same"])
def test_password_change_refusals_change_nothing(app: Any, users: dict[str, str], current: str,
                                                 new: str, confirm: str, field: str,
                                                 fragment: str) -> None:
    email = users["curator"]
    here, elsewhere = as_role(app, users, "curator"), as_role(app, users, "curator")
    before = _user(app, email)

    response = change(here, current, new, confirm)
    assert response.status_code == 400
    assert fragment in response.text
    assert f'id="{field}" name="{field}" type="password"' in response.text
    assert response.text.count('aria-invalid="true"') == 1
    assert f'name="{field}"' in response.text.split('aria-invalid="true"')[0].rsplit("<input", 1)[1]

    after = _user(app, email)
    assert after.password_hash == before.password_hash
    assert after.session_version == before.session_version
    assert here.get("/", follow_redirects=False).status_code == 200
    assert elsewhere.get("/", follow_redirects=False).status_code == 200
    assert _audit(app, "auth.password_change") == []
    failed = _audit(app, "auth.login_failed")
    if fragment.endswith("it is wrong"):  # a wrong current password is a failed login
        (row,) = failed
        assert row.object_id == email
        assert row.details == {"client": "testclient", "via": "password_change"}
    else:
        assert failed == []


def test_password_change_policy_is_the_one_used_for_new_users(app: Any,
                                                              users: dict[str, str]) -> None:
    """Exactly MIN_PASSWORD_LENGTH characters passes: the same rule as `add_user`."""
    here = as_role(app, users, "viewer")
    fits = ("plain words " * 3)[:MIN_PASSWORD_LENGTH]
    assert change(here, PASSWORD, fits, fits).status_code == 303
    assert verify_password(fits, _user(app, users["viewer"]).password_hash)


def test_password_change_needs_the_csrf_token(app: Any, users: dict[str, str]) -> None:
    here = as_role(app, users, "curator")
    before = _user(app, users["curator"]).password_hash
    for data in ({}, {"csrf_token": "x" * 43}):
        response = here.post("/account/password", follow_redirects=False,
                             data={**data, "current_password": PASSWORD,
                                   "new_password": NEW_PASSWORD,
                                   "confirm_password": NEW_PASSWORD})
        assert response.status_code == 403
        assert "security token is missing or does not match" in response.text
    assert _user(app, users["curator"]).password_hash == before
    assert _audit(app, "auth.password_change") == []


def test_wrong_current_passwords_feed_the_login_throttle(app: Any, users: dict[str, str]) -> None:
    """Someone holding a session cookie cannot use the form to guess the password freely."""
    email = users["curator"]
    here = as_role(app, users, "curator")
    for _ in range(MAX_FAILED_LOGINS):
        assert change(here, "wrong password!", NEW_PASSWORD, NEW_PASSWORD).status_code == 400
    blocked = change(here, PASSWORD, NEW_PASSWORD, NEW_PASSWORD)  # even the right one now
    assert blocked.status_code == 429
    assert blocked.headers["retry-after"] == str(int(THROTTLE_WINDOW.total_seconds()))
    assert f"too many failed logins for {email}" in blocked.text
    assert login(TestClient(app), email).status_code == 429  # and the login form agrees
    assert verify_password(PASSWORD, _user(app, email).password_hash)


# ----------------------------------------------------------------------------- per-address throttle
def test_address_throttle_stops_spraying_across_accounts(app: Any, users: dict[str, str]) -> None:
    attacker = from_address(app, "203.0.113.7")
    # one guess per account: the per-account limit never triggers
    for i in range(MAX_FAILED_LOGINS_PER_CLIENT):
        assert login(attacker, f"victim{i}@example.org", "guess-123").status_code == 401
    assert login(attacker, users["viewer"], "guess-123").status_code == 429
    blocked = login(attacker, users["curator"])  # even a correct password, any account
    assert blocked.status_code == 429
    assert blocked.headers["retry-after"] == str(int(THROTTLE_WINDOW.total_seconds()))
    assert "too many failed logins from 203.0.113.7" in blocked.text
    # the address is recorded on the audited failures that the count is made of
    failed = _audit(app, "auth.login_failed")
    assert len(failed) == MAX_FAILED_LOGINS_PER_CLIENT
    assert {row.details["client"] for row in failed} == {"203.0.113.7"}
    # other addresses are not affected, nor are the sprayed accounts themselves
    assert login(from_address(app, "198.51.100.2"), users["curator"]).status_code == 303
    with db(app) as session:
        assert session.exec(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "auth.login")).one() == 1


def test_address_throttle_is_independent_of_the_account_throttle(app: Any,
                                                                 users: dict[str, str]) -> None:
    # below the address limit but over the account limit: the account is throttled
    # everywhere, the address still reaches other accounts
    for i in range(MAX_FAILED_LOGINS):
        assert login(from_address(app, f"192.0.2.{i + 1}"), users["curator"],
                     "wrong password!").status_code == 401
    assert login(from_address(app, "192.0.2.99"), users["curator"]).status_code == 429
    assert login(from_address(app, "192.0.2.1"), users["viewer"]).status_code == 303
    # an address one failure short of its limit still logs in; the next failure closes it
    spray = from_address(app, "203.0.113.9")
    for i in range(MAX_FAILED_LOGINS_PER_CLIENT - 1):
        assert login(spray, f"nobody{i}@example.org", "guess-123").status_code == 401
    assert login(spray, users["admin"]).status_code == 303
    spray.cookies.clear()
    assert login(spray, "nobody-else@example.org", "guess-123").status_code == 401
    assert login(spray, users["viewer"]).status_code == 429


def test_failures_older_than_the_window_do_not_count(app: Any, users: dict[str, str]) -> None:
    spray = from_address(app, "203.0.113.10")
    for i in range(MAX_FAILED_LOGINS_PER_CLIENT):
        assert login(spray, f"old{i}@example.org", "guess-123").status_code == 401
    assert login(spray, users["viewer"]).status_code == 429
    with db(app) as session:  # let the window pass
        for row in session.exec(select(AuditLog).where(
                AuditLog.action == "auth.login_failed")).all():
            row.at = row.at - THROTTLE_WINDOW
            session.add(row)
        session.commit()
    assert login(spray, users["viewer"]).status_code == 303


# ----------------------------------------------------------------------------- CLI
def _cli_env(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    monkeypatch.setenv("MMLR_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MMLR_DATA_DIR", str(settings.data_dir))


def test_cli_users_password(app: Any, users: dict[str, str], settings: Any,
                            monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    from monitor import cli

    _cli_env(monkeypatch, settings)
    browser = as_role(app, users, "viewer")
    assert cli.main(["users", "password", users["viewer"].upper(),
                     "--password", NEW_PASSWORD]) == 0
    out = capsys.readouterr().out
    assert "sessions are logged out" in out and NEW_PASSWORD not in out
    assert browser.get("/", follow_redirects=False).status_code == 303
    assert login(TestClient(app), users["viewer"], NEW_PASSWORD).status_code == 303

    assert cli.main(["users", "password", users["viewer"]]) == 0
    generated = capsys.readouterr().out.split("password (shown once): ")[1].strip()
    assert len(generated) >= MIN_PASSWORD_LENGTH
    assert login(TestClient(app), users["viewer"], generated).status_code == 303
    assert len(_audit(app, "auth.password_change")) == 2

    assert cli.main(["users", "password", "ghost@example.org"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "no user ghost@example.org" in err[0]
    assert cli.main(["users", "password", users["viewer"], "--password", "short"]) == 1
    assert "too short" in capsys.readouterr().err
    assert login(TestClient(app), users["viewer"], generated).status_code == 303


def test_cli_users_list(app: Any, users: dict[str, str], settings: Any,
                        monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    """`mmlr users list`: who may log in, as what, when they last did, their API token, and
    whose password is still stored at an older hash cost; never a hash or a token."""
    from datetime import timedelta

    from monitor import cli
    from screening.web.auth import issue_api_token
    from store.models import utcnow

    _cli_env(monkeypatch, settings)
    assert login(TestClient(app), users["curator"]).status_code == 303
    with db(app) as session:
        by_email = {u.email: u for u in session.exec(select(User)).all()}
        issue_api_token(session, by_email[users["curator"]], actor="test", days=30)
        issue_api_token(session, by_email[users["admin"]], actor="test", days=30)
        by_email[users["admin"]].api_token_expires_at = utcnow() - timedelta(days=1)
        by_email[users["viewer"]].password_hash = "scrypt$1024$8$1$" + "00" * 16 + "$" + "00" * 32
        by_email[users["viewer"]].active = False
        session.add_all(by_email.values())
        session.commit()
        secrets = {u.password_hash for u in by_email.values()} | {
            u.api_token_hash for u in by_email.values() if u.api_token_hash}

    assert cli.main(["users", "list", "--json"]) == 0
    listed = capsys.readouterr().out
    assert not any(secret in listed for secret in secrets)
    rows = {row["email"]: row for row in json.loads(listed)}
    assert set(rows) == set(users.values())
    curator, admin, viewer = (rows[users[r]] for r in ("curator", "admin", "viewer"))
    assert (curator["role"], curator["active"], curator["api_token"]) == ("curator", True,
                                                                         "active")
    assert curator["last_login_at"] and curator["password_hash_current"] is True
    assert admin["api_token"] == "expired" and admin["last_login_at"] is None
    assert (viewer["active"], viewer["api_token"], viewer["password_hash_current"]) == (
        False, "none", False)

    assert cli.main(["users", "list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split("\t")[0]: line for line in out.splitlines()}
    assert "older hash cost" in lines[users["viewer"]] and "deactivated" in lines[users["viewer"]]
    assert "older hash cost" not in lines[users["curator"]]
    assert "API token until" in lines[users["curator"]]
    assert "last login" in lines[users["curator"]]
    assert "API token expired" in lines[users["admin"]]
    assert "never logged in" in lines[users["admin"]]
    assert not any(secret in out for secret in secrets)
