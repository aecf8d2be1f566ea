"""The monitoring cycle over the replay server and a real database: `mmlr run` always ends
with a digest; the scheduled cycle leaves it to MMLR_DIGEST_CRON unless an alert on a record
in use is waiting, which is sent at once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select
from test_poll import make_settings, write_scenario

from monitor.cycle import run_cycle, urgent_alerts
from monitor.replay_server import start_replay_server
from store.context import make_context
from store.models import Alert, Decision, Digest, Record


def _digests(ctx) -> list[Digest]:  # type: ignore[no-untyped-def]
    with ctx.sessions() as session:
        return list(session.exec(select(Digest).order_by(col(Digest.id))))


@pytest.fixture
def cycle(tmp_path: Path, db_url: str) -> Iterator[tuple[Any, Any, Path]]:
    """(context, replay server, corpus folder) serving version 1 of test_poll's scenario."""
    corpus = tmp_path / "corpus"
    write_scenario(corpus, 1)
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(make_settings(tmp_path, db_url, srv.url))
        try:
            yield ctx, srv, corpus
        finally:
            ctx.dispose()


def test_an_interrupted_poll_ends_the_cycle(tmp_path: Path, db_url: str) -> None:
    # SIGTERM during `mmlr run`, or the worker shutting down, stopped the poll, and the cycle
    # then went on to screen, pool and deliver a digest as if nothing had been asked.
    from monitor.poll import SHUTDOWN

    corpus = tmp_path / "corpus"
    write_scenario(corpus, 1)
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(make_settings(tmp_path, db_url, srv.url, entrez_batch_size=4))
        SHUTDOWN.set()  # what `serve`/`worker` set on SIGTERM; `mmlr poll/run` on their own
        try:
            summary = run_cycle(ctx)
        finally:
            SHUTDOWN.clear()
            ctx.dispose()
    steps = dict(summary.steps)
    assert "interrupted" in steps["poll"]
    assert "screen" not in steps and "pool" not in steps and "network" not in steps
    assert steps["cycle"].startswith("stopped after the interrupted poll")
    assert summary.digest_id is None and not summary.deliveries


def test_scheduled_cycle_sends_only_urgent_alerts(cycle: tuple[Any, Any, Path]) -> None:
    ctx, srv, corpus = cycle
    first = run_cycle(ctx, digest=False)
    assert first.digest_id is None and _digests(ctx) == []
    assert ("digest", "not built: the digest follows MMLR_DIGEST_CRON (no alert on a "
                      "record in use is waiting)") in first.steps
    # a curator includes 1101, which version 2 of the corpus retracts
    with ctx.sessions() as session:
        rec = session.get(Record, 1101)
        assert rec is not None
        rec.decision = "include"
        session.add_all([rec, Decision(pmid=1101, decision="include")])
        session.commit()
    write_scenario(corpus, 2)
    srv.reload()
    second = run_cycle(ctx, digest=False)
    (digest,) = _digests(ctx)
    assert second.digest_id == digest.id and second.deliveries
    with ctx.sessions() as session:
        alerts = session.exec(select(Alert).where(Alert.pmid == 1101)).all()
    assert [a.kind for a in alerts] == ["retraction"] and alerts[0].in_analysis
    assert alerts[0].digest_id == digest.id and urgent_alerts(ctx) == 0
    assert "1101" in digest.text
    assert digest.summary["screening_health"] is not None  # the cycle passes it in

    # nothing urgent left: the scheduled cycle builds nothing; `mmlr run` does build
    # (and, nothing having changed since, returns the same digest)
    assert run_cycle(ctx, digest=False).digest_id is None
    assert run_cycle(ctx).digest_id == digest.id and len(_digests(ctx)) == 1


def test_mmlr_run_always_ends_with_a_digest(cycle: tuple[Any, Any, Path]) -> None:
    ctx, _, _ = cycle
    summary = run_cycle(ctx)
    (digest,) = _digests(ctx)
    assert summary.digest_id == digest.id and urgent_alerts(ctx) == 0


