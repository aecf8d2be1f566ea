"""The only code that talks to NCBI E-utilities.

Every request goes through one process-wide rate limiter, carries ``tool``, ``email`` and (when
configured) ``api_key``, and is sent as a form POST so the key never appears in a URL (httpx
logs URLs). Failures NCBI produces under load are retried with exponential backoff and full
jitter: HTTP 429 (honouring ``Retry-After``, seconds or an HTTP-date), 5xx, timeouts,
connection errors, truncated or non-XML bodies and ``<ERROR>`` answers inside a 200 (NCBI
sends transient bogus errors that way).
Other 4xx fail at once. Retries are bounded per request (``entrez_max_retries``) and per run
(``entrez_retry_budget``). Every message that could carry the key is redacted.
"""

from __future__ import annotations

import logging
import random
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from lxml import etree

from monitor.pubmed_xml import check_eutils_error
from monitor.ratelimit import RateLimiter, shared_limiter
from reports.words import plural
from store.errors import EntrezError
from store.ids import is_ascii_number, parse_id
from store.settings import Settings, is_ncbi
from store.text import quoted

log = logging.getLogger(__name__)

PUBMED_SEARCH_CAP = 9999
#: The hint of an answer that parsed but does not hold what E-utilities promises.
_MALFORMED_HINT = "NCBI, or a proxy before it, answered in error; the next poll asks again"
_PARSER_OPTIONS = {"resolve_entities": False, "no_network": True, "load_dtd": False,
                   "huge_tree": True}


#: ErrorList/WarningList entries by which esearch says it left part of the term out and
#: searched the rest (ENTREZ.md §2.1: a 200 answer, not an error). ``OutputMessage`` ("No items
#: found.", "Restrictions achieved...") says nothing about the term and is not one of them.
_DROPPED_WHY = {"PhraseNotFound": "phrase not found", "FieldNotFound": "field not found",
                "QuotedPhraseNotFound": "quoted phrase not found",
                "PhraseIgnored": "phrase ignored"}


@dataclass
class SearchResult:
    count: int
    ids: list[int]
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # ErrorList (e.g. PhraseNotFound)
    webenv: str | None = None
    query_key: str | None = None
    #: What NCBI left out of the term, each as "<term> (<why>)": the search ran without them.
    dropped: list[str] = field(default_factory=list)


