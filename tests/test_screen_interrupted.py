"""A `mmlr screen` killed while scoring (SIGKILL, a lost container): the state it leaves — a
new active model, part of the records still scored by the one before, its progress row at
"scoring", on SQLite an orphaned lease — as `screen` writes it, read by `mmlr status` (its own
CLI) and the queue page's banner. Real database (SQLite, or PostgreSQL with
MMLR_TEST_DATABASE_URL, where the killed run's advisory lock is simply gone)."""

from __future__ import annotations

from datetime import timedelta

import test_web
from conftest import PG_URL
from fastapi.testclient import TestClient
from test_status import attention_line, status, status_json

from screening.service import PROGRESS_KEY
from screening.web.app import create_app
from store.context import AppContext
from store.locks import job_lock
from store.models import JobLock, KeyValue, ModelVersion, Record, utcnow

SCORED, LEFT = 4, 6  # records the killed run scored with the new model, and those it did not


def _killed_while_scoring(ctx: AppContext) -> int:
    """The new model's version id."""
    with ctx.sessions() as session:
        old = ModelVersion(name="keyword-prior", threshold=0.5, active=False)
        new = ModelVersion(name="mmlr-default", threshold=0.4, active=True,
                           config={"target_recall": 0.99})
        session.add_all([old, new])
        session.flush()
        for pmid in range(1, SCORED + LEFT + 1):
            session.add(Record(pmid=pmid, title=f"record {pmid}", score=pmid / 100,
                               score_model_version_id=new.id if pmid <= SCORED else old.id))
        session.add(KeyValue(key=PROGRESS_KEY, value={
            "phase": "scoring", "done": SCORED, "total": SCORED + LEFT,
            "updated_at": utcnow().isoformat()}))
        if not PG_URL:  # the dead run's lease, expired: orphaned
            past = utcnow() - timedelta(hours=2)
            session.add(JobLock(name="screen", holder="elsewhere:42:x:abcd", acquired_at=past,
                                expires_at=past + timedelta(hours=1)))
        session.commit()
        return int(new.id or 0)


def test_status_counts_records_an_older_model_scored_and_names_the_fix(
        ctx: AppContext) -> None:
    """It said "unscored 0 … status ok" (locks: screen … orphaned) although 6 records kept
    the old model's scores and nothing would rescore them."""
    new_id = _killed_while_scoring(ctx)
    line = attention_line(status(ctx.settings))
    assert (f"{LEFT} records still carry the score of an older model than the active "
            f"v{new_id}") in line
    assert line.endswith("run `mmlr screen`")
    _, report, _ = status_json(ctx.settings)
    assert report["screening"]["unscored"] == LEFT
    # a run at work (this process holds the lock; status runs in its own): not a problem
    with job_lock(ctx.engine, "screen"):
        code, report, _ = status_json(ctx.settings, process=True)
    assert code == 0 and report["healthy"], report["problems"]
    assert report["screening"]["unscored"] == LEFT


def test_the_banner_does_not_show_a_dead_runs_progress_as_live(ctx: AppContext) -> None:
    """The banner said "Classifier: scoring — 4 / 10" for ever after the run was killed."""
    _killed_while_scoring(ctx)
    app = create_app(ctx.settings)
    try:
        test_web.make_user(app, "viewer@example.org", "viewer")
        viewer = test_web.as_role(app, {"viewer": "viewer@example.org"}, "viewer")
        page = _banner(viewer)
        assert (f"the last screening run stopped during scoring at {SCORED} / "
                f"{SCORED + LEFT} without finishing") in page
        assert "part of the queue is still ordered by an older model" in page
        assert "mmlr screen" in page
        with job_lock(ctx.engine, "screen"):  # a live run: its progress, as it is
            live = _banner(viewer)
        assert f"Classifier: scoring — {SCORED} / {SCORED + LEFT}" in live
        assert "stopped" not in live
    finally:
        app.state.ctx.dispose()


def _banner(client: TestClient) -> str:
    import lxml.html

    doc = lxml.html.fromstring(client.get("/").text)
    return " ".join(" ".join(s.text_content().split())
                    for s in doc.xpath('//section[@aria-label="Classifier"]'))
