"""Long-running entry points: `mmlr serve` (web + scheduler), `worker`, `web`.

SIGTERM and SIGINT stop all three the same way, with exit 0: the web server stops accepting
requests and the scheduler shuts down waiting for a running job, a poll stopping after its
current efetch batch. A poll checkpoints after every batch, so even a hard kill loses at most
the batch in flight, and the next run resumes it.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import threading
from typing import TYPE_CHECKING, Any

from store.errors import ConfigError
from store.settings import Settings, is_loopback

if TYPE_CHECKING:  # the poll is imported when a fetch runs, as the scheduler's jobs do
    from monitor.poll import PollSummary
    from store.context import AppContext

log = logging.getLogger(__name__)


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` for uvicorn, or ConfigError in one line.

    Bound here, before anything announces the address: uvicorn would print its own ERROR and
    exit with code 3 after "mmlr web app at …" had already been printed. The address family
    follows uvicorn's own rule (an IPv6 address has a colon).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: no TIME_WAIT wait
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        why, fix = bind_problem(exc, host_flag="--host or MMLR_HOST",
                                port_flag="--port or MMLR_PORT")
        raise ConfigError(f"cannot listen on {host}:{port}: {why}",
                          hint=f"choose another with {fix}") from None
    return sock


def bind_problem(exc: OSError, *, host_flag: str, port_flag: str) -> tuple[str, str]:
    """(why binding failed, the option or setting to change) for a failed ``bind``: the one
    rule of every server mmlr starts, so that a wrong host is never blamed on the port."""
    if exc.errno == errno.EADDRINUSE:
        return "the port is in use by another program", port_flag
    if isinstance(exc, socket.gaierror):
        return "no such host", host_flag
    if exc.errno == errno.EADDRNOTAVAIL:
        return "the address is not one of this machine's", host_flag
    return exc.strerror or str(exc), f"{host_flag} / {port_flag}"


def banner(host: str, port: int) -> str:
    """The line that says where the app is. A wildcard address (``0.0.0.0``, ``::``, as in a
    container) is no address a browser can open: it names where to open it on this machine,
    and that every address of the machine listens."""
    bare = host.strip("[]")
    if bare in ("0.0.0.0", "::"):  # noqa: S104 - recognising the wildcard, not binding to it
        return (f"mmlr web app on every address of this machine, port {port} "
                f"(here: http://127.0.0.1:{port}/)")
    shown = f"[{bare}]" if ":" in bare else bare
    return f"mmlr web app at http://{shown}:{port}/"


def served_at(settings: Settings, host: str | None, port: int | None) -> Settings:
    """``settings`` for an app served on ``host``:``port`` (the command line's, when given):
    with ``MMLR_BASE_URL`` left at its default and a loopback address, the links of digests
    and e-mails lead to this app rather than to the default port. An explicit
    ``MMLR_BASE_URL`` (a proxy's public address) is kept as it is."""
    host, port = host or settings.host, port or settings.port
    if "base_url" in settings.model_fields_set or not is_loopback(host) \
            or (host, port) == (settings.host, settings.port):
        return settings
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    return settings.model_copy(update={"base_url": f"http://{shown}:{port}"})


def fetch_pmids(ctx: AppContext, pmids: list[int], stop: threading.Event) -> PollSummary:
    """The web app's "Fetch from PubMed" (``screening.web.fetch``): `mmlr poll --pmids`,
    ending after the current batch once ``stop`` is set (the app shutting down). Typed, so
    that mypy checks ``PollSummary`` against the page's ``FetchSummary``."""
    from monitor.poll import poll

    return poll(ctx, pmids=pmids, stop=stop)


def serve(
    settings: Settings,
    *,
    web: bool,
    scheduler: bool,
    host: str | None = None,
    port: int | None = None,
) -> None:
    """Run the web app and/or the scheduler until SIGINT/SIGTERM."""
    from apscheduler.events import EVENT_SCHEDULER_STARTED

    settings = served_at(settings, host, port)

    from monitor.scheduler import build_scheduler, default_jobs
    from store.context import make_context

    ctx = make_context(settings)  # fail fast (one line) on a bad database, migrate once
    try:
        # The scheduled cycle screens and pools, and the web app's /summary, /network and
        # /api/network read the analyses file and the prior: fail now, in one line, not at
        # the first run or with a 500 on each of those pages (`mmlr web` checked neither).
        from reports.analyses import check_analyses_file
        from screening.service import check_prior_query

        check_prior_query(ctx)
        check_analyses_file(settings.analyses_file)
    finally:
        ctx.dispose()
    from monitor.signals import stop_signals

    if not web:
        sched = build_scheduler(settings)
        specs = default_jobs(settings).items()
        jobs = ", ".join(f"{job_id} ({spec.cron})" for job_id, spec in specs)

        def _started(_event: Any) -> None:  # after the job store holds the jobs
            log.info("worker started: %s", jobs)
            print(f"mmlr worker running, jobs: {jobs} (UTC); Ctrl-C to stop", flush=True)

        sched.add_listener(_started, EVENT_SCHEDULER_STARTED)
        # The scheduler runs in its own thread; this one sleeps until SIGTERM or SIGINT,
        # whichever thread receives it (monitor/signals.py says why that matters).
        with stop_signals() as wait:
            sched.start()
            received = wait()
            log.info("%s: stopping once the running job ends", received.name)
            stop_scheduler(sched)  # a running poll finishes its batch first
        log.info("worker stopped")
        print("mmlr worker stopped", flush=True)
        return

    import uvicorn

    from screening.web.app import create_app

    sched = build_scheduler(settings) if scheduler else None
    app = create_app(settings, fetch=fetch_pmids)
    config = uvicorn.Config(
        app,
        host=host or settings.host,
        port=port or settings.port,
        log_level="warning",
        access_log=False,
    )
    sock = listening_socket(config.host, config.port)  # before the scheduler and the banner
    # uvicorn handles SIGINT/SIGTERM itself (it finishes open requests), then raises the signal
    # again for the handler it found. The default one ended the process right there, exit -15,
    # before the scheduler below could wait for its running job (a poll stopped mid-batch);
    # stop_signals' handler lets the shutdown go on, and a second signal does not cut it short.
    with sock, stop_signals():  # the socket is closed however the server ends
        server = uvicorn.Server(config)
        if sched is not None:
            sched.start()
        print(f"{banner(config.host, config.port)} (Ctrl-C to stop)", flush=True)
        try:
            server.run(sockets=[sock])
        finally:
            if sched is not None:
                stop_scheduler(sched)
    log.info("web app stopped")


def stop_scheduler(sched: Any) -> None:
    """Shut the scheduler down once its running job has ended: a poll stops after its current
    batch (checkpointed; the next run resumes it), the other jobs finish."""
    from monitor.poll import SHUTDOWN

    SHUTDOWN.set()
    try:
        sched.shutdown(wait=True)
    finally:
        SHUTDOWN.clear()  # the process may go on (an in-process caller) and poll again


def install_sigterm_as_interrupt() -> None:
    """Turn SIGTERM into KeyboardInterrupt so `finally` blocks checkpoint and clean up."""

    def _raise(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise)
