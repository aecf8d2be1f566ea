"""Two admins acting on each other at the same moment (real concurrent requests against the
app and its database: SQLite, or PostgreSQL with MMLR_TEST_DATABASE_URL): one active admin
always remains."""

from __future__ import annotations

from typing import Any

import pytest
import test_web
from sqlmodel import col, select
from test_web import as_role, csrf_from, db, make_user
from test_web_login_burst import burst

from store.models import User

# the shared fixtures of test_web
app = test_web.app
users = test_web.users

SECOND = "second-admin@example.org"


@pytest.mark.parametrize(("route", "field", "value"), [("active", "active", "0"),
                                                         ("role", "role", "curator")])
def test_two_admins_removing_each_other_at_once_leave_one(
        app: Any, users: dict[str, str], route: str, field: str, value: str) -> None:
    """Each request counted two active admins before either wrote: both deactivations (or
    demotions) went through and nobody was left to undo them. Both requests arrive while
    the users table's writes are held back, so both have read before either writes; one
    is refused with the last-admin message."""
    make_user(app, SECOND, "admin")
    first, second = as_role(app, users, "admin"), as_role(app, {"admin": SECOND}, "admin")
    with db(app) as session:
        ids = {u.email: u.id for u in session.exec(select(User))}
    tokens = [csrf_from(c.get("/admin/users").text) for c in (first, second)]
    answers: dict[str, Any] = {}

    def send(name: str, client: Any, target: str, token: str) -> Any:
        answers[name] = client.post(f"/admin/users/{ids[target]}/{route}",
                                    follow_redirects=False,
                                    data={"csrf_token": token, field: value})
        return answers[name]

    statuses = burst(app, [lambda: send("first", first, SECOND, tokens[0]),
                           lambda: send("second", second, users["admin"], tokens[1])],
                     table="users")
    assert sorted(statuses) == [303, 400], statuses
    (refused,) = [a for a in answers.values() if a.status_code == 400]
    assert "is the last active admin" in refused.text
    with db(app) as session:
        admins = session.exec(select(User.email).where(
            User.role == "admin", col(User.active).is_(True))).all()
    assert len(admins) == 1, admins
