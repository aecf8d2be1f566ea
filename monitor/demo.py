"""`mmlr demo`: the whole living review offline, on the embedded defaults.

Writes the synthetic demo corpus (ours, PMIDs from 90000001) into the data dir, serves it with
the E-utilities replay server on loopback, points the monitor at it, runs `init` and one full
cycle, prints where the digest and the web app are, then serves the UI (unless --no-serve).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from store.settings import Settings

log = logging.getLogger(__name__)

#: The demo corpus's create dates start in 2025; the first poll window starts here.
DEMO_POLL_START = "2025/01/01"


def run_demo(settings: Settings, *, serve: bool = True, port: int | None = None) -> int:
    from monitor.bootstrap import initialise
    from monitor.cycle import run_cycle
    from monitor.demo_corpus import write_demo_corpus
    from monitor.replay_server import start_replay_server
    from monitor.service import listening_socket, served_at
    from store.context import make_context

    if serve:
        # The web port is checked first: a port in use used to stop the demo only after the
        # whole cycle, and after it had announced the app at that address.
        listening_socket(settings.host, port or settings.port).close()
    corpus_dir = settings.data_dir / "demo-corpus"
    files = write_demo_corpus(corpus_dir)
    print(f"demo corpus: {len(files)} files of synthetic PubMed XML in {corpus_dir}", flush=True)
    with start_replay_server(corpus_dir) as replay:
        print(f"replay server (offline E-utilities) at {replay.url}", flush=True)
        # The digest's links must lead to the app the demo serves (--port), not the default.
        demo_settings = served_at(settings, None, port).model_copy(
            update={"entrez_url": replay.url, "poll_start": DEMO_POLL_START})
        ctx = make_context(demo_settings)
        try:
            report = initialise(ctx)
            print(report.describe(), flush=True)
            summary = run_cycle(ctx, progress=True)
            print(summary.describe(), flush=True)
        finally:
            ctx.dispose()
        digest_file = newest_digest(demo_settings.outbox_dir)
        if digest_file is not None:
            print(f"digest: {digest_file.resolve()}", flush=True)
        url = f"http://{demo_settings.host}:{port or demo_settings.port}/"
        if not serve:
            print(f"web app: run `mmlr web` and open {url}", flush=True)
            return 0
        from monitor.service import install_sigterm_as_interrupt
        from monitor.service import serve as serve_app

        install_sigterm_as_interrupt()
        print(f"web app: {url} (log in as {demo_settings.admin_email})", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            serve_app(demo_settings, web=True, scheduler=True, port=port)
    return 0


def newest_digest(outbox: Path) -> Path | None:
    files = sorted(outbox.glob("*.html"), key=lambda p: p.stat().st_mtime)
    return files[-1] if files else None
