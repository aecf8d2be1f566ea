"""PostgreSQL going away while the web app and the worker's jobs run (a restart, a failover):
the web answers 503 saying so, the jobs log one ERROR line, nothing needs a restart.

The outage is real: the app reaches PostgreSQL through a TCP relay on loopback, and the test
cuts the relay (every open connection reset, new ones refused), then opens it again, as
``pg_ctl stop -m fast`` and ``start`` do to clients. The test's PostgreSQL itself keeps running
for the other tests.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from test_web import login, make_user

from monitor.cycle import scheduled_job
from screening.web.app import create_app
from store.engine import database_unreachable, make_engine
from store.errors import LockedError, MmlrError
from store.locks import held_locks, job_lock


class Relay:
    """A TCP relay from a loopback port to ``target``; :meth:`cut` drops every connection and
    refuses new ones, :meth:`restore` listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # cut
                return
            server = socket.create_connection(self.target)
            with self._lock:
                self._conns += [client, server]
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        assert self._listener is not None
        # shutdown() wakes the thread blocked in accept(), which close() alone would not.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.fixture
def relayed(settings: Any, pg_admin_url: str) -> Iterator[tuple[Any, Relay]]:
    """``settings`` whose database URL goes through a relay to the test's PostgreSQL."""
    url = make_url(settings.db_url)
    relay = Relay((url.host or "127.0.0.1", url.port or 5432))
    via = url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    yield settings.model_copy(update={"database_url": via}), relay
    relay.cut()


def test_web_answers_503_while_the_database_is_unreachable_and_recovers(
        relayed: tuple[Any, Relay], caplog: pytest.LogCaptureFixture) -> None:
    settings, relay = relayed
    app = create_app(settings)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            make_user(app, "curator@example.org", "curator")
            assert login(client, "curator@example.org").status_code == 303
            assert client.get("/").status_code == 200

            relay.cut()
            caplog.clear()
            health = client.get("/api/health")
            assert health.status_code == 503
            assert health.json() == {"status": "error", "database": "unreachable"}
            page = client.get("/")
            assert page.status_code == 503, page.text
            assert "Database unavailable" in page.text
            assert "Traceback" not in page.text and "psycopg" not in page.text
            assert page.headers["retry-after"] == "30"
            api = client.get("/api/records")
            assert api.status_code == 503
            assert api.json()["code"] == "unavailable"
            # An outage is no bug: one line each, no traceback in the log.
            assert not [r for r in caplog.records if r.exc_info], caplog.text
            assert "database unreachable on GET /" in caplog.text

            relay.restore()  # no restart of the app: the pool's pre-ping replaces the dead
            assert client.get("/api/health").status_code == 200
            assert client.get("/").status_code == 200  # still logged in
    finally:
        app.state.ctx.dispose()


def test_a_job_whose_database_goes_away_logs_one_error_line_not_the_unlock(
        relayed: tuple[Any, Relay], caplog: pytest.LogCaptureFixture) -> None:
    """Before: the lock's release (``pg_advisory_unlock`` on the dead connection) raised in
    the ``finally`` and replaced the job's own error, and the worker logged it as unexpected,
    with a traceback. The server released the lock with the connection; nothing to do."""
    settings, relay = relayed
    engine = make_engine(settings)
    try:
        with caplog.at_level(logging.INFO), scheduled_job("cycle"), \
                job_lock(engine, "poll"), engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            relay.cut()
            conn.execute(text("SELECT 1"))  # the job's next query: the server is gone
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, caplog.text
        assert errors[0].exc_info is None
        assert errors[0].getMessage().startswith(
            "scheduled cycle failed: the database is unreachable: ")
        assert "pg_advisory_unlock" not in caplog.text

        relay.restore()
        assert held_locks(engine) == []  # released with the connection: the next run takes it
        with job_lock(engine, "poll"):
            pass
    finally:
        engine.dispose()


def test_only_an_unreachable_server_counts_as_an_outage(settings: Any, pg_admin_url: str) -> None:
    """A bad statement or a deadlock is a bug or a retry, not an outage to hide in one line."""
    engine = make_engine(settings)
    try:
        with engine.connect() as conn, pytest.raises(Exception) as bad:
            conn.execute(text("SELECT * FROM no_such_table"))
        assert not database_unreachable(bad.value)
        with engine.connect() as conn, pytest.raises(OperationalError) as deadlock:
            conn.execute(text("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40P01'; END $$"))
        assert not database_unreachable(deadlock.value)
        with engine.connect() as conn, pytest.raises(OperationalError) as shutdown:
            conn.execute(text("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '57P01'; END $$"))
        assert database_unreachable(shutdown.value)
    finally:
        engine.dispose()


def test_a_lock_lost_with_its_connection_stops_the_job_at_its_next_renewal(
        relayed: tuple[Any, Relay]) -> None:
    """PostgreSQL restarted between two batches of a poll: the job's other connections
    reconnect, but the advisory lock ended with its connection. Before, ``renew()`` did
    nothing on PostgreSQL and the poll went on without its lock while another worker, finding
    it free, resumed the same run."""
    settings, relay = relayed
    engine, other = make_engine(settings), make_engine(settings)
    try:
        with job_lock(engine, "poll") as lease:
            lease.renew()  # held: nothing to say
            with pytest.raises(LockedError), job_lock(other, "poll"):
                pass
            relay.cut()
            relay.restore()  # the restart is over before the next batch
            with job_lock(other, "poll"):  # another worker may take the lock now ...
                pass
            with pytest.raises(MmlrError, match="lost the lock 'poll'"):
                lease.renew()  # ... so this job stops at its next checkpoint
    finally:
        engine.dispose()
        other.dispose()


