"""The E-utilities replay server: indexing, esearch/efetch/epost, 9,999 cap, rate limit, faults."""

from __future__ import annotations

import gzip
import json
import logging
import re
import signal
import socket
import struct
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import (
    assert_one_line_error,
    cli_env,
    free_port,
    mmlr_signalled_from_another_thread,
    run_cli,
    stopped,
)

from monitor.faults import parse_fault_spec
from monitor.pubmed_xml import iter_records
from monitor.records import DeletedCitation, ParsedRecord
from monitor.replay_server import (
    parse_date_ranges,
    start_replay_server,
    synthetic_article,
    write_article_set,
)
from store.errors import ValidationError


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    write_article_set(root / "a.xml", [
        synthetic_article(101, created=date(2025, 1, 5)),
        synthetic_article(102, created=date(2025, 1, 20)),
        synthetic_article(103, created=date(2025, 2, 3), status="In-Process"),
    ])
    write_article_set(root / "sub" / "b.xml.gz", [
        synthetic_article(104, created=date(2025, 3, 1)),
    ], deleted=(105,))
    (root / "notes.xml").write_text("<eSearchResult><Count>1</Count></eSearchResult>")
    (root / "broken.xml").write_text("<PubmedArticleSet><PubmedArticle>")
    (root / "readme.txt").write_text("not xml")
    return root


def _post(url: str, endpoint: str, **params: object) -> httpx.Response:
    return httpx.post(url + f"{endpoint}.fcgi", data={"db": "pubmed", **params}, timeout=5)


def test_indexes_xml_and_gz_recursively_and_skips_other_files(corpus: Path) -> None:
    with start_replay_server(corpus) as srv:
        assert sorted(srv.corpus.records) == [101, 102, 103, 104]
        assert srv.corpus.deleted == {105}
        skipped = {Path(p).name for p in srv.corpus.skipped_files}
        assert skipped == {"notes.xml", "broken.xml"}
        assert srv.url.startswith("http://127.0.0.1:") and srv.url.endswith("/entrez/eutils/")


def test_esearch_crdt_window_count_and_headers(corpus: Path) -> None:
    with start_replay_server(corpus, rate_limit=None) as srv:
        resp = httpx.get(srv.url + "esearch.fcgi", params={
            "db": "pubmed", "term": "myeloma AND 2025/01/01:2025/01/31[crdt]", "retmax": 100})
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "text/xml; charset=UTF-8"
        assert resp.headers["x-ratelimit-limit"] == "0"  # unlimited in this test
        assert "<Count>2</Count>" in resp.text
        assert "<Id>102</Id>" in resp.text and "<Id>101</Id>" in resp.text
        assert resp.text.index("<Id>102</Id>") < resp.text.index("<Id>101</Id>")  # newest first
        # month / year precision, edat and datetype+mindate/maxdate
        assert "<Count>3</Count>" in _post(srv.url, "esearch", term="x 2025/01:2025/02[crdt]").text
        assert "<Count>4</Count>" in _post(srv.url, "esearch", term="x 2025:2025[edat]").text
        text = _post(srv.url, "esearch", term="x", datetype="crdt", mindate="2025/03/01",
                     maxdate="2025/12/31").text
        assert "<Count>1</Count>" in text and "<Id>104</Id>" in text
        empty = _post(srv.url, "esearch", term="x 2024/01/01:2024/12/31[crdt]").text
        assert "<Count>0</Count>" in empty and "No items found." in empty


