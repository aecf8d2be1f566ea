"""An E-utilities-compatible HTTP server over a folder of PubMed XML (tests and ``mmlr demo``).

It indexes every PubMed XML file under a directory (recursively, ``.xml`` and ``.xml.gz``) by
PMID, keeping each record's bytes, its Create Date (``PubMedPubDate PubStatus="entrez"``, which
is what ``[crdt]`` searches), its Entrez date (``PubStatus="pubmed"``, falling back to the
create date) and its modification date for ``[mdat]`` (``MedlineCitation/DateRevised``, else
``DateCompleted``, else the create date; tests may override it per PMID with
:meth:`ReplayServer.set_modified`). Files that are not ``PubmedArticleSet`` documents are skipped
with a log line. :meth:`ReplayServer.reload` re-indexes the directory (or switches to another
one), so a test can serve a later version of a record.

Endpoints under ``/entrez/eutils/``, GET or form-encoded POST, as NCBI answers them:

- ``esearch.fcgi``: ``Count``, ``retstart``/``retmax`` with PubMed's 9,999 cap (the real
  ``WarningList`` and ``ERROR`` texts), ``usehistory=y`` → ``WebEnv``/``QueryKey``.
- ``efetch.fcgi``: ``id`` lists or ``WebEnv``+``query_key``(+``retstart``/``retmax``) →
  ``PubmedArticleSet`` of the stored records; unknown PMIDs are simply absent, and an answer
  with no record at all is byte for byte the one NCBI sent for a PMID it has no record of
  (``shared/data/pubmed/efetch_xml/metapub/pmid_xml/37909814.xml``). PMIDs the corpus deletes
  (``<DeleteCitation>``) come back as a ``DeleteCitation`` element (a replay extension, as
  only NLM's FTP update files carry that element).
- ``epost.fcgi``: stores an id list → ``WebEnv``/``QueryKey``.

**Search rule (deliberately simple):** only the date part of ``term`` filters. Ranges written
``YYYY[/MM[/DD]]:YYYY[/MM[/DD]][crdt]`` (or ``[edat]``, ``[mdat]``), and
``datetype``+``mindate``/``maxdate``,
restrict by that date (several ranges are intersected); the rest of the query is ignored and every
indexed record matches it, i.e. the corpus *is* the result set of the protocol query. Ids come
back newest PMID first.

Test hooks that survive :meth:`ReplayServer.reload`:

- :meth:`ReplayServer.set_removed`: PMIDs NLM deleted, served the way E-utilities serves them
  (ENTREZ.md §0.5 and §2.2): esearch no longer finds them and efetch leaves them out, so a
  request for one of them alone gets the empty ``PubmedArticleSet``. No ``DeleteCitation``.
- :meth:`ReplayServer.set_outside_query`: PMIDs the protocol query does not match (the server
  otherwise ignores the query's words): esearch leaves them out, efetch serves them.
- :meth:`ReplayServer.set_modified`: per-PMID ``[mdat]`` dates.
- :meth:`ReplayServer.set_unknown_phrases`: parts of a query PubMed does not know; a term
  holding one is answered as NCBI answers it (ENTREZ.md §2.1, the recorded
  ``eutilsjson_esearch.error.xml``): the search runs without it, and the answer names it in
  ``<ErrorList><PhraseNotFound>`` (a quoted phrase: ``<WarningList><QuotedPhraseNotFound>``).

No ``esummary.fcgi``: the poller does not use it, and neither ENTREZ.md nor the recorded
answers say how it answers for a deleted PMID, so the server does not invent that answer.

Rate: requests are counted per client (API key, else IP) over a sliding second; above the limit
(3/s, 10/s with ``api_key``) the answer is NCBI's 429 JSON. ``stats`` records per-endpoint counts,
faults injected and the highest rate any client reached, so tests can assert the client never
exceeded it. Faults are injected per :mod:`monitor.faults`.
"""

from __future__ import annotations

import calendar
import contextlib
import gzip
import json
import logging
import re
import secrets
import socket
import struct
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lxml import etree

from monitor.faults import FaultPlan, parse_fault_spec
from reports.words import plural
from store.errors import ValidationError
from store.ids import parse_id

log = logging.getLogger(__name__)

