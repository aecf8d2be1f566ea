"""The Entrez client against the real replay server: identification, retries, rate, secrecy."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from monitor.entrez import EntrezClient
from monitor.ratelimit import RateLimiter, shared_limiter
from monitor.replay_server import start_replay_server, synthetic_article, write_article_set
from store.errors import EntrezError
from store.settings import Settings

KEY = "SECRETKEY0123456789abcdef"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    write_article_set(tmp_path / "corpus" / "a.xml", [
        synthetic_article(200 + i, created=date(2025, 4, 1 + i)) for i in range(6)])
    return tmp_path / "corpus"


def _settings(tmp_path: Path, url: str, **extra: object) -> Settings:
    values: dict[str, object] = {"env": "test", "data_dir": tmp_path / "data",
                                 "entrez_url": url, "entrez_email": "curator@example.org",
                                 "entrez_tool": "mmlr-tests", "entrez_rate": 100.0,
                                 "entrez_timeout": 0.5}
    values.update(extra)
    return Settings(**values)  # type: ignore[arg-type]


def test_sends_identification_by_post(tmp_path: Path, corpus: Path) -> None:
    with start_replay_server(corpus, rate_limit=None) as srv, EntrezClient(
            _settings(tmp_path, srv.url, entrez_api_key=KEY), backoff_base=0.001) as client:
        found = client.esearch("x AND 2025/04/01:2025/04/03[crdt]")
        assert found.count == 3 and found.ids == [202, 201, 200]
        body = client.efetch_xml([201, 999])
        assert b"<PMID Version=\"1\">201</PMID>" in body
        webenv, key = client.epost([200, 201])
        assert webenv.startswith("MCID_") and key == "1"
        assert client.requests == 3 and client.retries == 0
        for params in srv.stats.params:
            assert params["tool"] == ["mmlr-tests"]
            assert params["email"] == ["curator@example.org"]
            assert params["api_key"] == [KEY]
            assert params["db"] == ["pubmed"]


def test_search_reports_warnings(tmp_path: Path, corpus: Path) -> None:
    with start_replay_server(corpus, rate_limit=None) as srv, EntrezClient(
            _settings(tmp_path, srv.url)) as client:
        assert client.esearch("x 2020/01/01:2020/01/02[crdt]").warnings == ["No items found."]
        assert client.efetch_xml([]) == b"<PubmedArticleSet></PubmedArticleSet>"
        assert srv.stats.total == 1  # an empty id list costs no request


@pytest.mark.parametrize("fault", ["429", "500", "503", "timeout", "reset", "truncate",
                                   "error200"])
def test_each_retryable_fault_is_retried(tmp_path: Path, corpus: Path, fault: str) -> None:
    with start_replay_server(corpus, faults=f"{fault}@1", rate_limit=None, hold_seconds=1.0,
                             retry_after=0) as srv, EntrezClient(
            _settings(tmp_path, srv.url), backoff_base=0.001) as client:
        body = client.efetch_xml([200, 201])
        assert body.count(b"<PubmedArticle>") == 2
        assert client.retries == 1 and client.requests == 2
        assert srv.stats.faults == {fault: 1}


def test_retry_after_is_honoured(tmp_path: Path, corpus: Path) -> None:
    with start_replay_server(corpus, faults="429@1", rate_limit=None, retry_after=0.4) as srv, \
            EntrezClient(_settings(tmp_path, srv.url), backoff_base=0.001) as client:
        started = time.monotonic()
        client.esearch("x")
        assert time.monotonic() - started >= 0.4


def test_other_4xx_fails_fast(tmp_path: Path, corpus: Path) -> None:
    with start_replay_server(corpus, rate_limit=None) as srv, EntrezClient(
            _settings(tmp_path, srv.url), backoff_base=0.001) as client:
        with pytest.raises(EntrezError, match="refused the request with HTTP 404") as info:
            client._request("einfo", {}, "eInfoResult")
        assert "\n" not in info.value.one_line()
        assert client.requests == 1 and client.retries == 0


def test_gives_up_after_max_retries(tmp_path: Path, corpus: Path) -> None:
    with start_replay_server(corpus, faults="500@1,500@2,500@3", rate_limit=None) as srv, \
            EntrezClient(_settings(tmp_path, srv.url, entrez_max_retries=2),
                         backoff_base=0.001) as client, \
            pytest.raises(EntrezError, match="esearch failed after 3 attempts: HTTP 500"):
        client.esearch("x")


def test_retry_budget_per_run(tmp_path: Path, corpus: Path) -> None:
    settings = _settings(tmp_path, "http://127.0.0.1:1/", entrez_retry_budget=1)
    with start_replay_server(corpus, faults="500@1,500@3", rate_limit=None) as srv:
        settings = _settings(tmp_path, srv.url, entrez_retry_budget=1)
        with EntrezClient(settings, backoff_base=0.001) as client:
            client.esearch("x")  # one retry: the whole budget of this run
            # the per-request limit (6) is not reached, but the run's budget is spent
            with pytest.raises(EntrezError, match="retry budget of 1 retries"):
                client.esearch("x")
        assert srv.stats.total == 3


def test_api_key_never_in_logs_or_errors(tmp_path: Path, corpus: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with start_replay_server(corpus, faults="429@1,429@2,429@3", rate_limit=None,
                             retry_after=0) as srv, EntrezClient(
            _settings(tmp_path, srv.url, entrez_api_key=KEY, entrez_max_retries=2),
            backoff_base=0.001) as client, pytest.raises(EntrezError) as info:
        client.esearch("x")
    # the server echoed the key in its 429 bodies (as NCBI does) ...
    assert srv.stats.params[0]["api_key"] == [KEY]
    # ... but neither the error nor any log line shows it
    assert "HTTP 429" in info.value.one_line()
    assert KEY not in info.value.one_line() and KEY not in str(info.value)
    assert "***" in info.value.one_line()
    assert caplog.records, "expected retry warnings"
    for record in caplog.records:
        assert KEY not in record.getMessage()


def test_unreachable_url_is_one_clear_line(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "http://127.0.0.1:9/entrez/eutils/", entrez_max_retries=1,
                         entrez_api_key=KEY)
    with EntrezClient(settings, backoff_base=0.001) as client, pytest.raises(EntrezError) as info:
        client.esearch("x")
    line = info.value.one_line()
    assert line.startswith("cannot reach E-utilities at http://127.0.0.1:9/entrez/eutils/: ")
    assert "(after 2 attempts)" in line and "\n" not in line and KEY not in line


def test_client_never_exceeds_the_server_rate(tmp_path: Path, corpus: Path) -> None:
    # Default rate without a key (2.7/s) against NCBI's real limit of 3/s.
    settings = _settings(tmp_path, "http://127.0.0.1:1/", entrez_rate=None)
    assert settings.request_rate == 2.7
    with start_replay_server(corpus) as srv:
        settings = _settings(tmp_path, srv.url, entrez_rate=None)
        with EntrezClient(settings, limiter=RateLimiter(settings.request_rate)) as client:
            for _ in range(7):
                client.esearch("x")
        assert srv.stats.rate_limited == 0
        assert srv.stats.max_rate <= 3


class FakeTime:
    """A clock and a sleep that only advance when told (or slept on), for the limiter."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def limiter(self, rate: float) -> RateLimiter:
        return RateLimiter(rate, clock=self.clock, sleep=self.sleep)