def test_esearch_mdat_window_follows_date_revised(tmp_path: Path) -> None:
    root = tmp_path / "v1"
    write_article_set(root / "a.xml", [
        synthetic_article(201, created=date(2025, 1, 5)),  # DateRevised = created
        synthetic_article(202, created=date(2025, 1, 6), revised=date(2025, 6, 1)),
    ])
    # no DateRevised: DateCompleted, else the create date
    bare = synthetic_article(203, created=date(2025, 2, 1)).replace(
        b"<DateRevised><Year>2025</Year><Month>02</Month><Day>01</Day></DateRevised>",
        b"<DateCompleted><Year>2025</Year><Month>03</Month><Day>09</Day></DateCompleted>")
    bare_crdt = synthetic_article(204, created=date(2025, 2, 2)).replace(
        b"<DateRevised><Year>2025</Year><Month>02</Month><Day>02</Day></DateRevised>", b"")
    write_article_set(root / "b.xml", [bare, bare_crdt])
    later = tmp_path / "v2"
    write_article_set(later / "a.xml", [
        synthetic_article(201, created=date(2025, 1, 5), revised=date(2025, 7, 4),
                          comments=(("RetractionIn", 299),)),
    ])

    def ids(srv: Any, term: str, **extra: str) -> list[int]:
        text = _post(srv.url, "esearch", term=term, retmax=100, **extra).text
        return sorted(int(i) for i in re.findall(r"<Id>(\d+)</Id>", text))

    with start_replay_server(root, rate_limit=None) as srv:
        assert {p: r.mdat for p, r in srv.corpus.records.items()} == {
            201: date(2025, 1, 5), 202: date(2025, 6, 1), 203: date(2025, 3, 9),
            204: date(2025, 2, 2)}
        assert ids(srv, "q AND 2025/06/01:2025/06/30[mdat]") == [202]
        assert ids(srv, "q AND 2025/01:2025/03[modification date]") == [201, 203, 204]
        assert ids(srv, "q", datetype="mdat", mindate="2025/03/01", maxdate="2025/12/31") == [
            202, 203]
        # crdt and mdat ranges intersect
        assert ids(srv, "q AND 2025/01:2025/01[crdt] AND 2025/06:2025/06[mdat]") == [202]
        # test hook: a per-PMID override that survives a reload
        srv.set_modified({201: date(2025, 6, 15)})
        srv.reload()
        assert ids(srv, "q AND 2025/06/01:2025/06/30[mdat]") == [201, 202]
        srv.set_modified(None)
        assert ids(srv, "q AND 2025/06/01:2025/06/30[mdat]") == [202]
        # serve another directory: the later version of 201
        srv.reload(later)
        assert srv.directory == later
        assert ids(srv, "q AND 2025/07/01:2025/07/31[mdat]") == [201]
        body = _post(srv.url, "efetch", id="201").content
        assert b'RefType="RetractionIn"' in body
        with pytest.raises(ValidationError, match="is not a directory"):
            srv.reload(tmp_path / "missing")
        assert srv.directory == later


def test_parse_date_ranges() -> None:
    assert parse_date_ranges("(q) AND 2025/1/2:2025/02[crdt]") == [
        ("crdt", date(2025, 1, 2), date(2025, 2, 28))]
    assert parse_date_ranges("q 2024:2024[pdat]") == []
    assert parse_date_ranges("(q) AND 2025/03/01:2025/03/08[mdat]") == [
        ("mdat", date(2025, 3, 1), date(2025, 3, 8))]


def test_esearch_9999_cap(tmp_path: Path) -> None:
    write_article_set(tmp_path / "c" / "a.xml", [synthetic_article(1, created=date(2025, 1, 1))])
    with start_replay_server(tmp_path / "c", rate_limit=None) as srv:
        text = _post(srv.url, "esearch", term="x", retmax=20000).text
        assert "Restrictions achieved. start and count adjusted to 0, 9999" in text
        text = _post(srv.url, "esearch", term="x", retstart=15000, retmax=10).text
        assert "<ERROR>Search Backend failed: Exception:\nPosition 15000 is out of acceptable " \
               "range [9999,9998]</ERROR>" in text


def test_history_efetch_and_epost(corpus: Path) -> None:
    with start_replay_server(corpus, rate_limit=None) as srv:
        text = _post(srv.url, "esearch", term="x", usehistory="y", retmax=0).text
        webenv = text.split("<WebEnv>")[1].split("</WebEnv>")[0]
        assert "<QueryKey>1</QueryKey>" in text and webenv.startswith("MCID_")
        page = _post(srv.url, "efetch", WebEnv=webenv, query_key=1, retstart=1, retmax=2)
        pmids = [r.pmid for r in iter_records(page.content)]
        assert pmids == [103, 102]
        out = _post(srv.url, "efetch", WebEnv=webenv, query_key=1, retstart=9, retmax=1)
        assert out.status_code == 400 and "OUT OF RANGE" in out.text
        unknown = _post(srv.url, "efetch", WebEnv="MCID_nope", query_key=1)
        assert unknown.status_code == 400 and "Unable to obtain query #1" in unknown.text
        posted = _post(srv.url, "epost", id="101,104,abc")
        assert "Some IDs have invalid value" in posted.text
        webenv2 = posted.text.split("<WebEnv>")[1].split("</WebEnv>")[0]
        got = _post(srv.url, "efetch", WebEnv=webenv2, query_key=1, retmax=10)
        assert sorted(r.pmid for r in iter_records(got.content)) == [101, 104]
        assert "Empty ID list" in _post(srv.url, "epost", id="").text


