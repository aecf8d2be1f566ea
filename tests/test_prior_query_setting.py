"""MMLR_QUERY and the keyword prior: an unreadable query stops what needs the prior with one
line, and nothing else (docs/curation.md, "The keyword prior")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import assert_one_line_error, cli_env, free_port, run_cli
from sqlmodel import select
from test_screening_service import _add_seeds, _load_corpus

from monitor.demo import DEMO_POLL_START
from monitor.demo_corpus import write_demo_corpus
from monitor.poll import poll
from monitor.replay_server import start_replay_server
from screening.service import check_prior_query, screen
from store.context import make_context
from store.errors import ValidationError
from store.models import ModelVersion

#: PubMed reads this (an author field and proximity); the prior's gate reader cannot.
UNREADABLE = 'myeloma[tiab] AND smith[au] AND "maintenance therapy"[tiab:~2]'


def test_cli_screen_with_an_unreadable_query_is_one_line(tmp_path: Path) -> None:
    proc = run_cli("screen", env=cli_env(MMLR_DATA_DIR=str(tmp_path), MMLR_QUERY=UNREADABLE))
    assert_one_line_error(proc, "MMLR_QUERY: cannot evaluate the PubMed query",
                          "field tag [au] is not supported at character 24",
                          "PubMed may accept this query, but the keyword prior cannot")


def test_cli_run_checks_the_query_before_polling(tmp_path: Path) -> None:
    # nothing listens on port 9: had `run` polled first it would fail on the connection
    proc = run_cli("run", env=cli_env(MMLR_DATA_DIR=str(tmp_path), MMLR_QUERY=UNREADABLE,
                                      MMLR_ENTREZ_URL="http://127.0.0.1:9/entrez/eutils/",
                                      MMLR_ENTREZ_MAX_RETRIES="0"))
    assert_one_line_error(proc, "MMLR_QUERY", "[au]")
    assert "cannot reach E-utilities" not in proc.stderr


@pytest.mark.parametrize("command", ["worker", "web"])
def test_cli_worker_and_web_refuse_to_start_with_an_unreadable_query(
        tmp_path: Path, command: str) -> None:
    # without the start-up check the worker would run (and fail at every scheduled cycle), and
    # `web` served, with a 500 on /summary, /network and /api/network
    proc = run_cli(command, env=cli_env(MMLR_DATA_DIR=str(tmp_path), MMLR_QUERY=UNREADABLE,
                                        MMLR_PORT=str(free_port())), timeout=60)
    assert_one_line_error(proc, "MMLR_QUERY", "[au]")


def test_poll_sends_a_query_the_prior_cannot_read(tmp_path: Path, settings: Any) -> None:
    corpus = tmp_path / "corpus"
    write_demo_corpus(corpus)
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(settings.model_copy(update={
            "entrez_url": srv.url, "poll_start": DEMO_POLL_START, "query": UNREADABLE,
            "entrez_rate": 50.0}))
        try:
            summary = poll(ctx, backoff_base=0.001)
            assert summary.new > 0
            with pytest.raises(ValidationError, match="MMLR_QUERY"):
                check_prior_query(ctx)  # the cold start still needs the prior...
            with pytest.raises(ValidationError, match="MMLR_QUERY"):
                screen(ctx)  # ...and screening says so before training or scoring anything
            with ctx.sessions() as session:
                assert session.exec(select(ModelVersion)).first() is None
        finally:
            ctx.dispose()


def test_a_trained_classifier_does_not_need_the_query(ctx: Any, tmp_path: Path) -> None:
    corpus = _load_corpus(ctx, tmp_path)
    _add_seeds(ctx, sorted(p for p, eligible in corpus.items() if eligible)[:5])
    assert screen(ctx).model_name == "mmlr-default"
    unreadable = make_context(ctx.settings.model_copy(update={"query": UNREADABLE}))
    try:
        check_prior_query(unreadable)  # no error: the prior no longer scores
        summary = screen(unreadable, force_retrain=True)
        assert summary.trained and summary.model_name == "mmlr-default"
    finally:
        unreadable.dispose()
