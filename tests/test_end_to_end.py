"""The whole living review, end to end, as a user runs it: `mmlr demo`, `mmlr run` twice,
`mmlr pool --json`, `mmlr export csv`, and the web app's health check — real processes, a real
database (SQLite file or PostgreSQL), the replay server on loopback."""

from __future__ import annotations

import csv
import io
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import (
    PG_URL,
    ROOT,
    _drop_pg_database,
    _fresh_pg_database,
    cli_env,
    free_port,
    mmlr_signalled_from_another_thread,
    run_cli,
    stopped,
)
from sqlalchemy import create_engine, text

COUNTED_TABLES = (
    "records",
    "record_revisions",
    "model_versions",
    "scores",
    "pooled_results",
    "digests",
    "deliveries",
    "estimates",
    "trials",
    "alerts",
)


# A full cycle on 2 busy cores can take minutes; run_cli's default is for quick commands.
CLI_TIMEOUT = 600


def _env(data_dir: Path, db_url: str, **extra: str) -> dict[str, str]:
    defaults = {
        "MMLR_DATA_DIR": str(data_dir),
        "MMLR_DATABASE_URL": db_url,
        "MMLR_ADMIN_PASSWORD": "demo-first-login-passphrase",
        "MMLR_ENTREZ_EMAIL": "tests@example.org",
    }
    return cli_env(**(defaults | extra))


def counts(db_url: str) -> dict[str, int]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return {
                t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in COUNTED_TABLES
            }
    finally:
        engine.dispose()


#: The port the demo is told to serve on (it does not serve here: --no-serve).
DEMO_PORT = 8765


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One demo per module (it is the expensive part); the tests below only add to it."""
    tmp = tmp_path_factory.mktemp("e2e")
    if PG_URL:
        db_url, name = _fresh_pg_database(PG_URL)
    else:
        db_url, name = f"sqlite:///{tmp / 'mmlr.sqlite3'}", ""
    data_dir = tmp / "demo-data"
    proc = run_cli("demo", "--no-serve", "--port", str(DEMO_PORT), env=_env(data_dir, db_url),
                   timeout=CLI_TIMEOUT)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    yield data_dir, db_url, proc
    if name:
        _drop_pg_database(PG_URL, name)


@pytest.mark.own_databases
def test_demo_ends_with_a_digest_of_flagged_records_and_pooled_estimates(demo_run) -> None:  # type: ignore[no-untyped-def]
    _data_dir, db_url, proc = demo_run
    match = re.search(r"^digest: (.+\.html)$", proc.stdout, re.M)
    assert match, proc.stdout
    html = Path(match.group(1)).read_text(encoding="utf-8")
    # flagged synthetic records (PMIDs from 90000001) are listed with their PubMed links
    flagged = set(re.findall(r"\b(900\d{5})\b", html))
    assert len(flagged) >= 5, "the digest lists too few flagged demo records"
    # its links lead to the app the demo serves (--port), not to the default port
    assert f'href="http://127.0.0.1:{DEMO_PORT}/' in html
    assert "127.0.0.1:8000" not in html
    assert f"http://127.0.0.1:{DEMO_PORT}/" in proc.stdout
    # the seed evidence is pooled: lenalidomide and ixazomib analyses with HRs and CIs
    assert "lenalidomide" in html.lower() and "ixazomib" in html.lower()
    assert re.search(r"0\.\d\d \(0\.\d\d[–-]\d\.\d\d\)", html), "no HR (CI) in the digest"
    c = counts(db_url)
    assert c["records"] >= 150 and c["trials"] >= 10 and c["pooled_results"] >= 3
    assert c["digests"] == 1 and c["deliveries"] >= 1


@pytest.mark.own_databases
def test_run_twice_changes_nothing_the_second_time(demo_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from monitor.replay_server import start_replay_server

    data_dir, db_url, _ = demo_run
    with start_replay_server(data_dir / "demo-corpus") as replay:
        env = _env(data_dir, db_url, MMLR_ENTREZ_URL=replay.url, MMLR_POLL_START="2025/01/01")
        first = run_cli("run", env=env, timeout=CLI_TIMEOUT)
        assert first.returncode == 0, first.stderr
        before = counts(db_url)
        outbox_before = sorted(p.name for p in (data_dir / "outbox").iterdir())
        second = run_cli("run", env=env, timeout=CLI_TIMEOUT)
        assert second.returncode == 0, second.stderr
        assert counts(db_url) == before
        assert sorted(p.name for p in (data_dir / "outbox").iterdir()) == outbox_before


@pytest.mark.own_databases
def test_pool_json_and_csv_export_have_the_documented_shapes(demo_run) -> None:  # type: ignore[no-untyped-def]
    data_dir, db_url, _ = demo_run
    env = _env(data_dir, db_url)
    proc = run_cli("pool", "--json", env=env, timeout=CLI_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert {"method", "ci", "analyses", "subgroup_test"} <= set(data)
    assert data["method"] == "REML" and data["ci"] == "hksj"
    keys = {
        "name",
        "k",
        "estimate",
        "se",
        "ci_low",
        "ci_high",
        "pi_low",
        "pi_high",
        "hr",
        "hr_ci_low",
        "hr_ci_high",
        "tau2",
        "i2",
        "q",
        "q_p",
    }
    assert data["analyses"] and all(keys <= set(a) for a in data["analyses"])
    for a in data["analyses"]:
        if a["k"] >= 1:
            assert a["hr"] == pytest.approx(2.718281828459045 ** a["estimate"], rel=1e-9)

    proc = run_cli("export", "csv", env=env, timeout=CLI_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert {"pmid", "title", "journal", "year", "status", "score", "decision"} <= set(rows[0])
    assert len(rows) >= 150


@pytest.mark.own_databases
def test_web_app_answers_health(demo_run) -> None:  # type: ignore[no-untyped-def]
    data_dir, db_url, _ = demo_run
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "web", "--port", str(port)],
        env=_env(data_dir, db_url),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        r = _wait_for_health(proc, port)
        assert r.status_code == 200
        body = r.json()
        # what a load balancer may know; the counts are for signed-in callers (test_web_api)
        assert body == {"status": "ok", "database": "ok"}
        login = httpx.get(f"http://127.0.0.1:{port}/", timeout=5, follow_redirects=False)
        assert login.status_code in (302, 303, 307) and "/login" in login.headers["location"]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"mmlr web app at http://127.0.0.1:{port}/ (Ctrl-C to stop)" in out


def test_the_banner_names_an_address_a_browser_can_open() -> None:
    from monitor.service import banner

    assert banner("127.0.0.1", 8000) == "mmlr web app at http://127.0.0.1:8000/"
    assert banner("::1", 8000) == "mmlr web app at http://[::1]:8000/"
    for wildcard in ("0.0.0.0", "::", "[::]"):  # a container's: no browser opens 0.0.0.0
        assert banner(wildcard, 8080) == ("mmlr web app on every address of this machine, "
                                          "port 8080 (here: http://127.0.0.1:8080/)")


def test_count_helper_sees_an_empty_database(ctx) -> None:  # type: ignore[no-untyped-def]
    """Guards the idempotency test above: the counter must see rows where they exist."""
    from store.models import Trial

    assert counts(ctx.settings.db_url)["trials"] == 0
    with ctx.sessions() as s:
        s.add(Trial(name="X", drug="thalidomide", setting="post_asct"))
        s.commit()
    assert counts(ctx.settings.db_url)["trials"] == 1


def _stop(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[str, str]:
    """SIGTERM, then wait; a process that ignores it fails the test with its stacks."""
    proc.terminate()
    return stopped(proc, timeout)


def _wait_for_health(proc: subprocess.Popen[str], port: int,
                     timeout: float = 60) -> httpx.Response:
    """The first answer of ``/api/health`` from the server ``proc`` started on ``port``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
        except httpx.TransportError:
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {proc.communicate()[1]}") from None
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer on port {port} in {timeout:.0f} s") from None
            time.sleep(0.3)