def test_efetch_id_lists_get_and_post(corpus: Path) -> None:
    with start_replay_server(corpus, rate_limit=None) as srv:
        # "²" is no id (it passed str.isdigit and failed int(): the server answered 500)
        get = httpx.get(srv.url + "efetch.fcgi", params={"db": "pubmed", "id": "101,999,²,105"})
        assert get.status_code == 200
        items = list(iter_records(get.content))
        assert [i.pmid for i in items if isinstance(i, ParsedRecord)] == [101]
        assert [i.pmid for i in items if isinstance(i, DeletedCitation)] == [105]
        post = _post(srv.url, "efetch", id="104,102")
        assert [r.pmid for r in iter_records(post.content)] == [104, 102]
        # the stored bytes are served: the title survives byte for byte
        assert b"Synthetic record 104" in post.content
        empty = _post(srv.url, "efetch", id="999")
        assert list(iter_records(empty.content)) == []
        assert b"<PubmedArticleSet>" in empty.content
        assert srv.stats.requests["efetch"] == 3


def test_removed_pmids_are_left_out_as_ncbi_does(corpus: Path, pubmed_dir: Path) -> None:
    # The real answer NCBI gave for a PMID it has no record of (ENTREZ.md §2.2).
    real_empty = (pubmed_dir / "efetch_xml" / "metapub" / "pmid_xml" / "37909814.xml").read_bytes()
    with start_replay_server(corpus, rate_limit=None) as srv:
        assert _post(srv.url, "efetch", id="999").content == real_empty
        srv.set_removed({102, 105})
        srv.reload()  # the removal survives a reload
        # left out of a list, no DeleteCitation (even for 105, which the corpus deletes)
        items = list(iter_records(_post(srv.url, "efetch", id="101,102,105").content))
        assert [(type(i).__name__, i.pmid) for i in items] == [("ParsedRecord", 101)]
        # asked for alone: byte for byte the real empty answer
        assert _post(srv.url, "efetch", id="102").content == real_empty
        # and no search finds it any more
        text = _post(srv.url, "esearch", term="x 2025/01/01:2025/01/31[crdt]").text
        assert "<Count>1</Count>" in text and "<Id>102</Id>" not in text
        srv.set_removed(None)
        assert [r.pmid for r in iter_records(_post(srv.url, "efetch", id="102").content)] == [102]


def test_outside_query_pmids_are_fetched_but_never_found(corpus: Path) -> None:
    with start_replay_server(corpus, rate_limit=None) as srv:
        srv.set_outside_query([101])
        text = _post(srv.url, "esearch", term="x 2025/01/01:2025/01/31[crdt]").text
        assert "<Count>1</Count>" in text and "<Id>101</Id>" not in text
        assert [r.pmid for r in iter_records(_post(srv.url, "efetch", id="101").content)] == [101]
        srv.set_outside_query(None)
        assert "<Count>2</Count>" in _post(srv.url, "esearch",
                                           term="x 2025/01/01:2025/01/31[crdt]").text


def test_omit_fault_leaves_the_last_record_out_of_one_efetch(corpus: Path) -> None:
    with start_replay_server(corpus, rate_limit=None, faults="omit@1,omit@2") as srv:
        # an esearch is answered whole: only an article set can leave a record out
        assert "<Count>4</Count>" in _post(srv.url, "esearch", term="x 2025:2025[crdt]").text
        partial = _post(srv.url, "efetch", id="101,103,104")
        assert partial.status_code == 200
        assert [r.pmid for r in iter_records(partial.content)] == [101, 103]  # well-formed
        whole = _post(srv.url, "efetch", id="101,103,104")
        assert [r.pmid for r in iter_records(whole.content)] == [101, 103, 104]
        assert srv.stats.faults == {"omit": 2}


def test_empty_fault_answers_an_efetch_with_no_record(corpus: Path) -> None:
    with start_replay_server(corpus, rate_limit=None, faults="empty@1,empty@2") as srv:
        # an esearch is answered whole: only an article set can be empty
        assert "<Count>4</Count>" in _post(srv.url, "esearch", term="x 2025:2025[crdt]").text
        empty = _post(srv.url, "efetch", id="101,103,104")
        assert empty.status_code == 200 and b"<PubmedArticleSet>" in empty.content
        assert list(iter_records(empty.content)) == []  # well-formed, and empty
        whole = _post(srv.url, "efetch", id="101,103,104")
        assert [r.pmid for r in iter_records(whole.content)] == [101, 103, 104]
        assert srv.stats.faults == {"empty": 2}


def test_wrong_db_and_unknown_endpoint(corpus: Path) -> None:
    with start_replay_server(corpus, rate_limit=None) as srv:
        assert "Invalid db name specified: gds" in httpx.get(
            srv.url + "esearch.fcgi", params={"db": "gds", "term": "x"}).text
        assert httpx.get(srv.url + "einfo.fcgi").status_code == 404