def test_a_model_that_no_longer_loads_does_not_stop_the_cycle(
        cycle: tuple[Any, Any, Path]) -> None:
    """The active classifier's artifact stopped unpickling (a library upgrade): the cycle
    raised 'model version N artifact cannot be loaded' at the screening step, with no
    pooling and no digest, every cycle until someone ran `mmlr screen --retrain`."""
    import hashlib

    from screening.service import screen
    from store.models import ModelVersion

    ctx, _, _ = cycle
    run_cycle(ctx)
    with ctx.sessions() as session:
        pmids = sorted(session.exec(select(Record.pmid)).all())
        for pmid, decision in zip(pmids, ["include", "include", "exclude", "exclude"],
                                  strict=False):
            session.add(Decision(pmid=pmid, decision=decision))
        session.commit()
    trained = screen(ctx, force_retrain=True)
    assert trained.model_name == "mmlr-default"
    payload = b"not a pickle any more"
    with ctx.sessions() as session:
        mv = session.get(ModelVersion, trained.model_version_id)
        assert mv is not None
        mv.artifact = hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
        session.add(mv)
        session.commit()
    summary = run_cycle(ctx)  # nothing new polled: nothing to score
    steps = dict(summary.steps)
    assert {"screen", "pool", "network"} <= set(steps) and summary.digest_id is not None
    assert len(_digests(ctx)) == 2


@pytest.mark.parametrize("step", ["screen", "pool"])
def test_a_step_running_elsewhere_does_not_skip_the_rest(cycle: tuple[Any, Any, Path],
                                                         step: str) -> None:
    # The web app retrains after curators' decisions under the "screen" lock, `mmlr pool` by
    # hand pools under "pool": a cycle that meets either has polled already, and must still
    # do the other steps and build the digest.
    from store.locks import job_lock

    ctx, _, _ = cycle
    with job_lock(ctx.engine, step):
        summary = run_cycle(ctx)
    steps = dict(summary.steps)
    assert steps[step].startswith(f"skipped: job '{step}' is already running")
    assert {"screen", "pool", "network"} <= set(steps) and summary.digest_id is not None
    with ctx.sessions() as session:
        assert session.exec(select(Record)).first() is not None  # the poll stored its records


def test_scheduled_jobs_end_in_one_line_saying_why(db_url: str,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    # The worker's terminal shows its log's one-line form: an expected failure must carry
    # its reason there, and another worker holding a job's lock is no failure at all.
    from monitor.cycle import scheduled_cycle, scheduled_digest
    from monitor.poll import scheduled_modified_pass
    from store.locks import job_lock
    from store.settings import load_settings

    monkeypatch.setenv("MMLR_DATABASE_URL", db_url)
    monkeypatch.setenv("MMLR_ENTREZ_URL", "http://127.0.0.1:9/entrez/eutils/")  # no one there
    monkeypatch.setenv("MMLR_ENTREZ_MAX_RETRIES", "0")
    ctx = make_context(load_settings())
    try:
        with caplog.at_level(logging.INFO), job_lock(ctx.engine, "digest"):
            scheduled_digest()
        assert [r.levelno for r in caplog.records if r.name == "monitor.cycle"] == [logging.INFO]
        assert "scheduled digest skipped: job 'digest' is already running" in caplog.text

        for job, what in ((scheduled_cycle, "cycle"), (scheduled_modified_pass, "modified pass")):
            caplog.clear()
            with caplog.at_level(logging.INFO):
                job()
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
            assert len(errors) == 1, caplog.text
            assert errors[0].getMessage().startswith(
                f"scheduled {what} failed: cannot reach E-utilities at http://127.0.0.1:9/")
            assert errors[0].exc_info is None  # no traceback for an expected failure
    finally:
        ctx.dispose()


def test_two_workers_run_a_tick_once(cycle: tuple[Any, Any, Path],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Both workers' schedulers may fire the same tick (APScheduler 3 does not coordinate
    # schedulers sharing a job store); a quick poll then ran twice, one after the other.
    from monitor.cycle import scheduled_cycle
    from monitor.poll import scheduled_modified_pass
    from store.models import PollRun

    ctx, srv, _ = cycle
    settings = ctx.settings
    for name, value in {"MMLR_DATABASE_URL": settings.db_url, "MMLR_ENTREZ_URL": srv.url,
                        "MMLR_ENTREZ_RATE": "500", "MMLR_POLL_START": settings.poll_start,
                        "MMLR_POLL_CRON": "0 0 1 1 *", "MMLR_MODIFIED_CRON": "0 0 1 1 *"
                        }.items():
        monkeypatch.setenv(name, value)
    for _ in range(2):  # the second worker, in the same (yearly) tick
        scheduled_cycle()
        scheduled_modified_pass()
    with ctx.sessions() as session:
        kinds = [run.kind for run in session.exec(select(PollRun).order_by(col(PollRun.id)))]
    assert kinds.count("crdt") == 1 and kinds.count("modified") == 1, kinds
