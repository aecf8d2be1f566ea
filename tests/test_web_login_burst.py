"""The login throttle under parallel attempts: real concurrent requests (threads) against the
app and its database (SQLite, or PostgreSQL with MMLR_TEST_DATABASE_URL).

Each test holds back the database's writes while the burst arrives, so that every request has
had time to read the throttle's count before any failure could be written: the counting and
the charging of an attempt must be one step, or the whole burst gets past the limit."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import test_web
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import func, select
from test_web import PASSWORD, as_role, csrf_from, db, login

from screening.web.auth import MAX_FAILED_LOGINS, MAX_FAILED_LOGINS_PER_CLIENT
from store.models import AuditLog, LoginAttempt

# the shared fixtures of test_web
app = test_web.app
users = test_web.users

ATTACKER = "203.0.113.9"


@contextmanager
def writes_held(app: Any, table: str = "audit_log") -> Iterator[None]:
    """Hold back every write to ``table`` (by default: of failed logins) until the block ends
    (reads go on): SQLite's write lock (WAL: readers are not blocked), or on PostgreSQL a lock
    on the table that lets SELECTs through and makes writes wait."""
    engine = app.state.ctx.engine
    if engine.dialect.name == "sqlite":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield
            finally:
                conn.exec_driver_sql("COMMIT")
        return
    with engine.connect() as conn:
        conn.execute(text(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))
        try:
            yield
        finally:
            conn.commit()


def burst(app: Any, sends: list[Any], table: str = "audit_log") -> list[int]:
    """Run every ``send`` (a no-argument callable returning a response) in its own thread at
    once while writes (to ``table``) are held back; release them after all have had the time
    to read what they count, and return the status codes in the order of ``sends``."""
    statuses: list[int] = [0] * len(sends)
    start = threading.Barrier(len(sends) + 1)

    def run(i: int) -> None:
        start.wait()
        statuses[i] = sends[i]().status_code

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(sends))]
    with writes_held(app, table):
        for thread in threads:
            thread.start()
        start.wait()
        time.sleep(1.5)  # let every request read the count (a time to wait, not a limit)
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive()
    return statuses


def _failures(app: Any, *, account: str | None = None, client: str | None = None) -> int:
    stmt = select(func.count()).select_from(AuditLog).where(
        AuditLog.action == "auth.login_failed")
    if account is not None:
        stmt = stmt.where(AuditLog.object_id == account)
    if client is not None:
        stmt = stmt.where(AuditLog.details["client"].as_string() == client)
    with db(app) as session:
        return int(session.exec(stmt).one())


def _login_form(app: Any, host: str) -> tuple[TestClient, str]:
    browser = TestClient(app, raise_server_exceptions=False, client=(host, 40000))
    return browser, csrf_from(browser.get("/login").text)


def _post_login(browser: TestClient, token: str, email: str, password: str) -> Any:
    return lambda: browser.post("/login", follow_redirects=False,
                                data={"email": email, "password": password,
                                      "csrf_token": token, "next": "/"})


def test_parallel_logins_check_no_more_passwords_than_the_account_limit(
        app: Any, users: dict[str, str]) -> None:
    """Eleven wrong passwords and the right one at the same moment from one address: five
    wrong ones are checked and fail, the rest are refused with 429 without a check, and so is
    the right one once the limit is reached (it gets in only if it was checked while fewer
    than five were charged; its slot is then freed, and a fifth wrong one may be checked).
    Counting first and recording after the scrypt check let all twelve through: eleven
    failures, and the right password logged in."""
    email = users["curator"]
    forms = [_login_form(app, ATTACKER) for _ in range(12)]
    sends = [_post_login(b, t, email, f"wrong guess number {i} xyz")
             for i, (b, t) in enumerate(forms[:-1])]
    sends.append(_post_login(*forms[-1], email, PASSWORD))
    statuses = burst(app, sends)
    assert statuses[-1] in (303, 429), statuses
    # Five failures at most. The right password may draw one of the five slots while they are
    # all held (then four wrong ones are checked beside it); a success frees its slot, so a
    # wrong guess still waiting may take it (five). Otherwise exactly five wrong ones.
    right_checked = statuses[-1] == 303
    wrong_checked = statuses.count(401)
    allowed = (MAX_FAILED_LOGINS - 1, MAX_FAILED_LOGINS) if right_checked else (MAX_FAILED_LOGINS,)
    assert wrong_checked in allowed, statuses
    assert _failures(app, account=email) == wrong_checked
    assert statuses[:-1].count(429) == 11 - wrong_checked, statuses
    if not right_checked:  # the limit is reached: the right password is refused
        browser, token = _login_form(app, ATTACKER)
        assert _post_login(browser, token, email, PASSWORD)().status_code == 429
    with db(app) as session:  # every check ended: no charge is left counting
        assert session.exec(select(func.count()).select_from(LoginAttempt)).one() == 0


def test_parallel_logins_over_many_accounts_stop_at_the_address_limit(
        app: Any, users: dict[str, str]) -> None:
    """Twenty-four wrong logins for as many addresses at once from one client: twenty are
    checked and fail, four are refused by the per-address limit."""
    n = MAX_FAILED_LOGINS_PER_CLIENT + 4
    forms = [_login_form(app, ATTACKER) for _ in range(n)]
    statuses = burst(app, [_post_login(b, t, f"someone{i}@example.org", "wrong guess xyz abc")
                           for i, (b, t) in enumerate(forms)])
    assert sorted(statuses) == [401] * MAX_FAILED_LOGINS_PER_CLIENT + [429] * 4, statuses
    assert _failures(app, client=ATTACKER) == MAX_FAILED_LOGINS_PER_CLIENT


def test_parallel_password_rechecks_on_the_account_page_stop_at_the_limit(
        app: Any, users: dict[str, str]) -> None:
    """A stolen session sending eight wrong current passwords at once to mint a token: five
    are checked (five failures), three refused with 429."""
    email = users["curator"]
    thief = as_role(app, users, "curator")
    token = csrf_from(thief.get("/account").text)
    copies = [TestClient(app, raise_server_exceptions=False, cookies=dict(thief.cookies))
              for _ in range(8)]
    sends = [(lambda c=c, i=i: c.post("/account/token", data={
        "csrf_token": token, "current_password": f"wrong guess number {i} xyz"}))
        for i, c in enumerate(copies)]
    statuses = burst(app, sends)
    assert sorted(statuses) == [400] * MAX_FAILED_LOGINS + [429] * 3, statuses
    assert _failures(app, account=email) == MAX_FAILED_LOGINS
    assert login(TestClient(app, raise_server_exceptions=False), email).status_code == 429