def test_rate_limit_answers_ncbi_429(corpus: Path) -> None:
    with start_replay_server(corpus) as srv:
        codes = [_post(srv.url, "esearch", term="x").status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and 429 in codes[3:]
        resp = _post(srv.url, "esearch", term="x")
        assert resp.status_code == 429
        body = json.loads(resp.text)
        assert body["error"] == "API rate limit exceeded" and body["limit"] == "3"
        assert body["api-key"] == "127.0.0.1"
        assert srv.stats.max_rate > 3 and srv.stats.rate_limited >= 2
        time.sleep(1.05)
        # with an API key the limit is 10 per second
        codes = [_post(srv.url, "esearch", term="x", api_key="K").status_code for _ in range(8)]
        assert set(codes) == {200}


def test_fault_spec_parsing() -> None:
    plan = parse_fault_spec("429@3,500@7,timeout@9,truncate@11,error200@13,reset@15,slow@2")
    assert plan.fixed == {3: "429", 7: "500", 9: "timeout", 11: "truncate", 13: "error200",
                          15: "reset", 2: "slow"}
    assert [plan.next()[1] for _ in range(4)] == [None, "slow", "429", None]
    # "500@²": str.isdigit took it and int() did not, a ValueError instead of the message
    for bad in ("429", "boom@2", "500@0", "500@x", "500@²", "random:2", "random:x",
                "500@1,429@1"):
        with pytest.raises(ValidationError):
            parse_fault_spec(bad)
    a, b = parse_fault_spec("random:0.5", seed=4), parse_fault_spec("random:0.5", seed=4)
    assert [a.next() for _ in range(30)] == [b.next() for _ in range(30)]
    assert any(k for _, k in (parse_fault_spec("random:0.5", seed=1).next() for _ in range(30)))


def test_each_fault_kind_is_served(corpus: Path) -> None:
    spec = "429@1,500@2,503@3,truncate@4,error200@5,reset@6,timeout@7,slow@8"
    with start_replay_server(corpus, faults=spec, rate_limit=None, hold_seconds=0.6,
                             slow_seconds=0.2, retry_after=2) as srv:
        r = _post(srv.url, "esearch", term="x")
        assert r.status_code == 429 and r.headers["retry-after"] == "2"
        assert _post(srv.url, "esearch", term="x").status_code == 500
        assert _post(srv.url, "esearch", term="x").status_code == 503
        truncated = _post(srv.url, "efetch", id="101,102")
        assert truncated.status_code == 200 and not truncated.content.rstrip().endswith(
            b"</PubmedArticleSet>")
        err = _post(srv.url, "esearch", term="x")
        assert err.status_code == 200 and "<ERROR>" in err.text
        with pytest.raises(httpx.TransportError):
            _post(srv.url, "esearch", term="x")
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(srv.url + "esearch.fcgi", data={"term": "x"}, timeout=0.2)
        started = time.monotonic()
        slow = _post(srv.url, "esearch", term="x")
        assert slow.status_code == 200 and time.monotonic() - started >= 0.2
        assert _post(srv.url, "esearch", term="x").status_code == 200
        assert srv.stats.faults == {"429": 1, "500": 1, "503": 1, "truncate": 1,
                                    "error200": 1, "reset": 1, "timeout": 1, "slow": 1}


def _wait_for_record(caplog: pytest.LogCaptureFixture, fragment: str,
                     timeout: float = 10.0) -> logging.LogRecord | None:
    """The server logs from its request thread; give it time to get there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in caplog.records:
            if record.name == "monitor.replay_server" and fragment in record.getMessage():
                return record
        time.sleep(0.02)
    return None


def test_client_hanging_up_mid_answer_is_logged_at_debug_not_printed(
    corpus: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger="monitor.replay_server")
    with start_replay_server(corpus, faults="slow@1", slow_seconds=0.5, rate_limit=None) as srv:
        sock = socket.create_connection((srv.host, srv.port), timeout=5)
        try:
            sock.sendall(b"GET /entrez/eutils/esearch.fcgi?db=pubmed&term=x HTTP/1.1\r\n"
                         b"Host: 127.0.0.1\r\n\r\n")
            deadline = time.monotonic() + 10
            while srv.stats.faults.get("slow", 0) < 1:  # the server is now holding the answer
                assert time.monotonic() < deadline, "the request never reached the server"
                time.sleep(0.01)
            # SO_LINGER 0: close() sends RST, so the server's write of the held answer fails
            # with a reset/broken pipe (a plain FIN could let the first write through).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            sock.close()
        record = _wait_for_record(caplog, "disconnected mid-request")
    err = capsys.readouterr().err
    assert err == "", err  # socketserver's default prints a traceback here
    assert record is not None, [r.getMessage() for r in caplog.records]
    assert record.levelno == logging.DEBUG and record.exc_info is None
    assert "127.0.0.1" in record.getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_unexpected_handler_error_is_logged_with_traceback_not_printed(
    corpus: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad Content-Length makes the handler raise ValueError: a server bug, so ERROR."""
    caplog.set_level(logging.DEBUG, logger="monitor.replay_server")
    with start_replay_server(corpus, rate_limit=None) as srv:
        with socket.create_connection((srv.host, srv.port), timeout=5) as sock:
            sock.sendall(b"POST /entrez/eutils/esearch.fcgi HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Length: abc\r\n\r\n")
            assert sock.recv(1024) == b""  # the server drops the connection
        record = _wait_for_record(caplog, "unexpected error while answering")
    err = capsys.readouterr().err
    assert err == "", err
    assert record is not None, [r.getMessage() for r in caplog.records]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert record.exc_info[0] is ValueError


def test_bad_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="is not a directory"):
        start_replay_server(tmp_path / "nope")