BASE_PATH = "/entrez/eutils/"
PUBMED_CAP = 9999
XML_TYPE = "text/xml; charset=UTF-8"
_ESEARCH_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8" ?>\n<!DOCTYPE eSearchResult PUBLIC "-//NLM//DTD '
    b'esearch 20060628//EN" "https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20060628/esearch.dtd">\n'
)
_EFETCH_HEAD = (
    b'<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, '
    b'1st January 2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n'
)
#: What efetch answers when it has no record for any PMID asked for: the real bytes of
#: ``shared/data/pubmed/efetch_xml/metapub/pmid_xml/37909814.xml`` (ENTREZ.md §2.2).
_EFETCH_EMPTY = _EFETCH_HEAD + b"<PubmedArticleSet>\n</PubmedArticleSet>"
_EFETCH_ERROR_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8" ?>\n<!DOCTYPE eEfetchResult PUBLIC "-//NLM//DTD '
    b'efetch 20131226//EN" "https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20131226/efetch.dtd">\n'
)
_EPOST_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8" ?>\n<!DOCTYPE ePostResult PUBLIC "-//NLM//DTD '
    b'epost 20090526//EN" "https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20090526/epost.dtd">\n'
)
_ERROR_500 = (
    b"<html><head><title>NCBI/eutils202 - WWW Error 500 Diagnostic</title></head><body>"
    b"<h1>Error 500</h1><p>Your request could not be processed due to a problem on our Web "
    b"server. This could be a transient problem, please try the query again.</p></body></html>"
)
_DATE_RANGE = re.compile(
    r"(\d{4}(?:/\d{1,2}(?:/\d{1,2})?)?)\s*:\s*(\d{4}(?:/\d{1,2}(?:/\d{1,2})?)?)\s*"
    r"\[\s*(crdt|edat|mdat|create date|entrez date|modification date|[a-z ]+)\s*\]",
    re.IGNORECASE,
)
_DATE_TAGS = {"crdt": "crdt", "create date": "crdt", "edat": "edat", "entrez date": "edat",
              "mdat": "mdat", "modification date": "mdat"}


# ----------------------------------------------------------------------------- the corpus
@dataclass(slots=True)
class IndexedRecord:
    pmid: int
    crdt: date | None
    edat: date | None
    raw: bytes
    mdat: date | None = None  # DateRevised, else DateCompleted, else crdt


@dataclass
class Corpus:
    records: dict[int, IndexedRecord] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    files: int = 0
    skipped_files: list[str] = field(default_factory=list)


def _history_date(article: Any, status: str) -> date | None:
    for node in article.iterfind(f".//History/PubMedPubDate[@PubStatus='{status}']"):
        try:
            return date(int(node.findtext("Year")), int(node.findtext("Month") or 1),
                        int(node.findtext("Day") or 1))
        except (TypeError, ValueError):
            return None
    return None


def _citation_date(article: Any, name: str) -> date | None:
    node = article.find(f"MedlineCitation/{name}")
    if node is None:
        return None
    try:
        return date(int(node.findtext("Year")), int(node.findtext("Month") or 1),
                    int(node.findtext("Day") or 1))
    except (TypeError, ValueError):
        return None


def _open(path: Path) -> Any:
    return gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb")


def _index_file(path: Path, corpus: Corpus) -> None:
    with _open(path) as handle:
        context = etree.iterparse(
            handle, events=("start", "end"), resolve_entities=False, no_network=True,
            load_dtd=False, huge_tree=True,
        )
        root_seen = False
        for event, elem in context:
            if event == "start":
                if not root_seen:
                    root_seen = True
                    if elem.tag != "PubmedArticleSet":
                        corpus.skipped_files.append(str(path))
                        log.info("replay server: skipping %s (root <%s>, not a PubmedArticleSet)",
                                 path, elem.tag)
                        return
                continue
            if elem.tag in ("PubmedArticle", "PubmedBookArticle"):
                pmid_text = elem.findtext("MedlineCitation/PMID") or elem.findtext(
                    "BookDocument/PMID")
                pmid = parse_id(pmid_text or "")
                if pmid is not None:
                    crdt = _history_date(elem, "entrez")
                    edat = _history_date(elem, "pubmed") or crdt
                    mdat = (_citation_date(elem, "DateRevised")
                            or _citation_date(elem, "DateCompleted") or crdt)
                    elem.tail = None
                    corpus.records[pmid] = IndexedRecord(pmid, crdt, edat, etree.tostring(elem),
                                                         mdat)
                    corpus.deleted.discard(pmid)
                else:
                    log.info("replay server: record without PMID in %s skipped", path)
                elem.clear(keep_tail=False)
            elif elem.tag == "DeleteCitation":
                for node in elem.iterfind("PMID"):
                    if (deleted := parse_id(node.text or "")) is not None:
                        corpus.deleted.add(deleted)
                        corpus.records.pop(deleted, None)
                elem.clear(keep_tail=False)
    if not root_seen:
        corpus.skipped_files.append(str(path))
    corpus.files += 1


