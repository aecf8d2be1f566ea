"""A query term PubMed does not know: NCBI leaves it out and searches the rest (a 200 answer
naming it in ``ErrorList``/``WarningList``, ENTREZ.md §2.1), which may widen the search. The
poll does not stop (docs/operations.md, "The protocol query"), but says so: a WARNING naming
the terms, the summary line, the poll run, and ``mmlr status``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from conftest import cli_env, run_cli
from sqlmodel import col, select
from test_poll import make_settings, wipe, write_scenario

from monitor.poll import poll
from monitor.replay_server import start_replay_server
from store.context import make_context
from store.models import PollRun

QUERY = '(myeloma[tiab] AND maintenence[tiab]) AND ("phase IIII"[tiab] OR randomized[tiab])'
DROPPED = ["maintenence[tiab] (phrase not found)", '"phase IIII"[tiab] (quoted phrase not found)']


def test_terms_pubmed_dropped_are_warned_kept_on_the_run_and_shown_by_status(
        tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    corpus = tmp_path / "corpus"
    write_scenario(corpus, 1)
    with start_replay_server(corpus, rate_limit=None) as srv:
        srv.set_unknown_phrases(["maintenence[tiab]", '"phase IIII"[tiab]'])
        settings = make_settings(tmp_path, db_url, srv.url, query=QUERY)
        ctx = make_context(settings)
        wipe(ctx)
        with caplog.at_level(logging.INFO, logger="monitor.poll"):
            summary = poll(ctx, backoff_base=0.001)
        # the search ran (NCBI searched the rest): the records were fetched
        assert summary.new > 0 and summary.dropped_terms == DROPPED
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warned) == 1 and all(term in warned[0] for term in DROPPED), warned
        assert ("PubMed searched without what it does not know in MMLR_QUERY: "
                + ", ".join(DROPPED)) in summary.describe()
        with ctx.sessions() as session:
            run = session.exec(select(PollRun).where(PollRun.kind == "crdt")
                               .order_by(col(PollRun.id).desc())).first()
            assert run is not None and run.status == "completed"
            assert run.dropped_terms == DROPPED
        env = cli_env(MMLR_DATA_DIR=str(settings.data_dir), MMLR_DATABASE_URL=settings.db_url)
        text = run_cli("status", env=env).stdout
        line = next(row for row in text.splitlines() if row.startswith("last poll"))
        assert line.endswith("; searched without what PubMed does not know in MMLR_QUERY: "
                             + ", ".join(DROPPED)), line
        report = json.loads(run_cli("status", "--json", env=env).stdout)
        assert report["poll"]["dropped_terms"] == DROPPED

        # The query corrected: the next poll searches all of it, and says nothing.
        srv.set_unknown_phrases(None)
        again = poll(ctx, backoff_base=0.001)
        assert again.dropped_terms == [] and "does not know" not in again.describe()
        report = json.loads(run_cli("status", "--json", env=env).stdout)
        assert report["poll"]["dropped_terms"] == []
        ctx.dispose()