def test_an_address_not_of_this_machine_is_blamed_on_the_host(tmp_path: Path) -> None:
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): never this machine's. The hint used to say
    # "choose another --port", which cannot help.
    proc = run_cli("replay-server", "--dir", str(tmp_path), "--host", "192.0.2.1",
                   env=cli_env(MMLR_DATA_DIR=str(tmp_path / "d")), timeout=60)
    assert_one_line_error(proc, "replay server cannot listen on 192.0.2.1:8765",
                          "the address is not one of this machine's",
                          "(choose another with --host)")


def test_the_command_names_the_files_it_skipped(tmp_path: Path) -> None:
    import subprocess
    import sys

    from conftest import ROOT

    # It said "0 records from 0 files" of a folder of broken files, and nothing else.
    (tmp_path / "broken.xml").write_text("<PubmedArticleSet><PubmedArticle><broken")
    (tmp_path / "notgzip.xml.gz").write_bytes(b"garbage")
    port = free_port()
    with subprocess.Popen([sys.executable, "-m", "monitor.cli", "replay-server", "--dir",
                           str(tmp_path), "--port", str(port)], cwd=ROOT, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=cli_env(MMLR_DATA_DIR=str(tmp_path / "d"))) as proc:
        try:
            assert proc.stdout is not None
            banner = proc.stdout.readline()
        finally:
            proc.terminate()
    assert banner.startswith("replay server: 0 records from 0 files; skipped 2 files that are "
                             "not PubMed XML: broken.xml, notgzip.xml.gz; MMLR_ENTREZ_URL="), banner


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["term", "int"])
def test_the_command_stops_on_a_signal_landing_on_another_thread(
        tmp_path: Path, signum: int) -> None:
    """The kernel may hand a signal to any thread of the process (the server answers on
    threads of its own). The main thread slept an hour at a time: Ctrl-C waited for the hour
    to end, and SIGTERM ended the process without stopping the server."""
    port = free_port()
    go = tmp_path / "go"
    proc = mmlr_signalled_from_another_thread(
        ["replay-server", "--dir", str(tmp_path), "--port", str(port)], signum=signum, go=go,
        env=cli_env(MMLR_DATA_DIR=str(tmp_path / "d")))
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("replay server: 0 records")
        go.touch()
    finally:
        _, err = stopped(proc)
    assert proc.returncode == 0 and "Traceback" not in err, err


def test_the_banner_counts_skipped_files_in_words() -> None:
    from monitor.replay_server import skipped_text

    assert skipped_text([]) == ""
    assert skipped_text(["a.xml"]) == "; skipped 1 file that is not PubMed XML: a.xml"
    assert skipped_text([f"{c}.xml" for c in "abcd"]) == (
        "; skipped 4 files that are not PubMed XML: a.xml, b.xml, c.xml, …")


def test_gzip_file_is_served(tmp_path: Path) -> None:
    path = write_article_set(tmp_path / "g" / "x.xml.gz",
                             [synthetic_article(7, created=date(2025, 5, 5))])
    assert gzip.decompress(path.read_bytes()).startswith(b"<?xml")
    with start_replay_server(tmp_path / "g") as srv:
        assert [r.pmid for r in iter_records(_post(srv.url, "efetch", id="7").content)] == [7]
