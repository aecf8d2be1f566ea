""""Pool now" on /estimates: a curator re-pools at once instead of waiting for the next
scheduled cycle — the same run as `mmlr pool`, in the background, under the same database
lock — over the real app and database."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import lxml.html
import pytest
import test_web
from fastapi.testclient import TestClient
from sqlmodel import col, select
from test_web import as_role, csrf_from, db
from test_web_evidence import _estimates, _post_estimate, _trial, _verify, second_curator

from reports.pool import pool_all
from screening.web.background import BackgroundJob
from store.locks import job_lock
from store.models import AuditLog, PooledResult

app = test_web.app
users = test_web.users

NUMBERS = {"hr": "0.50", "ci_low": "0.40", "ci_high": "0.625"}


def _pending(app: Any, users: dict[str, str]) -> TestClient:
    """One verified estimate not pooled yet; returns the second curator who verified it."""
    curator = as_role(app, users, "curator")
    assert _post_estimate(curator, _trial(app), **NUMBERS).status_code == 303
    (estimate,) = _estimates(app)
    checker = second_curator(app)
    assert _verify(checker, estimate).status_code == 303
    return checker


def _banner(c: TestClient) -> Any:
    """The "Not yet in these numbers" section of /estimates, or None."""
    page = lxml.html.fromstring(c.get("/estimates").text)
    found = page.xpath('//section[@aria-label="Not yet in these numbers"]')
    return found[0] if found else None


def _pool_now(c: TestClient, *, token: str | None = None) -> Any:
    if token is None:
        token = csrf_from(c.get("/estimates").text)
    return c.post("/estimates/pool", data={"csrf_token": token}, follow_redirects=False)


def _flash(c: TestClient) -> str:
    page = lxml.html.fromstring(c.get("/estimates").text)
    return " ".join(page.xpath('string(//p[contains(@class, "flash")])').split())


def _snapshots(app: Any) -> int:
    with db(app) as session:
        return len(session.exec(select(PooledResult.id)).all())


def test_a_curator_pools_the_pending_changes_at_once(app: Any, users: dict[str, str]) -> None:
    checker = _pending(app, users)
    banner = _banner(checker)
    assert banner is not None and banner.xpath('.//button[normalize-space()="Pool now"]')
    assert _snapshots(app) == 0

    answer = _pool_now(checker)
    assert answer.status_code == 303 and answer.headers["location"] == "/estimates"
    assert _flash(checker) == "Pooled: 2 analyses with new numbers."
    assert _banner(checker) is None  # nothing is waiting for a pool run any more
    assert _snapshots(app) == 2  # post-ASCT and all settings, as `mmlr pool` stores them
    with db(app) as session:
        audits = session.exec(select(AuditLog.actor).where(
            col(AuditLog.action) == "pool.requested")).all()
    assert audits == ["checker@example.org"]

    # Again with nothing new: the run stores nothing and says so.
    assert _pool_now(checker).status_code == 303
    assert _flash(checker) == "Pooled: no analysis changed."
    assert _snapshots(app) == 2


def test_a_viewer_sees_what_is_pending_but_cannot_pool(app: Any, users: dict[str, str]) -> None:
    _pending(app, users)
    viewer = as_role(app, users, "viewer")
    banner = _banner(viewer)
    assert banner is not None and not banner.xpath(".//button")
    assert _pool_now(viewer).status_code == 403
    assert _snapshots(app) == 0


def test_pool_now_without_the_csrf_token_is_refused(app: Any, users: dict[str, str]) -> None:
    checker = _pending(app, users)
    assert _pool_now(checker, token="forged").status_code == 403
    assert checker.post("/estimates/pool", data={}, follow_redirects=False).status_code == 403
    assert _snapshots(app) == 0 and _banner(checker) is not None


def test_a_failed_run_is_said_and_stores_nothing(app: Any, users: dict[str, str],
                                                 tmp_path: Path) -> None:
    checker = _pending(app, users)
    bad = tmp_path / "analyses.toml"
    bad.write_text("[[analysis]\n", encoding="utf-8")
    ctx = app.state.ctx
    app.state.pooler = BackgroundJob(
        dataclasses.replace(ctx, settings=ctx.settings.model_copy(update={"analyses_file": bad})),
        pool_all, what="pooling")
    assert _pool_now(checker).status_code == 303
    page = checker.get("/estimates").text
    flash = " ".join(lxml.html.fromstring(page).xpath(
        'string(//p[contains(@class, "flash")])').split())
    assert flash.startswith("Pooling failed: MMLR_ANALYSES_FILE") and "not valid TOML" in flash
    # The page keeps saying so after the flash is gone, until a run succeeds.
    assert "The last pool run started here failed: MMLR_ANALYSES_FILE" in " ".join(
        checker.get("/estimates").text.split())
    assert _snapshots(app) == 0


def test_a_broken_analyses_file_is_said_where_the_notice_would_be(
        app: Any, users: dict[str, str], tmp_path: Path) -> None:
    """The changes awaiting a pool run cannot be worked out: the page says why instead of
    dropping the notice (and its Pool now button) without a word."""
    checker = _pending(app, users)
    assert _banner(checker) is not None
    bad = tmp_path / "analyses.toml"
    bad.write_text('[[analysis]]\nname = "imid"\ncolour = "red"\n', encoding="utf-8")
    app.state.settings = app.state.settings.model_copy(update={"analyses_file": bad})
    page = lxml.html.fromstring(checker.get("/estimates").text)
    assert _banner(checker) is None
    (alert,) = page.xpath('//p[contains(@class, "pending-error")]')
    said = " ".join(alert.text_content().split())
    assert said.startswith("What the next pool run would change cannot be worked out")
    assert "MMLR_ANALYSES_FILE" in said and alert.get("role") == "alert"


def test_a_run_held_by_another_process_is_not_a_failure(app: Any,
                                                        users: dict[str, str]) -> None:
    """`mmlr pool` or the worker's cycle holds the database lock "pool": this run does
    nothing, and the curator is told the other one stores the same numbers."""
    checker = _pending(app, users)
    with job_lock(app.state.ctx.engine, "pool"):
        assert _pool_now(checker).status_code == 303
    flash = _flash(checker)
    assert flash.startswith("Not pooled here: job 'pool' is already running"), flash
    assert "That run stores the same numbers" in flash
    assert _snapshots(app) == 0 and app.state.pooler.last_error is None


def test_a_long_run_goes_on_in_the_background(app: Any, users: dict[str, str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The request waits a bounded time; a run still going then is announced on the page,
    and a second press does not start another."""
    import screening.web.routes_estimates as routes

    checker = _pending(app, users)
    release = threading.Event()

    def slow_pool(ctx: Any) -> Any:
        assert release.wait(timeout=60)
        return pool_all(ctx)

    app.state.pooler = BackgroundJob(app.state.ctx, slow_pool, what="pooling")
    monkeypatch.setattr(routes, "POOL_WAIT_SECONDS", 0.05)
    try:
        assert _pool_now(checker).status_code == 303
        html = checker.get("/estimates").text
        page = " ".join(lxml.html.fromstring(html).text_content().split())
        assert "Pooling is still running in the background" in page
        assert "Pooling now (started by checker@example.org at" in page
        assert 'action="/estimates/pool"' not in html  # no second button while it runs
        token = csrf_from(checker.get("/trials").text)
        assert _pool_now(checker, token=token).status_code == 303
        assert "Pooling is already running (started by checker@example.org" in _flash(checker)
    finally:
        release.set()
        app.state.pooler.join(timeout=60)
    assert app.state.pooler.runs == 1 and _snapshots(app) == 2


def test_an_analysis_left_without_trials_names_no_method(app: Any, users: dict[str, str]) -> None:
    """Its last estimate unverified and pooled again: the row stays listed, with no fit."""
    checker = _pending(app, users)
    assert _pool_now(checker).status_code == 303
    (estimate,) = _estimates(app)
    assert _verify(checker, estimate, "0").status_code == 303
    assert _pool_now(checker).status_code == 303
    page = lxml.html.fromstring(checker.get("/estimates").text)
    rows = page.xpath("//table[@class='pooled']/tbody/tr")
    assert len(rows) == 2
    for row in rows:
        cells = [" ".join(td.text_content().split()) for td in row.xpath("td")]
        assert cells[1] == "0" and cells[8] == "— (no trial)", cells