def _wait_for(condition: Any, what: str, tries: int = 400) -> None:
    """Poll ``condition`` (the scheduler works in its own thread); a bound on tries, not a
    time assertion."""
    import time

    for _ in range(tries):
        if condition():
            return
        time.sleep(0.025)
    raise AssertionError(f"never happened: {what}")


def test_the_scheduler_logs_its_job_store_outage_once_and_its_end(
        relayed: tuple[Any, Relay], caplog: pytest.LogCaptureFixture) -> None:
    """Before: APScheduler logged "Error getting due jobs from job store" with the driver's
    multi-line message every 10 seconds while PostgreSQL was down, and nothing when it was
    back. Now: one WARNING when the outage begins, one when the store answers again."""
    from monitor.scheduler import build_scheduler

    settings, relay = relayed
    scheduler = build_scheduler(settings, jobs={})
    scheduler.jobstore_retry_interval = 0.05  # APScheduler's 10 s between tries, shortened
    store = scheduler._jobstores["default"]
    scheduler.start(paused=True)  # its thread reads the store only once resumed
    try:
        with caplog.at_level(logging.INFO):
            relay.cut()
            scheduler.resume()
            _wait_for(lambda: store.outage.failures >= 5, "five failed reads of the job store")
            relay.restore()
            _wait_for(lambda: store.outage.since is None, "the job store answering again")
        messages = [r.getMessage() for r in caplog.records]
        assert not [m for m in messages if "Error getting due jobs" in m], caplog.text
        began = [m for m in messages if m.startswith("the scheduler cannot read its jobs")]
        assert len(began) == 1, caplog.text
        assert "the database is unreachable: " in began[0] and "\n" not in began[0]
        ended = [m for m in messages if m.startswith("the scheduler reads its jobs again")]
        assert len(ended) == 1, caplog.text
        assert not [r for r in caplog.records if r.exc_info], caplog.text
        assert settings.database_url.split("@")[0] not in caplog.text  # no credentials
    finally:
        scheduler.shutdown(wait=False)


def test_an_outage_after_the_due_jobs_were_read_does_not_end_the_scheduler(
        relayed: tuple[Any, Relay], caplog: pytest.LogCaptureFixture) -> None:
    """APScheduler reads the next run time after the due jobs, outside its retry: the
    database going away between the two raised out of its thread (the scheduler stopped for
    good). The store now reports the outage and asks to be woken after the retry interval."""
    from datetime import UTC, datetime, timedelta

    from monitor.scheduler import build_scheduler

    settings, relay = relayed
    scheduler = build_scheduler(settings, jobs={})
    store = scheduler._jobstores["default"]
    scheduler.start(paused=True)
    try:
        with caplog.at_level(logging.INFO):
            relay.cut()
            before = datetime.now(UTC)
            wake = store.get_next_run_time()
            assert wake is not None
            assert before < wake <= datetime.now(UTC) + timedelta(
                seconds=scheduler.jobstore_retry_interval)
            assert store.outage.since is not None
            relay.restore()
            assert store.get_due_jobs(datetime.now(UTC)) == []
        assert "the scheduler cannot read its jobs" in caplog.text
        assert "the scheduler reads its jobs again" in caplog.text
    finally:
        scheduler.shutdown(wait=False)


def test_a_poll_cut_off_by_an_outage_is_not_said_to_have_died(
        relayed: tuple[Any, Relay], settings: Any, tmp_path: Any) -> None:
    """PostgreSQL went away while a poll ran: the poll could not mark its run, which stays
    "running", and the lock went with the connection. Its worker lives on (here: this
    process). Before, `mmlr status` said "its process died"; it now says what it knows."""
    from sqlmodel import select
    from test_poll import _batches_done, _wait_for, make_settings, write_scenario

    from monitor.poll import poll
    from monitor.replay_server import start_replay_server
    from monitor.status import gather_status
    from store.context import AppContext, make_context
    from store.models import PollRun

    via, relay = relayed
    write_scenario(tmp_path / "corpus", 1)
    with start_replay_server(tmp_path / "corpus", rate_limit=None, delay=0.5) as srv:
        cut_off = make_context(make_settings(tmp_path, via.database_url, srv.url,
                                             entrez_batch_size=4, entrez_timeout=5.0))
        direct = make_context(make_settings(tmp_path, settings.db_url, srv.url))
        failures: list[BaseException] = []

        def worker(ctx: AppContext) -> None:
            try:
                poll(ctx, backoff_base=0.001)
            except BaseException as exc:
                failures.append(exc)

        thread = threading.Thread(target=worker, args=(cut_off,))
        try:
            thread.start()
            _wait_for(lambda: _batches_done(direct) >= 1)
            relay.cut()
            thread.join(timeout=60)
            assert failures, "the poll went on without its database"
            relay.restore()
            with direct.sessions() as session:
                assert session.exec(select(PollRun)).one().status == "running"
            report = gather_status(direct.settings)
            (line,) = [p for p in report.problems if "poll run" in p]
            assert "says running but no process holds the poll lock" in line
            assert "its process died (the next poll resumes it)" not in line
            assert "or the database went away under it" in line
        finally:
            thread.join(timeout=60)
            cut_off.dispose()
            direct.dispose()