def test_rate_limiter_spaces_requests() -> None:
    fake = FakeTime()
    slept = fake.slept
    limiter = fake.limiter(4.0)
    for _ in range(5):
        limiter.acquire()
    assert slept == [0.25, 0.25, 0.25, 0.25]
    limiter.defer(2.0)
    limiter.acquire()
    assert slept[-1] == pytest.approx(2.0)
    assert shared_limiter("k", 3) is shared_limiter("k", 3)
    assert shared_limiter("k", 5).rate == 5
    assert shared_limiter(None, 2) is not shared_limiter("k", 2)


def test_the_next_request_waits_an_interval_after_the_answer() -> None:
    """NCBI counts arrivals: a request slowed on its way must not let the next one, sent on
    its slot, arrive less than an interval after it. So an answer coming back pushes the next
    slot to one interval after that moment."""
    fake = FakeTime()
    slept = fake.slept
    limiter = fake.limiter(4.0)
    limiter.acquire()  # slot 0
    fake.now += 0.2  # the answer takes 0.2 s: its request may have arrived as late as that
    limiter.release()
    limiter.acquire()
    assert slept == [pytest.approx(0.25)]  # from 0.2 to 0.45, not to the 0.25 slot
    fake.now += 0.01  # a quick answer leaves the spacing of the slots as it was
    limiter.release()
    limiter.acquire()
    assert slept[-1] == pytest.approx(0.25)


