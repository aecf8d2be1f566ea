"""A write waiting for the database does not hold up the rest of the app.

The routes that take a request body (the JSON API's writes, the trial and estimate forms) read
it on the event loop and then did their database work there too: one write waiting out
SQLite's busy timeout (30 s) behind another process's lock froze every other request,
``/api/health`` included, until it gave up with a 503. They now run in worker threads like
the other routes. Real uvicorn on loopback, a real lock on the SQLite file (another
connection's write transaction), real HTTP clients.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import test_browser_web
import test_web
from conftest import PG_URL, first_write_seen
from test_database_locked import held_exclusively
from test_web import PASSWORD, csrf_from
from test_web_api import _token

app = test_web.app
users = test_web.users
records = test_web.records
server = test_browser_web.server  # uvicorn on loopback

PMID = 90000002


def _health_answers_while(app: Any, server: str, write: Callable[[], httpx.Response],
                          db_url: str) -> httpx.Response:
    """Send ``write`` while another connection holds the database's write lock; once it is
    waiting at the database, ask /api/health, which must answer while the write still waits.
    Returns the write's response, after the lock is let go."""
    answer: dict[str, httpx.Response] = {}
    writer = threading.Thread(target=lambda: answer.update(write=write()), daemon=True)
    with first_write_seen(app.state.ctx.engine) as writing, held_exclusively(db_url):
        writer.start()
        assert writing.wait(timeout=60), "the write never reached the database"
        health = httpx.get(f"{server}/api/health", timeout=60)
        still_waiting = writer.is_alive()
    writer.join(timeout=60)
    assert health.status_code == 200, health.text
    assert health.json()["database"] == "ok"
    # Before, /api/health answered only after the write gave up (503 "Database busy").
    assert still_waiting, f"health answered after the write: {answer['write'].status_code}"
    return answer["write"]


@pytest.fixture
def sqlite_only() -> None:
    if PG_URL:
        pytest.skip("SQLite's file lock (PostgreSQL locks rows, not the database)")


@pytest.mark.usefixtures("sqlite_only", "records")
def test_an_api_write_waiting_for_the_database_leaves_the_app_answering(
        app: Any, users: dict[str, str], server: str, settings: Any) -> None:
    headers = _token(app, users["curator"])

    def vote() -> httpx.Response:
        return httpx.post(f"{server}/api/decisions", headers=headers, timeout=90,
                          json={"pmid": PMID, "decision": "include"})

    saved = _health_answers_while(app, server, vote, settings.db_url)
    assert saved.status_code == 201, saved.text
    assert saved.json()["pmid"] == PMID and saved.json()["decision"] == "include"


@pytest.mark.usefixtures("sqlite_only", "records")
def test_a_form_waiting_for_the_database_leaves_the_app_answering(
        app: Any, users: dict[str, str], server: str, settings: Any) -> None:
    browser = httpx.Client(base_url=server, timeout=90, follow_redirects=False)
    token = csrf_from(browser.get("/login").text)
    assert browser.post("/login", data={"email": users["curator"], "password": PASSWORD,
                                        "csrf_token": token, "next": "/"}).status_code == 303
    token = csrf_from(browser.get("/trials/new").text)

    def new_trial() -> httpx.Response:
        return browser.post("/trials/new", data={
            "csrf_token": token, "name": "WAITED-1", "drug": "lenalidomide",
            "setting": "post_asct"})

    try:
        made = _health_answers_while(app, server, new_trial, settings.db_url)
        assert made.status_code == 303, made.text
        assert "WAITED-1" in browser.get(made.headers["location"]).text
    finally:
        browser.close()
