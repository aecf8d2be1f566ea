"""What a poll refuses before it fetches or stores anything: a bad PMID file, dates PubMed
cannot have. Each refusal is one line and leaves no poll run behind (a half-stored run would be
resumed, and fail, by every later poll)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import assert_one_line_error, cli_env, run_cli
from sqlmodel import Session, create_engine, select

from store.models import PollRun


def _no_runs(data_dir: Path) -> None:
    db = data_dir / "mmlr.sqlite3"
    if not db.exists():
        return  # refused before the database was even opened
    engine = create_engine(f"sqlite:///{db}")
    try:
        with Session(engine) as session:
            assert session.exec(select(PollRun)).all() == []
    finally:
        engine.dispose()


@pytest.mark.parametrize(("content", "shown"), [
    (b"28826616\n99999999999999999999999\n", "'99999999999999999999999' is not a PMID"),
    ("28826616\n\u00b2\n".encode(), "'\u00b2' is not a PMID"),  # isdigit() is True for it
    (b"0\n", "'0' is not a PMID"),
    (b"28826616\n\xff\xfe\n", "is not UTF-8 text"),
    (b"", "lists no PMID (UTF-8 text, PMIDs as digits, one or more a line separated by "
          "spaces or commas; # starts a comment)"),
    (b"# the trials of 2026\n\n   \n", "lists no PMID"),  # comments and blanks only
])
def test_a_bad_pmid_file_is_refused_before_anything_is_stored(
        tmp_path: Path, content: bytes, shown: str) -> None:
    pmids = tmp_path / "pmids.txt"
    pmids.write_bytes(content)
    data = tmp_path / "d"
    # A closed port: were anything fetched, the error would be a different one.
    env = cli_env(MMLR_DATA_DIR=str(data), MMLR_ENTREZ_URL="http://127.0.0.1:9/eutils/")
    proc = run_cli("poll", "--pmids", str(pmids), env=env)
    assert_one_line_error(proc, shown)
    _no_runs(data)


@pytest.mark.parametrize(("url", "port"), [
    ("http://127.0.0.1:abc/", "abc"),  # httpx: "Invalid port", an internal error
    ("http://127.0.0.1:99999/", "99999"),  # both loaded: the first poll failed
    ("http://127.0.0.1:0/", "0"),
])
def test_an_entrez_url_with_a_bad_port_is_refused_before_the_poll(
        tmp_path: Path, url: str, port: str) -> None:
    pmids = tmp_path / "pmids.txt"
    pmids.write_text("28826616\n")
    data = tmp_path / "d"
    proc = run_cli("poll", "--pmids", str(pmids),
                   env=cli_env(MMLR_DATA_DIR=str(data), MMLR_ENTREZ_URL=url))
    assert_one_line_error(
        proc, f"mmlr: error: invalid setting MMLR_ENTREZ_URL: has an invalid port {port!r}: "
              "a port is a whole number from 1 to 65535, e.g. http://127.0.0.1:8080/ or "
              "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/")
    _no_runs(data)


def test_a_pmid_file_that_is_a_folder_is_named(tmp_path: Path) -> None:
    proc = run_cli("poll", "--pmids", str(tmp_path), env=cli_env(MMLR_DATA_DIR=str(tmp_path / "d")))
    assert_one_line_error(proc, f"PMID file {tmp_path} is not a file")


def test_a_pmid_file_name_too_long_is_one_line(tmp_path: Path) -> None:
    # Path.exists() raised ENAMETOOLONG: an internal error
    pmids = tmp_path / f"{'a' * 300}.txt"
    data = tmp_path / "d"
    proc = run_cli("poll", "--pmids", str(pmids), env=cli_env(MMLR_DATA_DIR=str(data)))
    assert_one_line_error(proc, f"mmlr: error: PMID file {pmids} cannot be read: File name too "
                                "long")
    _no_runs(data)


def test_until_after_today_is_refused_before_the_poll(tmp_path: Path) -> None:
    data = tmp_path / "d"
    env = cli_env(MMLR_DATA_DIR=str(data), MMLR_ENTREZ_URL="http://127.0.0.1:9/eutils/")
    assert run_cli("init", env=env).returncode == 0
    proc = run_cli("poll", "--until", "2062-12-01", env=env)
    # a usage error, exit 2 as README says (it was 1, as for a failure), with the fix
    assert_one_line_error(proc, "--until 2062-12-01 is after today",
                          "leave --until out to poll up to today", code=2)
    _no_runs(data)


def test_a_window_after_today_is_refused_before_an_unfinished_run_is_resumed(
        tmp_path: Path) -> None:
    data = tmp_path / "d"
    # A closed port and no retries: the first poll fails at once and leaves its run
    # unfinished, which every later poll resumes first.
    env = cli_env(MMLR_DATA_DIR=str(data), MMLR_ENTREZ_URL="http://127.0.0.1:9/eutils/",
                  MMLR_ENTREZ_MAX_RETRIES="0")
    pmids = tmp_path / "pmids.txt"
    pmids.write_text("28826616\n")
    first = run_cli("poll", "--pmids", str(pmids), env=env).stderr
    assert "cannot reach E-utilities" in first and "(after 1 attempt)" in first  # not "attempts"
    # The wrong window is what the user must hear of, not NCBI being out of reach.
    proc = run_cli("poll", "--since", "2062-12-01", env=env)
    assert_one_line_error(proc, "poll window starts 2062-12-01 after it ends",
                          "check --since/--until", code=2)


def test_dates_with_a_pmid_list_are_refused_not_ignored(tmp_path: Path) -> None:
    pmids = tmp_path / "pmids.txt"
    pmids.write_text("28826616\n")
    data = tmp_path / "d"
    env = cli_env(MMLR_DATA_DIR=str(data), MMLR_ENTREZ_URL="http://127.0.0.1:9/eutils/")
    proc = run_cli("poll", "--pmids", str(pmids), "--since", "2025-01-01", env=env)
    # options that do not go together: a usage error, exit 2 (it was 1, as for a failure)
    assert_one_line_error(proc, "--since/--until do not apply to a PMID list (--pmids)",
                          code=2)
    _no_runs(data)


def test_a_window_that_ends_before_it_starts_is_a_usage_error(tmp_path: Path) -> None:
    """--since after --until: options that do not go together, exit 2 (it was 1)."""
    data = tmp_path / "d"
    env = cli_env(MMLR_DATA_DIR=str(data), MMLR_ENTREZ_URL="http://127.0.0.1:9/eutils/")
    proc = run_cli("poll", "--since", "2025-06-01", "--until", "2025-01-01", env=env)
    assert_one_line_error(proc, "poll window starts 2025-06-01 after it ends 2025-01-01",
                          "check --since/--until", code=2)
    _no_runs(data)


def test_dates_before_pubmed_are_a_usage_error(tmp_path: Path) -> None:
    proc = run_cli("poll", "--since", "0001-01-01", "--until", "0001-01-02",
                   env=cli_env(MMLR_DATA_DIR=str(tmp_path)))
    assert proc.returncode == 2
    assert "is before 1900-01-01: PubMed has no records created then" in proc.stderr


def test_a_pmid_file_starting_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    # As Notepad and Excel save UTF-8: the mark made the first PMID '\ufeff20099675', refused
    from monitor.cli import _read_pmid_file

    pmids = tmp_path / "pmids.txt"
    pmids.write_bytes(b"\xef\xbb\xbf20099675\r\n28826616\r\n")
    assert _read_pmid_file(pmids) == [20099675, 28826616]
    # only a leading mark is one: elsewhere U+FEFF is still not part of a PMID
    pmids.write_bytes("20099675\n\ufeff28826616\n".encode())
    proc = run_cli("poll", "--pmids", str(pmids), env=cli_env(MMLR_DATA_DIR=str(tmp_path / "d")))
    assert_one_line_error(proc, f"{pmids}:2", "is not a PMID")


@pytest.mark.parametrize(("query", "shown"), [
    # sent as "() AND 2026/08/27:2026/12/05[crdt]" by `mmlr poll` and the modified pass
    ("", "invalid setting MMLR_QUERY: is empty: leave MMLR_QUERY unset for the protocol query"),
    ("   ", "invalid setting MMLR_QUERY: is empty"),
    ('(myeloma[tiab] AND maintenance[tiab]', "invalid setting MMLR_QUERY: has a '(' at "
     "character 1 that is never closed: unbalanced parentheses"),
    ('myeloma[tiab]) AND (maintenance[tiab]', "invalid setting MMLR_QUERY: has a ')' at "
     "character 14 with no '(' before it: unbalanced parentheses"),
    ('myeloma[tiab] AND "phase III[tiab]', "invalid setting MMLR_QUERY: has a double quote at "
     "character 19 that is never closed: unbalanced quotes"),
])
@pytest.mark.parametrize("modified", [False, True])
def test_an_empty_or_unbalanced_query_is_refused_before_anything_is_sent(
        tmp_path: Path, query: str, shown: str, modified: bool) -> None:
    from monitor.replay_server import start_replay_server

    data = tmp_path / "d"
    (tmp_path / "corpus").mkdir()
    with start_replay_server(tmp_path / "corpus", rate_limit=None) as srv:
        env = cli_env(MMLR_DATA_DIR=str(data), MMLR_ENTREZ_URL=srv.url, MMLR_QUERY=query,
                      MMLR_ENTREZ_EMAIL="tests@example.org")
        proc = run_cli("poll", *(["--modified"] if modified else []), env=env)
        assert_one_line_error(proc, shown)
        assert srv.stats.total == 0  # nothing asked of E-utilities
    _no_runs(data)


@pytest.mark.parametrize("query", [
    "myeloma",
    '("Multiple Myeloma"[Mesh] OR myeloma[tiab]) AND ("phase III"[tiab] OR randomi*[tiab])',
    '"drug (brand name)"[tiab] AND myeloma[tiab]',  # parentheses in a phrase are its text
    '(myeloma[tiab] AND maintenence[tiab]) AND ("phase IIII"[tiab] OR randomized[tiab])',
    'myeloma[tiab] AND smith[au] AND "maintenance therapy"[tiab:~2]',
])
def test_balanced_queries_load(query: str) -> None:
    from store.settings import PROTOCOL_QUERY, Settings

    assert Settings(query=query).query == query  # kept as written (the search log compares)
    assert Settings().query == PROTOCOL_QUERY