def _wait_for_line(proc: subprocess.Popen[str], fragment: str, timeout: float = 120) -> list[str]:
    """Read stdout until a line contains ``fragment`` (the process must stay alive)."""
    import selectors

    lines: list[str] = []
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(timeout=1):
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            lines.append(line)
            if fragment in line:
                return lines
    raise AssertionError(f"{fragment!r} never printed; got:\n{''.join(lines)}")


@pytest.mark.own_databases
def test_worker_registers_its_jobs_and_stops_on_sigterm(demo_run) -> None:  # type: ignore[no-untyped-def]
    data_dir, db_url, _ = demo_run
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "worker"],
                            env=_env(data_dir, db_url), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_line(proc, "mmlr worker running")
        engine = create_engine(db_url)
        try:
            with engine.connect() as conn:
                jobs = {r[0] for r in conn.execute(text("SELECT id FROM apscheduler_jobs"))}
        finally:
            engine.dispose()
        assert jobs == {"poll-cycle", "digest", "modified-pass"}
    finally:
        out, err = _stop(proc)
    assert proc.returncode == 0, err
    assert "mmlr worker stopped" in out and "Traceback" not in err


@pytest.mark.own_databases
@pytest.mark.parametrize(("command", "signum"), [
    ("worker", signal.SIGTERM), ("worker", signal.SIGINT), ("serve", signal.SIGTERM)],
    ids=["worker-term", "worker-int", "serve-term"])
def test_a_service_stops_when_the_signal_lands_on_another_thread(  # type: ignore[no-untyped-def]
        demo_run, tmp_path: Path, command: str, signum: int) -> None:
    """CPython runs a Python signal handler in the main thread, at its next bytecode. The
    worker's main thread used to sleep in APScheduler's wait for the next cron slot (hours);
    a SIGTERM the kernel handed to another thread then did nothing until that slot. CI saw it
    once (the worker ignored SIGTERM for 60 s); a loop of worker starts, once in ~300.
    `serve` (uvicorn's loop in the main thread, the scheduler in another) is held to the same."""
    data_dir, db_url, _ = demo_run
    go = tmp_path / "go"
    port = free_port()
    args, ready = {
        "worker": (["worker"], "mmlr worker running"),
        "serve": (["serve", "--port", str(port)], f"http://127.0.0.1:{port}/ (Ctrl-C to stop)"),
    }[command]
    proc = mmlr_signalled_from_another_thread(args, signum=signum, go=go,
                                              env=_env(data_dir, db_url))
    try:
        _wait_for_line(proc, ready)
        go.touch()
    finally:
        out, err = stopped(proc)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert command != "worker" or "mmlr worker stopped" in out


def test_readme_demo_command_serves_until_stopped(tmp_path: Path, db_url: str) -> None:
    """`mmlr demo` (what scripts/demo runs): full cycle, then the UI answers; SIGTERM stops it
    cleanly, replay server included."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "demo", "--port", str(port)],
                            env=_env(tmp_path / "data", db_url), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = _wait_for_line(proc, f"http://127.0.0.1:{port}/", timeout=300)
        assert any(line.startswith("digest: ") for line in lines)
        health = _wait_for_health(proc, port)
        assert health.json()["status"] == "ok"
    finally:
        _, err = _stop(proc)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