def index_directory(directory: Path) -> Corpus:
    """Index every PubMed XML file under ``directory``; malformed files are logged and skipped."""
    corpus = Corpus()
    paths = sorted(p for p in directory.rglob("*")
                   if p.is_file() and p.name.endswith((".xml", ".xml.gz")))
    for path in paths:
        try:
            _index_file(path, corpus)
        except (etree.XMLSyntaxError, OSError, EOFError) as exc:
            corpus.skipped_files.append(str(path))
            log.info("replay server: %s is not readable PubMed XML (%s); records read before "
                     "the error are kept", path, str(exc).splitlines()[0] if str(exc) else exc)
    log.info("replay server: %d records (%d deleted) from %d files under %s",
             len(corpus.records), len(corpus.deleted), corpus.files, directory)
    return corpus


# ----------------------------------------------------------------------------- stats
@dataclass
class ReplayStats:
    """What the server saw; read by tests and benchmarks."""

    requests: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    faults: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    rate_limited: int = 0
    max_rate: int = 0  # the most requests one client sent within any sliding second
    params: list[dict[str, list[str]]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    def snapshot(self) -> dict[str, Any]:
        return {"requests": dict(self.requests), "faults": dict(self.faults),
                "rate_limited": self.rate_limited, "max_rate": self.max_rate,
                "total": self.total}


# ----------------------------------------------------------------------------- HTTP
def _parse_day(text: str, *, end: bool) -> date:
    parts = [int(p) for p in text.split("/")]
    year = parts[0]
    month = parts[1] if len(parts) > 1 else (12 if end else 1)
    last = calendar.monthrange(year, month)[1] if end else 1
    day = parts[2] if len(parts) > 2 else last
    return date(year, month, day)


def parse_date_ranges(term: str) -> list[tuple[str, date, date]]:
    """``[(tag, start, end)]`` for every supported date range in a search term."""
    ranges = []
    for match in _DATE_RANGE.finditer(term):
        tag = _DATE_TAGS.get(match.group(3).strip().lower())
        if tag is None:
            log.info("replay server: date tag [%s] is not supported; range ignored",
                     match.group(3))
            continue
        ranges.append((tag, _parse_day(match.group(1), end=False),
                       _parse_day(match.group(2), end=True)))
    return ranges


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ReplayHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("replay server: " + format, *args)

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without NODELAY, Nagle + delayed ACK add
        # ~40 ms to every answer on loopback.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def finish(self) -> None:
        with contextlib.suppress(OSError):  # the socket was reset on purpose
            super().finish()

    def do_GET(self) -> None:
        self._dispatch(parse_qs(urlsplit(self.path).query, keep_blank_values=True))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        params = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        for key, values in parse_qs(body, keep_blank_values=True).items():
            params.setdefault(key, []).extend(values)
        self._dispatch(params)

    # -- plumbing
    def _send(self, status: int, body: bytes, content_type: str = XML_TYPE,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _dispatch(self, params: dict[str, list[str]]) -> None:
        srv = self.server
        path = urlsplit(self.path).path
        endpoint = path.removeprefix(BASE_PATH).removesuffix(".fcgi") if path.startswith(
            BASE_PATH) else ""
        endpoint = endpoint if endpoint in ("esearch", "efetch", "epost") else "other"
        api_key = (params.get("api_key") or [""])[-1]
        client = api_key or self.client_address[0]
        limit = srv.key_rate_limit if api_key else srv.rate_limit
        count = srv.register(endpoint, client, params)
        remaining = max(0, (limit or 0) - count)
        rate_headers = {"X-RateLimit-Limit": str(limit or 0),
                        "X-RateLimit-Remaining": str(remaining),
                        "Access-Control-Expose-Headers": "X-RateLimit-Limit,X-RateLimit-Remaining"}
        if limit and count > limit:
            with srv.lock:
                srv.stats.rate_limited += 1
            body = json.dumps({"error": "API rate limit exceeded", "api-key": client,
                               "count": str(count), "limit": str(limit)}).encode()
            self._send(429, body, "application/json", rate_headers)
            return
        _n, fault = srv.faults.next()
        if fault is not None:
            with srv.lock:
                srv.stats.faults[fault] += 1
            if self._fault(fault, endpoint, params, rate_headers):
                return
        if srv.delay:
            srv.stopping.wait(srv.delay)
        status, body = self._answer(endpoint, params)
        self._send(status, body, XML_TYPE, rate_headers)

    def _fault(self, fault: str, endpoint: str, params: dict[str, list[str]],
               headers: dict[str, str]) -> bool:
        """Inject a fault; True when the request is fully answered."""
        srv = self.server
        if fault == "429":
            body = json.dumps({"error": "API rate limit exceeded",
                               "api-key": (params.get("api_key") or [self.client_address[0]])[-1],
                               "count": "4", "limit": "3"}).encode()
            extra = dict(headers)
            if srv.retry_after is not None:
                extra["Retry-After"] = str(srv.retry_after)
            self._send(429, body, "application/json", extra)
        elif fault in ("500", "502", "503"):
            self._send(int(fault), _ERROR_500, "text/html", headers)
        elif fault == "timeout":
            srv.stopping.wait(srv.hold_seconds)
            self.close_connection = True
        elif fault == "reset":
            # SO_LINGER 0 makes close() send RST: the client sees "connection reset".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        elif fault == "truncate":
            status, body = self._answer(endpoint, params)
            self._send(status, body[: max(1, len(body) // 2)], XML_TYPE, headers)
        elif fault == "error200":
            root = {"esearch": b"eSearchResult", "epost": b"ePostResult"}.get(endpoint,
                                                                             b"eFetchResult")
            body = (b'<?xml version="1.0" encoding="UTF-8" ?>\n<' + root
                    + b"><ERROR>Invalid db name specified: pubmed</ERROR></" + root + b">\n")
            self._send(200, body, XML_TYPE, headers)
        elif fault == "slow":
            srv.stopping.wait(srv.slow_seconds)
            return False
        elif fault == "omit":
            if endpoint != "efetch" or (params.get("db") or ["pubmed"])[-1] != "pubmed":
                return False  # only an article set can leave a record out
            status, body = srv.efetch(params, omit_last=True)
            self._send(status, body, XML_TYPE, headers)
        elif fault == "empty":
            if endpoint != "efetch" or (params.get("db") or ["pubmed"])[-1] != "pubmed":
                return False
            self._send(200, _EFETCH_EMPTY, XML_TYPE, headers)
        return True

    def _answer(self, endpoint: str, params: dict[str, list[str]]) -> tuple[int, bytes]:
        db = (params.get("db") or ["pubmed"])[-1]
        if endpoint == "other":
            return 404, b"<html><body>Not found</body></html>"
        if db != "pubmed":
            root = {"esearch": b"eSearchResult", "epost": b"ePostResult"}.get(endpoint,
                                                                             b"eFetchResult")
            return 200, (b"<" + root + b"><ERROR>Invalid db name specified: "
                         + _esc(db).encode() + b"</ERROR></" + root + b">")
        if endpoint == "esearch":
            return self.server.esearch(params)
        if endpoint == "efetch":
            return self.server.efetch(params)
        return self.server.epost(params)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _ids(params: dict[str, list[str]]) -> list[int]:
    out: list[int] = []
    for value in params.get("id", []):
        for token in value.split(","):
            if (pmid := parse_id(token)) is not None:
                out.append(pmid)
    return out


def _int(params: dict[str, list[str]], name: str, default: int) -> int:
    try:
        return int((params.get(name) or [str(default)])[-1])
    except ValueError:
        return default


# socket.timeout is TimeoutError since Python 3.10.
_CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class _ReplayHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], corpus: Corpus, *, faults: FaultPlan,
                 rate_limit: int | None, key_rate_limit: int | None, hold_seconds: float,
                 slow_seconds: float, retry_after: float | str | None, delay: float) -> None:
        super().__init__(address, _Handler)
        self.corpus = corpus
        self.faults = faults
        self.rate_limit = rate_limit
        self.key_rate_limit = key_rate_limit
        self.hold_seconds = hold_seconds
        self.slow_seconds = slow_seconds
        self.retry_after = retry_after
        self.delay = delay
        self.stats = ReplayStats()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._windows: dict[str, deque[float]] = defaultdict(deque)
        self._history: dict[str, dict[int, list[int]]] = {}
        self.mdat_overrides: dict[int, date] = {}
        self.removed: set[int] = set()  # deleted by NLM: left out of every answer
        self.outside_query: set[int] = set()  # served by efetch, never found by esearch
        self.unknown_phrases: tuple[str, ...] = ()  # named in ErrorList when searched

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Called by socketserver inside the ``except`` around a request; its default prints
        "Exception occurred during processing of request" and a traceback to stderr. Clients
        hanging up mid-answer is routine here (timeouts and truncated bodies are injected, so
        clients give up on purpose): DEBUG. Anything else is a bug in this server: logged with
        its traceback, never printed."""
        exc = sys.exc_info()[1]
        host = client_address[0] if isinstance(client_address, tuple) else client_address
        if isinstance(exc, _CLIENT_GONE):
            log.debug("replay server: client %s disconnected mid-request (%s: %s)",
                      host, type(exc).__name__, exc)
            return
        log.exception("replay server: unexpected error while answering %s", host)

    def register(self, endpoint: str, client: str, params: dict[str, list[str]]) -> int:
        """Count a request; return how many this client sent within the last second."""
        now = time.monotonic()
        with self.lock:
            self.stats.requests[endpoint] += 1
            self.stats.params.append(params)
            window = self._windows[client]
            window.append(now)
            while window and window[0] <= now - 1.0:
                window.popleft()
            self.stats.max_rate = max(self.stats.max_rate, len(window))
            return len(window)

    def _store(self, params: dict[str, list[str]], ids: list[int]) -> tuple[str, int]:
        webenv = (params.get("WebEnv") or params.get("webenv") or [""])[-1]
        with self.lock:
            if webenv not in self._history:
                webenv = "MCID_" + secrets.token_hex(12)
                self._history[webenv] = {}
            queries = self._history[webenv]
            key = len(queries) + 1
            queries[key] = ids
        return webenv, key

    # -- endpoints
    def esearch(self, params: dict[str, list[str]]) -> tuple[int, bytes]:
        term = (params.get("term") or [""])[-1]
        ranges = parse_date_ranges(term)
        datetype = (params.get("datetype") or [""])[-1].lower()
        mindate, maxdate = (params.get("mindate") or [""])[-1], (params.get("maxdate") or [""])[-1]
        if datetype in _DATE_TAGS and mindate and maxdate:
            ranges.append((_DATE_TAGS[datetype], _parse_day(mindate, end=False),
                           _parse_day(maxdate, end=True)))
        matches = []
        overrides = self.mdat_overrides
        hidden = self.removed | self.outside_query
        for rec in self.corpus.records.values():
            if rec.pmid in hidden:
                continue
            ok = True
            for tag, start, end in ranges:
                if tag == "mdat":
                    when = overrides.get(rec.pmid, rec.mdat)
                else:
                    when = rec.crdt if tag == "crdt" else rec.edat
                if when is None or not start <= when <= end:
                    ok = False
                    break
            if ok:
                matches.append(rec.pmid)
        matches.sort(reverse=True)
        retstart, retmax = _int(params, "retstart", 0), _int(params, "retmax", 20)
        parts = [b"<eSearchResult><Count>%d</Count>" % len(matches)]
        warnings: list[str] = []
        if retstart >= PUBMED_CAP:
            body = (_ESEARCH_HEAD + b"<eSearchResult><ERROR>Search Backend failed: Exception:\n"
                    + b"Position %d is out of acceptable range [%d,%d]" % (
                        retstart, PUBMED_CAP, PUBMED_CAP - 1) + b"</ERROR></eSearchResult>\n")
            return 200, body
        if retstart + retmax > PUBMED_CAP:
            retmax = PUBMED_CAP - retstart
            warnings.append(f"Restrictions achieved. start and count adjusted to {retstart}, "
                            f"{retmax}")
        page = matches[retstart: retstart + retmax]
        parts.append(b"<RetMax>%d</RetMax><RetStart>%d</RetStart>" % (len(page), retstart))
        if (params.get("usehistory") or ["n"])[-1].lower() == "y":
            webenv, key = self._store(params, matches)
            parts.append(b"<QueryKey>%d</QueryKey><WebEnv>%s</WebEnv>" % (key, webenv.encode()))
        parts.append(b"<IdList>" + b"".join(b"<Id>%d</Id>" % p for p in page) + b"</IdList>")
        parts.append(b"<TranslationSet/><QueryTranslation>" + _esc(term).encode("utf-8")
                     + b"</QueryTranslation>")
        unknown = [p for p in self.unknown_phrases if p.lower() in term.lower()]
        not_found = [p for p in unknown if not p.startswith('"')]
        if not_found:  # after QueryTranslation, as in the recorded answer
            parts.append(b"<ErrorList>" + b"".join(
                b"<PhraseNotFound>" + _esc(p).encode() + b"</PhraseNotFound>"
                for p in not_found) + b"</ErrorList>")
        if not matches:
            warnings.append("No items found.")
        quoted = [p for p in unknown if p.startswith('"')]
        if warnings or quoted:
            parts.append(b"<WarningList>" + b"".join(
                b"<QuotedPhraseNotFound>" + _esc(p).encode() + b"</QuotedPhraseNotFound>"
                for p in quoted) + b"".join(
                b"<OutputMessage>" + _esc(w).encode() + b"</OutputMessage>" for w in warnings)
                + b"</WarningList>")
        parts.append(b"</eSearchResult>\n")
        return 200, _ESEARCH_HEAD + b"".join(parts)

    def efetch(self, params: dict[str, list[str]], *,
               omit_last: bool = False) -> tuple[int, bytes]:
        """The article set for ``params``; ``omit_last`` leaves its last record out (the
        ``omit`` fault)."""
        rettype = (params.get("rettype") or [""])[-1].lower()
        if rettype not in ("", "xml", "abstract", "full"):
            return 400, (_EFETCH_ERROR_HEAD + b"<eFetchResult><ERROR>rettype="
                         + _esc(rettype).encode() + b" is not served by the replay server"
                         + b"</ERROR></eFetchResult>\n")
        ids = _ids(params)
        webenv = (params.get("WebEnv") or params.get("webenv") or [""])[-1]
        if not ids and webenv:
            key = _int(params, "query_key", 1)
            with self.lock:
                stored = self._history.get(webenv, {}).get(key)
            if stored is None:
                return 400, (_EFETCH_ERROR_HEAD + b"<eFetchResult><ERROR>Unable to obtain query #"
                             + str(key).encode() + b"</ERROR></eFetchResult>\n")
            retstart, retmax = _int(params, "retstart", 0), _int(params, "retmax", 20)
            if retstart >= len(stored) and stored:
                return 400, (_EFETCH_ERROR_HEAD + (
                    b"<eFetchResult>\n\t<ERROR>Cannot retrieve history data: OUT OF RANGE. "
                    b"Parameter retstart=%d + %d is greater than number of records available "
                    b"in history. History includes %d IDs.</ERROR>\n</eFetchResult>\n"
                    % (retstart, retmax, len(stored))))
            ids = stored[retstart: retstart + min(retmax, 10000)]
        items: list[tuple[int, bytes]] = []
        for pmid in ids:
            rec = self.corpus.records.get(pmid)
            if pmid in self.removed:
                continue  # E-utilities simply leaves a deleted PMID out
            if rec is not None:
                items.append((pmid, rec.raw + b"\n"))
            elif pmid in self.corpus.deleted:
                items.append((pmid, b'<DeleteCitation><PMID Version="1">%d</PMID>'
                              b"</DeleteCitation>\n" % pmid))
        if omit_last and items:
            log.info("replay server: omit fault: PMID %d left out of the answer", items.pop()[0])
        if not items:
            return 200, _EFETCH_EMPTY
        return 200, (_EFETCH_HEAD + b"<PubmedArticleSet>\n" + b"".join(raw for _, raw in items)
                     + b"</PubmedArticleSet>\n")

    def epost(self, params: dict[str, list[str]]) -> tuple[int, bytes]:
        raw = [t for v in params.get("id", []) for t in v.split(",") if t.strip()]
        ids = _ids(params)
        if not raw:
            return 200, (_EPOST_HEAD + b"<ePostResult><ERROR>Empty ID list; Nothing to store"
                         b"</ERROR></ePostResult>\n")
        webenv, key = self._store(params, ids)
        invalid = b""
        if len(ids) < len(raw):
            invalid = (b"<ERROR>Some IDs have invalid value and were omitted. Maximum ID value "
                       b"18446744073709551615</ERROR>")
        return 200, (_EPOST_HEAD + b"<ePostResult>" + invalid + b"<QueryKey>%d</QueryKey>"
                     b"<WebEnv>%s</WebEnv></ePostResult>\n" % (key, webenv.encode()))


# ----------------------------------------------------------------------------- public API
class ReplayServer:
    """A running replay server (context manager). ``url`` is the E-utilities base URL."""

    def __init__(self, httpd: _ReplayHTTPServer, directory: Path) -> None:
        self._httpd = httpd
        self.directory = directory
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="replay-server", daemon=True)
        host, port = httpd.server_address[:2]
        self.host, self.port = str(host), int(port)
        self.url = f"http://{self.host}:{self.port}{BASE_PATH}"

    @property
    def stats(self) -> ReplayStats:
        return self._httpd.stats

    @property
    def corpus(self) -> Corpus:
        return self._httpd.corpus

    def set_faults(self, spec: str | None, *, seed: int = 0) -> None:
        self._httpd.faults = parse_fault_spec(spec, seed=seed)

    def set_delay(self, seconds: float) -> None:
        self._httpd.delay = seconds

    def reload(self, directory: Path | str | None = None) -> None:
        """Re-index the directory, or switch to ``directory`` (tests serve later versions)."""
        if directory is not None:
            directory = Path(directory)
            if not directory.is_dir():
                raise ValidationError(f"replay server: {directory} is not a directory",
                                      hint="pass a folder of PubMed XML files")
            self.directory = directory
        self._httpd.corpus = index_directory(self.directory)

    def set_modified(self, modified: dict[int, date] | None) -> None:
        """Override the ``[mdat]`` date of PMIDs (None clears); survives :meth:`reload`."""
        with self._httpd.lock:
            self._httpd.mdat_overrides = dict(modified or {})

    def set_removed(self, pmids: set[int] | list[int] | None) -> None:
        """Serve ``pmids`` as deleted by NLM (None clears): esearch no longer finds them and
        efetch leaves them out, as E-utilities does (no ``DeleteCitation``); survives
        :meth:`reload`."""
        with self._httpd.lock:
            self._httpd.removed = set(pmids or ())

    def set_outside_query(self, pmids: set[int] | list[int] | None) -> None:
        """Make ``pmids`` records the query does not match (None clears): esearch leaves them
        out of every result, efetch still serves them; survives :meth:`reload`."""
        with self._httpd.lock:
            self._httpd.outside_query = set(pmids or ())

    def set_unknown_phrases(self, phrases: list[str] | None) -> None:
        """Parts of a query PubMed does not know (None clears): a search term holding one
        (compared case-insensitively) is answered with it in ``<ErrorList><PhraseNotFound>``,
        or, quoted, ``<WarningList><QuotedPhraseNotFound>``, as NCBI does, and searched as
        usual (the server ignores the query's words); survives :meth:`reload`."""
        with self._httpd.lock:
            self._httpd.unknown_phrases = tuple(phrases or ())

    def reset_stats(self) -> None:
        with self._httpd.lock:
            self._httpd.stats = ReplayStats()

    def start(self) -> ReplayServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ReplayServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_replay_server(
    directory: Path | str, *, faults: str | FaultPlan | None = None, seed: int = 0,
    host: str = "127.0.0.1", port: int = 0, rate_limit: int | None = 3,
    key_rate_limit: int | None = 10, hold_seconds: float = 35.0, slow_seconds: float = 0.5,
    retry_after: float | str | None = 1, delay: float = 0.0,
) -> ReplayServer:
    """Index ``directory`` and serve it in a background thread.

    ``hold_seconds`` is how long a ``timeout`` fault holds the connection (longer than the
    client's timeout; tests make both small), ``delay`` slows every answer (crash tests),
    ``rate_limit``/``key_rate_limit`` are NCBI's 3 and 10 requests/s (None: unlimited);
    ``retry_after`` is the ``Retry-After`` of a ``429`` fault, seconds or an HTTP-date string
    (None: no header).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValidationError(f"replay server: {directory} is not a directory",
                              hint="pass --dir with a folder of PubMed XML files")
    plan = faults if isinstance(faults, FaultPlan) else parse_fault_spec(faults, seed=seed)
    corpus = index_directory(directory)
    try:
        httpd = _ReplayHTTPServer((host, port), corpus, faults=plan, rate_limit=rate_limit,
                                  key_rate_limit=key_rate_limit, hold_seconds=hold_seconds,
                                  slow_seconds=slow_seconds, retry_after=retry_after, delay=delay)
    except OSError as exc:
        from monitor.service import bind_problem

        why, fix = bind_problem(exc, host_flag="--host", port_flag="--port")
        raise ValidationError(f"replay server cannot listen on {host}:{port}: {why}",
                              hint=f"choose another with {fix}") from None
    return ReplayServer(httpd, directory).start()


def skipped_text(names: list[str]) -> str:
    """The banner's words for the files the corpus skipped (empty when none)."""
    if not names:
        return ""
    return (f"; skipped {plural(len(names), 'file')} that {'is' if len(names) == 1 else 'are'} "
            "not PubMed XML: " + ", ".join(names[:3]) + (", …" if len(names) > 3 else ""))


def serve_forever(directory: Path | str, *, host: str = "127.0.0.1", port: int = 8765,
                  faults: str | None = None, seed: int = 0) -> None:
    """``mmlr replay-server``: serve until SIGTERM or SIGINT (Ctrl-C)."""
    from monitor.signals import stop_signals

    with stop_signals() as wait:
        server = start_replay_server(directory, faults=faults, seed=seed, host=host, port=port)
        try:
            corpus = server.corpus
            # Unreadable files are skipped (test corpora hold some on purpose), but the
            # operator must hear of them: "0 records from 0 files" alone hid a folder of
            # broken files.
            skipped = skipped_text([Path(p).name for p in corpus.skipped_files])
            print(f"replay server: {len(corpus.records)} records from {corpus.files} files"
                  f"{skipped}; MMLR_ENTREZ_URL={server.url}"
                  + (f" (faults: {faults})" if faults else ""), flush=True)
            wait()  # the server's threads answer meanwhile
        finally:
            server.stop()


def iter_indexed(directory: Path) -> Iterator[IndexedRecord]:
    """Every record the server would serve from ``directory`` (benchmarks, tests)."""
    yield from index_directory(directory).records.values()


# ----------------------------------------------------------------------------- load corpora
def synthetic_article(
    pmid: int, *, created: date, title: str | None = None, status: str = "MEDLINE",
    abstract: str | None = None, mesh: tuple[str, ...] = (),
    publication_types: tuple[str, ...] = ("Journal Article",),
    comments: tuple[tuple[str, int], ...] = (), version: int = 1, revised: date | None = None,
) -> bytes:
    """One PubmedArticle of a *synthetic* record (tests and benchmarks; never real data).

    ``comments`` are CommentsCorrections ``(RefType, PMID)`` pairs, e.g. ``("RetractionIn", n)``;
    ``revised`` is the ``DateRevised`` (what ``[mdat]`` searches; default: the create date).
    """
    revised = revised or created
    title = title or f"Synthetic record {pmid}: maintenance therapy in myeloma (not real)"
    abstract = abstract or (f"SYNTHETIC. Record {pmid} is generated for load and fault "
                            "testing of the mmlr poller. It describes no real study.")
    mesh_xml = "".join(f'<MeshHeading><DescriptorName UI="D0" MajorTopicYN="N">{_esc(m)}'
                       "</DescriptorName></MeshHeading>" for m in mesh)
    pt_xml = "".join(f'<PublicationType UI="D0">{_esc(p)}</PublicationType>'
                     for p in publication_types)
    cc_xml = "".join(f'<CommentsCorrections RefType="{ref}"><RefSource>Synthetic</RefSource>'
                     f'<PMID Version="1">{target}</PMID></CommentsCorrections>'
                     for ref, target in comments)
    return (
        f'<PubmedArticle><MedlineCitation Status="{status}" Owner="NLM">'
        f'<PMID Version="{version}">{pmid}</PMID>'
        f"<DateRevised><Year>{revised.year}</Year><Month>{revised.month:02d}</Month>"
        f"<Day>{revised.day:02d}</Day></DateRevised>"
        f"<Article PubModel=\"Print\"><Journal><JournalIssue CitedMedium=\"Internet\"><PubDate>"
        f"<Year>{created.year}</Year><Month>{created.month:02d}</Month></PubDate></JournalIssue>"
        f"<Title>Journal of Synthetic Haematology</Title><ISOAbbreviation>J Synth Haematol"
        f"</ISOAbbreviation></Journal><ArticleTitle>{_esc(title)}</ArticleTitle>"
        f"<Abstract><AbstractText>{_esc(abstract)}</AbstractText></Abstract>"
        f"<AuthorList><Author><LastName>Testauthor</LastName><ForeName>Ana</ForeName>"
        f"<Initials>A</Initials></Author></AuthorList><Language>eng</Language>"
        f"<PublicationTypeList>{pt_xml}</PublicationTypeList></Article>"
        + (f"<MeshHeadingList>{mesh_xml}</MeshHeadingList>" if mesh_xml else "")
        + (f"<CommentsCorrectionsList>{cc_xml}</CommentsCorrectionsList>" if cc_xml else "")
        + "</MedlineCitation><PubmedData><History>"
        f'<PubMedPubDate PubStatus="entrez"><Year>{created.year}</Year><Month>{created.month}'
        f"</Month><Day>{created.day}</Day><Hour>6</Hour><Minute>0</Minute></PubMedPubDate>"
        f'<PubMedPubDate PubStatus="pubmed"><Year>{created.year}</Year><Month>{created.month}'
        f"</Month><Day>{created.day}</Day></PubMedPubDate></History>"
        f"<PublicationStatus>ppublish</PublicationStatus><ArticleIdList>"
        f'<ArticleId IdType="pubmed">{pmid}</ArticleId></ArticleIdList></PubmedData>'
        "</PubmedArticle>\n"
    ).encode("utf-8")


def write_article_set(path: Path, articles: list[bytes], *, deleted: tuple[int, ...] = ()) -> Path:
    """Write a PubmedArticleSet file (``.xml`` or ``.xml.gz``) of ``articles``."""
    body = _EFETCH_HEAD + b"<PubmedArticleSet>\n" + b"".join(articles)
    if deleted:
        body += b"<DeleteCitation>" + b"".join(
            b'<PMID Version="1">%d</PMID>' % p for p in deleted) + b"</DeleteCitation>\n"
    body += b"</PubmedArticleSet>\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(body) if path.name.endswith(".gz") else body)
    return path


def write_synthetic_corpus(dest: Path | str, count: int, *, first_pmid: int = 95_000_001,
                           start: date = date(2025, 1, 1), days: int = 300,
                           per_file: int = 1000) -> list[Path]:
    """``count`` synthetic MEDLINE records, create dates spread over ``days`` from ``start``."""
    from datetime import timedelta

    dest = Path(dest)
    paths = []
    articles = [synthetic_article(first_pmid + i,
                                  created=start + timedelta(days=(i * days) // max(count, 1)))
                for i in range(count)]
    for n, offset in enumerate(range(0, count, per_file)):
        paths.append(write_article_set(dest / f"synthetic_{n:04d}.xml",
                                       articles[offset:offset + per_file]))
    return paths
