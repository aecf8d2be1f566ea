"""Two web instances on one database (two `mmlr web` processes behind a load balancer, as
docs/operations.md "Running several instances" describes): each app has its own engine and
connection pool, and only the database is shared. A curator's login, its CSRF token and its
logout must hold on both, or a load balancer would need sticky sessions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select
from test_web import csrf_from, db, login, make_user

from screening.web.app import create_app
from store.models import Subscriber


@pytest.fixture
def two_apps(settings: Any) -> Iterator[tuple[Any, Any]]:
    apps = (create_app(settings), create_app(settings))
    yield apps
    for app in apps:
        app.state.retrainer.join(timeout=30)
        app.state.pooler.join(timeout=30)
        app.state.ctx.dispose()


def test_a_login_and_its_csrf_token_hold_on_every_instance(two_apps: tuple[Any, Any]) -> None:
    app_a, app_b = two_apps
    make_user(app_a, "admin@example.org", "admin")
    with TestClient(app_a, raise_server_exceptions=False) as a, \
            TestClient(app_b, raise_server_exceptions=False) as b:
        assert login(a, "admin@example.org").status_code == 303
        b.cookies = a.cookies  # the load balancer sends the next request to the other one
        page = b.get("/admin/subscribers", follow_redirects=False)
        assert page.status_code == 200, page.headers.get("location")
        token = csrf_from(page.text)  # a form served by B ...
        added = a.post("/admin/subscribers",  # ... posted to A
                       data={"email": "panel@example.org", "csrf_token": token},
                       follow_redirects=False)
        assert added.status_code == 303
        refused = a.post("/admin/subscribers",
                         data={"email": "other@example.org", "csrf_token": "forged"},
                         follow_redirects=False)
        assert refused.status_code == 403
        with db(app_a) as session:
            assert [s.email for s in session.exec(select(Subscriber))] == ["panel@example.org"]

        # Logging out on B ends the login on A too (the session is a row, not the cookie).
        out = b.post("/logout", data={"csrf_token": csrf_from(b.get("/").text)},
                     follow_redirects=False)
        assert out.status_code == 303
        after = a.get("/", follow_redirects=False)
        assert after.status_code == 303 and after.headers["location"].startswith("/login")