def test_missing_contact_address_is_warned_for_ncbi_only(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ncbi = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"
    with caplog.at_level(logging.WARNING, logger="monitor.entrez"):
        EntrezClient(_settings(tmp_path, ncbi, entrez_email=None, entrez_rate=None)).close()
    assert [r.getMessage() for r in caplog.records] == [
        "MMLR_ENTREZ_EMAIL is not set: NCBI asks every E-utilities client for a contact "
        "address and may block clients without one"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="monitor.entrez"):
        EntrezClient(_settings(tmp_path, ncbi, entrez_email="me@example.org",
                               entrez_rate=None)).close()
        EntrezClient(_settings(tmp_path, "http://127.0.0.1:1/", entrez_email=None)).close()
    assert caplog.records == []  # an address given, or not NCBI (a mirror, the replay server)


@contextmanager
def _answering(body: bytes) -> Iterator[str]:
    """An E-utilities stand-in on loopback that answers every request with ``body`` (200,
    XML): for answers the replay server never gives, because real PubMed data cannot hold
    them. Yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "text/xml; charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *_args: object) -> None:  # not on the test's stderr
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/entrez/eutils/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _search_answer(count: str, *ids: str) -> bytes:
    id_list = "".join(f"<Id>{pmid}</Id>" for pmid in ids)
    return (f'<?xml version="1.0" encoding="UTF-8" ?><eSearchResult><Count>{count}</Count>'
            f"<RetMax>{len(ids)}</RetMax><RetStart>0</RetStart><IdList>{id_list}</IdList>"
            "</eSearchResult>").encode()


def test_a_search_answer_of_pmids_is_read(tmp_path: Path) -> None:
    """Guards the refusals below: the stand-in's answer, well formed, is read as it says."""
    with _answering(_search_answer("3", "12", " 7 ", "2147483647")) as url, \
            EntrezClient(_settings(tmp_path, url)) as client:
        found = client.esearch("myeloma")
    assert (found.count, found.ids) == (3, [12, 7, 2147483647])


@pytest.mark.parametrize(("count", "pmid", "words"), [
    ("2", "²", "has an <Id> that is not a PMID: '²'"),  # str.isdigit says yes, int() says no
    ("2", "٣", "has an <Id> that is not a PMID: '٣'"),  # int() reads it as 3
    ("2", "abc", "has an <Id> that is not a PMID: 'abc'"),
    ("2", "", "has an <Id> that is not a PMID: ''"),
    ("2", "0", "has an <Id> that is not a PMID: '0'"),
    ("2", "2147483648", "has an <Id> that is not a PMID: '2147483648'"),
    ("", "12", "has no <Count>"),
    ("two", "12", "has no <Count> (it reads 'two')"),
    ("٢", "12", "has no <Count> (it reads '٢')"),
])
def test_a_search_answer_that_is_not_pmids_is_refused_in_words(
        tmp_path: Path, count: str, pmid: str, words: str) -> None:
    """An id that was not a PMID used to be dropped without a word, and with it the record it
    stood for: the poll fails in one line instead, and the next poll asks again."""
    with _answering(_search_answer(count, "11", pmid)) as url, \
            EntrezClient(_settings(tmp_path, url)) as client, \
            pytest.raises(EntrezError) as caught:
        client.esearch("myeloma")
    line = caught.value.one_line()
    assert f"E-utilities esearch answer {words}" in line and "next poll asks again" in line


@pytest.mark.parametrize(("name", "count", "dropped"), [
    # hits, and a MeSH heading PubMed does not know left out of the search
    ("eutilsjson_esearch.error.xml", 5163, ["fleegle[MeSH Terms] (phrase not found)"]),
    # no hits: "No items found." (an OutputMessage) says nothing about the term
    ("biopython_esearch8.xml", 0, ["abcXYZ (phrase not found)"]),
    ("eutilsjson_esearch.pubmed.xml", None, []),
])
def test_the_terms_pubmed_left_out_are_read_from_real_answers(
        tmp_path: Path, pubmed_dir: Path, name: str, count: int | None,
        dropped: list[str]) -> None:
    body = (pubmed_dir / "esearch" / name).read_bytes()
    with _answering(body) as url, EntrezClient(_settings(tmp_path, url)) as client:
        found = client.esearch("fleegle[MeSH Terms] OR obstetrics[MeSH Terms]")
    assert found.dropped == dropped
    assert count is None or found.count == count


def test_retry_after_as_an_http_date_is_honoured(
        tmp_path: Path, corpus: Path, caplog: pytest.LogCaptureFixture) -> None:
    """RFC 9110 allows an HTTP-date as well as seconds: a date was read as nothing, and the
    request retried at once. A date an hour ahead waits as long as the client allows
    (``retry_after_max``, small here), read from the retry's log line, not the clock."""
    from email.utils import format_datetime

    from monitor.entrez import _retry_after

    ahead = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    with start_replay_server(corpus, faults="429@1", rate_limit=None,
                             retry_after=ahead) as srv, \
            EntrezClient(_settings(tmp_path, srv.url), backoff_base=0.001,
                         retry_after_max=0.25) as client, \
            caplog.at_level(logging.INFO, logger="monitor.entrez"):
        assert client.esearch("x").count == 6 and client.retries == 1
    waits = [r.getMessage() for r in caplog.records if "retry 1/" in r.getMessage()]
    assert len(waits) == 1 and waits[0].endswith("retry 1/6 in 0.25 s"), waits
    # Both forms, as RFC 9110 §10.2.3 writes them; a date past is no wait; nonsense is none.
    now = datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC)
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 30.0
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT",
                        now=now + timedelta(minutes=5)) == 0.0
    assert _retry_after("120") == 120.0 and _retry_after("") is None
    assert _retry_after("soon") is None