class _Retryable(Exception):
    def __init__(self, reason: str, *, retry_after: float | None = None,
                 unreachable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.unreachable = unreachable


def _retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait, in either form RFC 9110 §10.2.3 allows:
    delay-seconds or an HTTP-date (a date already past: 0). None when absent or unreadable
    (our own backoff applies). The caller clamps it to ``retry_after_max``. A date was read as
    nothing before, and the request retried within about a second."""
    if not value or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": an HTTP-date is always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class EntrezClient:
    """httpx client for esearch / efetch / epost with rate limiting and retries."""

    def __init__(self, settings: Settings, *, backoff_base: float = 0.5,
                 backoff_max: float = 60.0, retry_after_max: float = 120.0,
                 limiter: RateLimiter | None = None, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.base_url = settings.entrez_url
        if not settings.entrez_email and is_ncbi(self.base_url):
            # NCBI contacts this address before it blocks a misbehaving client; without it a
            # block is the first thing an operator hears.
            log.warning("MMLR_ENTREZ_EMAIL is not set: NCBI asks every E-utilities client for "
                        "a contact address and may block clients without one")
        self._key = settings.entrez_api_key.get_secret_value() if settings.entrez_api_key else ""
        self.limiter = limiter or shared_limiter(self._key or None, settings.request_rate)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self.max_retries = settings.entrez_max_retries
        self.retry_budget = settings.entrez_retry_budget
        self.requests = 0
        self.retries = 0
        self._rng = rng or random.Random()
        # NODELAY: httpx writes a POST's headers and body separately; with Nagle's algorithm
        # the body waits for the server's delayed ACK (~40 ms per request).
        # Loading the CA bundle costs ~0.1 s per client and is useless for plain http (the
        # replay server); https URLs always verify certificates.
        transport = httpx.HTTPTransport(
            verify=self.base_url.startswith("https:"),
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        self._http = httpx.Client(
            base_url=self.base_url, timeout=settings.entrez_timeout, transport=transport,
            headers={"User-Agent": f"{settings.entrez_tool} (mmlr living review)"},
        )

    # -- lifecycle
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EntrezClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers
    def redact(self, text: str) -> str:
        """``text`` with the API key replaced (NCBI echoes it in 429 bodies)."""
        return text.replace(self._key, "***") if self._key else text

    def _params(self, params: dict[str, Any]) -> dict[str, Any]:
        full: dict[str, Any] = {"db": "pubmed", "tool": self.settings.entrez_tool}
        if self.settings.entrez_email:
            full["email"] = self.settings.entrez_email
        if self._key:
            full["api_key"] = self._key
        full.update(params)
        return full

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        # Full jitter (uniform 0..base*2^n) spreads retries of parallel clients apart.
        delay = self._rng.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** attempt))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.retry_after_max))
        return delay

    def _once(self, endpoint: str, data: dict[str, Any],
              expect: str) -> tuple[etree._Element, bytes]:
        try:
            resp = self._http.post(f"{endpoint}.fcgi", data=data)
        except httpx.TimeoutException as exc:
            raise _Retryable(f"timed out after {self.settings.entrez_timeout:g} s "
                             f"({type(exc).__name__})", unreachable=True) from None
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise _Retryable(reason, unreachable=isinstance(exc, httpx.ConnectError)) from None
        status = resp.status_code
        if status == 429:
            self.limiter.defer(1.0)
            raise _Retryable(f"HTTP 429 {self.redact(resp.text[:200])}",
                             retry_after=_retry_after(resp.headers.get("Retry-After")))
        if status >= 500:
            raise _Retryable(f"HTTP {status}", retry_after=_retry_after(
                resp.headers.get("Retry-After")))
        if status >= 400:
            snippet = " ".join(self.redact(resp.text).split())[:300]
            raise EntrezError(
                f"E-utilities {endpoint} at {self.base_url} refused the request with HTTP "
                f"{status}: {snippet}",
                hint="a client error is not retried; check MMLR_ENTREZ_URL and the query",
            )
        error = check_eutils_error(resp.content)
        if error is not None:
            raise _Retryable(f"<ERROR> in a 200 answer: {self.redact(error)}")
        try:
            root = etree.fromstring(resp.content, etree.XMLParser(**_PARSER_OPTIONS))
        except etree.XMLSyntaxError as exc:
            raise _Retryable(f"truncated or non-XML body ({str(exc).splitlines()[0]})") from None
        if root.tag != expect:
            raise _Retryable(f"unexpected <{root.tag}> answer (wanted <{expect}>)")
        return root, resp.content

    def _request(self, endpoint: str, params: dict[str, Any],
                 expect: str) -> tuple[etree._Element, bytes]:
        data = self._params(params)
        attempt = 0
        while True:
            self.limiter.acquire()
            self.requests += 1
            try:
                try:
                    return self._once(endpoint, data, expect)
                finally:
                    self.limiter.release()
            except _Retryable as failure:
                if attempt >= self.max_retries:
                    if failure.unreachable:
                        raise EntrezError(
                            f"cannot reach E-utilities at {self.base_url}: "
                            f"{self.redact(failure.reason)} "
                            f"(after {plural(attempt + 1, 'attempt')})",
                            hint="check MMLR_ENTREZ_URL and the network",
                        ) from None
                    raise EntrezError(
                        f"E-utilities {endpoint} failed after {plural(attempt + 1, 'attempt')}: "
                        f"{self.redact(failure.reason)}",
                        hint="NCBI may be overloaded; the next poll resumes where this stopped",
                    ) from None
                if self.retries >= self.retry_budget:
                    raise EntrezError(
                        f"E-utilities retry budget of {self.retry_budget} retries for this run is "
                        f"spent (last: {endpoint} {self.redact(failure.reason)})",
                        hint="the next poll resumes; raise MMLR_ENTREZ_RETRY_BUDGET if NCBI is "
                        "flaky",
                    ) from None
                delay = self._backoff(attempt, failure.retry_after)
                attempt += 1
                self.retries += 1
                log.info("E-utilities %s: %s; retry %d/%d in %.2f s", endpoint,
                     self.redact(failure.reason), attempt, self.max_retries, delay)
                time.sleep(delay)

    # -- endpoints
    def esearch(self, term: str, *, retstart: int = 0, retmax: int = PUBMED_SEARCH_CAP,
                usehistory: bool = False) -> SearchResult:
        params: dict[str, Any] = {"term": term, "retstart": retstart, "retmax": retmax}
        if usehistory:
            params["usehistory"] = "y"
        root, _ = self._request("esearch", params, "eSearchResult")
        count_text = (root.findtext("Count") or "").strip()
        if not is_ascii_number(count_text):
            raise EntrezError("E-utilities esearch answer has no <Count>"
                              + (f" (it reads {quoted(count_text)})" if count_text else ""),
                              hint=_MALFORMED_HINT)
        count = int(count_text)
        ids = []
        for node in root.iterfind("IdList/Id"):
            pmid = parse_id(node.text or "")
            if pmid is None:  # dropped, the record would never be fetched, and nobody told
                raise EntrezError(f"E-utilities esearch answer has an <Id> that is not a PMID: "
                                  f"{quoted(node.text or '')}", hint=_MALFORMED_HINT)
            ids.append(pmid)
        warnings = [" ".join((w.text or "").split()) for w in root.iterfind("WarningList/*")]
        errors = [" ".join((e.text or "").split()) for e in root.iterfind("ErrorList/*")]
        dropped = []
        for parent in ("ErrorList", "WarningList"):
            for node in root.iterfind(f"{parent}/*"):
                tag = node.tag if isinstance(node.tag, str) else ""
                # Every ErrorList entry is about the term; of the warnings, the known ones.
                why = _DROPPED_WHY.get(tag, tag if parent == "ErrorList" else "")
                text = " ".join((node.text or "").split())
                if why and text:
                    dropped.append(f"{text} ({why})")
        return SearchResult(count=count, ids=ids, warnings=warnings, errors=errors,
                            webenv=root.findtext("WebEnv"), query_key=root.findtext("QueryKey"),
                            dropped=dropped)

    def efetch_xml(self, pmids: list[int]) -> bytes:
        """PubmedArticleSet XML for an explicit PMID list (POST; missing PMIDs are absent)."""
        if not pmids:
            return b"<PubmedArticleSet></PubmedArticleSet>"
        _, body = self._request("efetch", {"id": ",".join(str(p) for p in pmids),
                                           "retmode": "xml"}, "PubmedArticleSet")
        return body

    def epost(self, pmids: list[int]) -> tuple[str, str]:
        """Store PMIDs on the history server; return (WebEnv, query_key)."""
        root, _ = self._request("epost", {"id": ",".join(str(p) for p in pmids)}, "ePostResult")
        webenv, key = root.findtext("WebEnv"), root.findtext("QueryKey")
        if not webenv or not key:
            raise EntrezError("E-utilities epost answer has no WebEnv/QueryKey")
        return webenv, key
