"""Long-running entry points: `mmlr serve` (web + scheduler), `worker`, `web`."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from store.settings import Settings

log = logging.getLogger(__name__)

JOBS: dict[str, str] = {
    # job id -> "module:function"; the cron of each comes from the settings
    "poll-cycle": "monitor.cycle:scheduled_cycle",
    "digest": "monitor.cycle:scheduled_digest",
    "modified-pass": "monitor.poll:scheduled_modified_pass",
}


def start_scheduler(settings: Settings, *, blocking: bool) -> Any:
    from monitor.scheduler import build_scheduler

    scheduler = build_scheduler(settings, blocking=blocking)
    return scheduler


def serve(
    settings: Settings,
    *,
    web: bool,
    scheduler: bool,
    host: str | None = None,
    port: int | None = None,
    on_ready: Any = None,
) -> None:
    """Run the web app and/or the scheduler until SIGINT/SIGTERM."""
    from store.context import make_context

    make_context(settings).dispose()  # fail fast (one line) on a bad database, migrate once
    if not web:
        sched = start_scheduler(settings, blocking=True)
        log.info("worker started: jobs %s", ", ".join(JOBS))
        print("mmlr worker running; Ctrl-C to stop", flush=True)
        sched.start()  # blocks; BlockingScheduler handles SIGINT/SIGTERM via KeyboardInterrupt
        return

    import uvicorn

    from screening.web.app import create_app

    sched = start_scheduler(settings, blocking=False) if scheduler else None
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host or settings.host,
        port=port or settings.port,
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    if sched is not None:
        sched.start()
    url = f"http://{config.host}:{config.port}/"
    print(f"mmlr web app at {url} (Ctrl-C to stop)", flush=True)
    if on_ready is not None:
        threading.Thread(target=on_ready, args=(url,), daemon=True).start()
    try:
        server.run()
    finally:
        if sched is not None:
            sched.shutdown(wait=True)  # lets a running job finish its batch
    log.info("web app stopped")


def install_sigterm_as_interrupt() -> None:
    """Turn SIGTERM into KeyboardInterrupt so `finally` blocks checkpoint and clean up."""

    def _raise(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise)
