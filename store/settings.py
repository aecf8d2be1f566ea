"""The one settings object of mmlr.

Every setting is declared once here (name, default, help) and read from the environment with
the ``MMLR_`` prefix. The defaults run the whole service with nothing configured: a SQLite
file in ``./mmlr-data``, digests written to an outbox folder there, the real NCBI address for
E-utilities. The README's settings table is generated from the fields' descriptions below by
``mmlr config --markdown`` (a test compares them) so the documentation cannot drift from the code.

The settings object lives in ``store`` (not ``monitor``) so that every package can accept it
as a parameter without importing the service shell.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import secrets
import threading
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, unquote, unquote_plus, urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from store.errors import ConfigError
from store.numbers import parse_decimal
from store.utf8 import is_utf8

NCBI_EUTILS_URL = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"

#: The protocol's high-recall PubMed query (DOMAIN.md, "Finding the trials in PubMed").
PROTOCOL_QUERY = (
    '("Multiple Myeloma"[Mesh] OR myeloma[tiab]) AND (maintenance[tiab] OR '
    '"Maintenance Chemotherapy"[Mesh] OR consolidation[tiab]) AND '
    '(randomized controlled trial[pt] OR randomi*[tiab] OR "phase III"[tiab] OR '
    '"phase 3"[tiab])'
)


def is_ncbi(url: str) -> bool:
    """Whether ``url`` is NCBI's own E-utilities host (its rate limits and contact rules apply;
    a mirror or the replay server is not)."""
    return (urlsplit(url).hostname or "").endswith("ncbi.nlm.nih.gov")


#: The endpoints of the analyses (``reports.analyses``): EFS and TTP are pooled as PFS.
MONITORING_ENDPOINTS = ("PFS", "OS")
DEFAULT_MONITORING_HR = 0.80


#: The plausible range of an anticipated HR (the smallest effect worth detecting). It is the
#: *smallest* benefit that would matter, so it lies between 1 and the largest effects seen:
#: maintenance in myeloma has reached HRs near 0.5 (lenalidomide PFS), and an HR of 0.2 would be
#: an 80% cut in the hazard, beyond any maintenance effect, whose required information (about a
#: dozen events) no real trial lacks: the plan would be met by any data. Below 0.2 is a typo
#: (``80`` for 0.80, ``0.08``) or no plan at all. Harm (HR > 1) is monitored too, bounded by the
#: same effect on the log scale: 1/0.2 = 5.
MONITORING_HR_RANGE = (0.2, 5.0)


def is_monitorable_hr(hr: float) -> bool:
    """Whether ``hr`` can be an anticipated effect of sequential monitoring: a hazard ratio in
    :data:`MONITORING_HR_RANGE` other than 1 (1 asks for infinite information). The one rule for
    MMLR_MONITORING_HR, an analyses-file ``monitoring_hr`` and a monitoring plan."""
    low, high = MONITORING_HR_RANGE
    return math.isfinite(hr) and low <= hr <= high and hr != 1


#: What :func:`is_monitorable_hr` admits, in words, for the error messages.
MONITORING_HR_RULE = (f"a hazard ratio other than 1 from {MONITORING_HR_RANGE[0]:g} to "
                      f"{MONITORING_HR_RANGE[1]:g}, e.g. 0.80")


def monitoring_hrs(value: str | float) -> dict[str, float]:
    """The anticipated HR of sequential monitoring per analysis endpoint, from
    ``MMLR_MONITORING_HR``: ``"0.80"`` (every endpoint), ``"PFS=0.75,OS=0.85"``, or a bare
    number with named endpoints (``"0.8,OS=0.9"``; the number is for those not named).

    Raises ValueError saying which part is wrong: an HR of 1 asks for infinite information,
    one outside :data:`MONITORING_HR_RANGE` is no plausible effect (``80`` for 0.80), and an
    unknown or repeated endpoint is a typo.
    """
    if isinstance(value, int | float):
        value = str(value)
    out: dict[str, float] = {}
    default: float | None = None
    for part in (p.strip() for p in value.split(",")):
        if not part:
            raise ValueError(f"empty entry in {value!r}: use e.g. 0.80 or PFS=0.75,OS=0.85")
        name, _, number = part.rpartition("=")
        name = name.strip().upper()
        try:
            hr = parse_decimal(number)
        except ValueError as exc:
            raise ValueError(f"{exc} (in {value!r})") from None
        if not is_monitorable_hr(hr):
            raise ValueError(f"must be {MONITORING_HR_RULE}, got {hr:g}")
        if not name:
            if default is not None:
                raise ValueError(f"two HRs for every endpoint in {value!r}")
            default = hr
        elif name not in MONITORING_ENDPOINTS:
            raise ValueError(f"unknown endpoint {name!r}: use {' or '.join(MONITORING_ENDPOINTS)} "
                             "(EFS and TTP are pooled as PFS)")
        elif name in out:
            raise ValueError(f"{name} is given twice in {value!r}")
        else:
            out[name] = hr
    fallback = DEFAULT_MONITORING_HR if default is None else default
    return {endpoint: out.get(endpoint, fallback) for endpoint in MONITORING_ENDPOINTS}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine: localhost, 127.0.0.0/8, ::1."""
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_dual_screening(screeners_per_record: int) -> bool:
    """Whether ``screeners_per_record`` means dual screening (two blind votes per record).

    The one place that turns the number into the mode, for ``Settings.dual_screening`` and for
    the functions that take the number as a parameter; the validator admits only 1 and 2.
    """
    return screeners_per_record >= 2


_PLACEHOLDER_SECRETS = {
    "",
    "changeme",
    "change-me",
    "secret",
    "dev",
    "development",
    "please-change",
}


def share_problem(value: float, example: str) -> str | None:
    """Why ``value`` is no power or recall target (None when it is one). Below 0.5 it says
    little, and 1 cannot be reached: no design has power 1, sampling never shows recall 1."""
    if 0.5 <= value < 1:
        return None
    return f"must be at least 0.5 and below 1, e.g. {example}, got {value:g}"


#: The ports ``MMLR_PORT`` and every ``--port`` accept.
PORT_RANGE = (1, 65_535)

def url_port_problem(url: str) -> str | None:
    """Why the port written in ``url`` is not one to connect to, naming it and the allowed
    range; None when it has none (the scheme's default) or one from 1 to 65535.

    The one rule for the URL settings (E-utilities, SMTP). ``urlsplit`` admits a port 0 (the
    SMTP client then took the default, 25, without a word) and raises only when ``.port`` is
    read, far from the settings (httpx stopped the first poll with "Invalid port"). Only the
    port is shown: the rest of the URL may hold a password."""
    host_port = urlsplit(url).netloc.rpartition("@")[2]
    if host_port.startswith("["):  # an IPv6 address: its colons are not the port's
        host_port = host_port.rpartition("]")[2]
    _, colon, port = host_port.partition(":")
    if not colon or not port:  # "host:" is the default port, as urlsplit reads it
        return None
    low, high = PORT_RANGE
    if port.isascii() and port.isdigit() and low <= int(port) <= high:
        return None
    return f"has an invalid port {port!r}: a port is a whole number from {low} to {high}"


#: The whole-number settings' allowed range (lowest, highest or None for no limit), checked at
#: load: each bound is where the code stops doing what the setting says.
_INT_RANGES: dict[str, tuple[int, int | None]] = {
    # 0 divides by zero when batches are counted; a negative size fetches nothing and the
    # poll still completes, so the records are lost. NCBI's efetch takes at most 10,000 UIDs.
    "entrez_batch_size": (1, 10_000),
    # A negative overlap leaves days between two poll windows that no poll searches. More
    # than a year of overlap re-fetches a year every day: a typo, not a safety margin.
    "poll_overlap_days": (0, 365),
    # 0 turns the re-check off (and the first modified pass starts today); ten years is far
    # beyond MEDLINE indexing (weeks to months) and keeps the date arithmetic in range.
    "recheck_days": (0, 3650),
    # 0 retries is a valid choice (fail on the first error); a negative count means nothing.
    "entrez_max_retries": (0, None),
    "entrez_retry_budget": (0, None),
    # 0 would retrain at every screening run, with no new decision to learn from.
    "retrain_min_decisions": (1, None),
    # 0 days would issue tokens that are dead on arrival; ten years is "never" in practice and
    # keeps the date arithmetic in range.
    "api_token_days": (1, 3650),
    "port": PORT_RANGE,
}

#: The earliest create date a poll may start from (``MMLR_POLL_START``, ``--since``): PubMed's
#: create dates begin in the 20th century, and a window near year 1 would underflow the next
#: poll's overlap.
EARLIEST_POLL_DATE = date(1900, 1, 1)


#: The slowest request rate taken: one request every 100 s.
MIN_ENTREZ_RATE = 0.01


def parse_poll_start(value: str) -> date:
    """``MMLR_POLL_START`` (``YYYY/MM/DD``, PubMed's own date form) as a date; ValueError
    saying what it allows otherwise."""
    try:
        day = datetime.strptime(value.strip(), "%Y/%m/%d").date()
    except ValueError:
        raise ValueError(f"must be a date YYYY/MM/DD, e.g. 2024/01/01, got {value!r}") from None
    if day < EARLIEST_POLL_DATE:
        raise ValueError(f"must not be before {EARLIEST_POLL_DATE:%Y/%m/%d}: PubMed has no "
                         f"records created then, got {value!r}")
    if day > datetime.now(UTC).date():
        # The first poll's window would end before it starts (and the error would then
        # blame --since/--until, which nobody typed).
        raise ValueError(f"must not be in the future: the first poll starts there and ends "
                         f"today, got {value!r}")
    return day


def _check_address(address: str) -> None:
    """An e-mail address setting by the rule of every address mmlr accepts
    (``store.addresses.check_email``), its refusal as the ValueError a validator raises."""
    from store.addresses import check_email
    from store.errors import ValidationError

    try:
        check_email(address)
    except ValidationError as exc:
        raise ValueError(exc.one_line()) from None


def _number_kinds(annotation: object) -> set[type]:
    """The number types (int, float) a setting's annotation allows: ``float | None`` gives
    {float}, ``str | float`` {float}, ``str`` nothing."""
    args = getattr(annotation, "__args__", None) or (annotation,)
    return {arg for arg in args if arg in (int, float)}


#: The database URL forms mmlr can open, in words, for the error messages.
DATABASE_URL_FORMS = "sqlite:///PATH or postgresql+psycopg://USER:PASS@HOST/DB"

#: The database URL schemes mmlr opens, and the one each becomes. They are the drivers mmlr
#: installs: Python's sqlite3 and psycopg 3. SQLAlchemy knows many more (psycopg2, asyncpg,
#: pg8000, aiosqlite, …) that are not installed, or not synchronous, and those failed only at
#: the first connection, as an internal error. A plain ``postgresql://`` would mean psycopg2
#: to SQLAlchemy: it gets psycopg 3.
_DATABASE_SCHEMES = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite+pysqlite",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}


def _userinfo_end(value: str) -> tuple[int, int] | None:
    """Where a URL's user name and password are (start, end: the position of the LAST '@'
    of the authority, before any query), or None when it names none. The last '@', not the
    first: SQLAlchemy's parser stops at the first, so an unencoded '@' in a password left the
    rest of the password in the host, shown beside the mask."""
    start = value.find("://")
    if start < 0:
        return None
    start += 3
    if value.startswith("/", start):  # sqlite:///PATH: no authority, a path may hold '@'
        return None
    query = value.find("?", start)
    at = value.rfind("@", start, len(value) if query < 0 else query)
    return (start, at) if at >= 0 else None


def masked_database_url(value: str) -> str:
    """``value`` with everything before the last '@' of its authority (user and password,
    however they are written) as ``***``: for a URL that cannot be parsed as it stands."""
    span = _userinfo_end(value)
    return value if span is None else value[:span[0]] + "***" + value[span[1]:]


#: The passwords of the database URLs this process was given (:func:`remember_password`),
#: as written and percent-decoded: :func:`masked` hides them wherever a message quotes them.
_PASSWORDS: set[str] = set()
_PASSWORDS_LOCK = threading.Lock()
#: ``password=VALUE`` (``sslpassword``, ``PGPASSWORD``, any case), the value bare or quoted:
#: libpq's key-value connection strings, a URL's query, an environment listing.
_PASSWORD_PAIR = re.compile(
    r"""(\b[\w-]*password\s*=\s*)('(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|[^\s&'",;)]+)""",
    re.IGNORECASE)


def passwords_of(url: str) -> set[str]:
    """The password of a database URL (the user part's and the query's ``?password=``,
    ``?sslpassword=``), as written and percent-decoded; empty without one."""
    found: list[str] = []
    span = _userinfo_end(url)
    if span is not None:
        _user, colon, password = url[span[0]:span[1]].partition(":")
        if colon and password:
            found += [password, unquote(password), unquote_plus(password)]
    _base, question, query = url.partition("?")
    for item in query.split("&") if question else ():
        key, equals, value = item.partition("=")
        if equals and value and "password" in unquote_plus(key).lower():
            found += [value, unquote_plus(value)]
    return {password for password in found if password}


def remember_password(url: str) -> None:
    """Note the password of ``url`` (:func:`passwords_of`), so that :func:`masked` hides it in
    any message that quotes it."""
    with _PASSWORDS_LOCK:
        _PASSWORDS.update(passwords_of(url))


def forget_passwords() -> None:
    """Forget the passwords :func:`remember_password` noted: a new command in this process
    (``monitor.cli.main``, run again by the tests) masks those it is given."""
    with _PASSWORDS_LOCK:
        _PASSWORDS.clear()


def masked(text: str, *urls: str) -> str:
    """``text`` (a driver's error, a log line, a traceback) with every database password
    as ``***``: the literal password of each database URL this process was given
    (``store.engine.make_engine`` notes it) and of ``urls``, wherever it appears (libpq
    quotes parts of its connection string: ``invalid percent-encoded token: "…"``), and the
    value of every ``password=…`` pair. ``store.engine.shown_url`` masks a URL; this, text
    that may quote a password."""
    with _PASSWORDS_LOCK:
        known = set(_PASSWORDS).union(*(passwords_of(url) for url in urls))
    for password in sorted(known, key=len, reverse=True):  # a short one may be inside a long
        text = text.replace(password, "***")
    return _PASSWORD_PAIR.sub(r"\1***", text)


def unencoded_at_in_userinfo(value: str) -> bool:
    """Whether the user name or password holds a '@' not written as %40 (ambiguous: no
    parser can tell where the password ends)."""
    span = _userinfo_end(value)
    return span is not None and "@" in value[span[0]:span[1]]


#: The one-line refusal of :func:`unencoded_at_in_userinfo` (the URL itself is never quoted).
UNENCODED_AT = ("has an '@' in its user name or password: write each '@' there "
                "percent-encoded, as %40 (e.g. postgresql+psycopg://mm:Ab%40cd@HOST/DB)")


def supported_database_url(value: str) -> str:
    """``value`` as the URL mmlr opens (``postgresql://`` as ``postgresql+psycopg://``); a
    ValueError naming the accepted forms when its scheme or driver is not one mmlr ships. The
    one rule for ``MMLR_DATABASE_URL`` and the target of ``mmlr copy-db``. Only the scheme is
    ever shown: the rest of the URL may hold a password."""
    scheme, separator, rest = value.partition(":")
    if not separator:
        return value  # no scheme at all: SQLAlchemy's parser refuses it, without echoing it
    if scheme in _DATABASE_SCHEMES:
        return _DATABASE_SCHEMES[scheme] + separator + rest
    backend, plus, driver = scheme.partition("+")
    if plus and backend in ("sqlite", "postgresql"):
        raise ValueError(
            f"unsupported database driver {driver!r} in {scheme}://: mmlr ships Python's "
            "sqlite3 and psycopg 3 and opens only sqlite://, sqlite+pysqlite://, "
            f"postgresql:// and postgresql+psycopg:// URLs, e.g. {DATABASE_URL_FORMS}")
    raise ValueError(f"unsupported database URL scheme {scheme!r}: use {DATABASE_URL_FORMS}")


#: The level names ``MMLR_LOG_LEVEL`` accepts (any case): the standard ones of ``logging``.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Settings(BaseSettings):
    """All configuration. Build it with :func:`load_settings` (or ``Settings()``)."""

    model_config = SettingsConfigDict(env_prefix="MMLR_", extra="ignore", frozen=True)

    env: Literal["development", "production", "test"] = Field(
        "development",
        description="`development`, `test` or `production`; `production` refuses generated or "
        "placeholder secrets and an unset `MMLR_SECRET_KEY`.",
    )
    data_dir: Path = Field(
        Path("./mmlr-data"),
        description="Folder for the SQLite file, the log, the outbox, demo corpus, models and "
        "the generated secret key; mmlr must be able to create it and write to it.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL. Default: `sqlite:///<data dir>/mmlr.sqlite3`. For "
        "PostgreSQL: `postgresql+psycopg://user:pass@host:5432/db` (psycopg 3; `postgresql://` "
        "means the same). Drivers mmlr does not ship (`+psycopg2`, `+asyncpg`, `+aiosqlite`, "
        "…) are refused, and so is an in-memory SQLite database (`sqlite://`): nothing would "
        "be kept. An `@` in the user name or password must be written `%40` (an unencoded one "
        "is refused: no parser can tell where the password ends).",
    )
    entrez_url: str = Field(
        NCBI_EUTILS_URL, description="Base URL of NCBI E-utilities, without `user:password@` "
        "(NCBI needs no login; the API key has its own setting)."
    )
    entrez_email: str | None = Field(
        None, description="Contact address sent to NCBI with every request (NCBI asks for it)."
    )
    entrez_api_key: SecretStr | None = Field(
        None, description="NCBI API key: raises the rate from 3 to 10 requests/s. Never logged."
    )
    entrez_tool: str = Field("mmlr", description="`tool` parameter sent to NCBI (no spaces).")
    entrez_timeout: float = Field(
        30.0, description="Seconds before one E-utilities request times out (above 0)."
    )
    entrez_max_retries: int = Field(
        6, description="Retries of one request on 429/5xx/timeouts (0 or more)."
    )
    entrez_retry_budget: int = Field(
        200, description="Retries allowed in one poll run before it stops with an error (0 or "
        "more)."
    )
    entrez_batch_size: int = Field(
        200, description="PMIDs per efetch POST, 1 to 10000 (NCBI's efetch limit)."
    )
    entrez_rate: float | None = Field(
        None,
        description="Requests per second (0.01 or more). Default 2.7 without an API key, 9 with "
        "one (below NCBI's 3 and 10, as NCBI advises); above 3 (10 with a key) it is refused for "
        "NCBI's own host.",
    )
    poll_overlap_days: int = Field(
        3, description="Each poll window starts this many days (0 to 365) before the previous "
        "one ended."
    )
    poll_start: str = Field(
        "2024/01/01",
        description="Create-date (`[crdt]`) start of the very first poll, `YYYY/MM/DD` "
        "(from 1900/01/01, not after today).",
    )
    recheck_days: int = Field(
        120,
        description="Records not yet MEDLINE-indexed are re-fetched for this many days (0 to "
        "3650; 0: never) after they first appear, to pick up MeSH and publication types.",
    )
    query: str = Field(
        PROTOCOL_QUERY,
        description="PubMed query of the protocol (not empty; its parentheses and double "
        "quotes balanced). Its AND-ed groups are also the keyword prior's gates: the commands "
        "that need the prior refuse syntax it cannot evaluate (docs/curation.md).",
    )
    smtp_url: SecretStr | None = Field(
        None,
        description="`smtp://user:pass@host:587?starttls=true` or `smtps://…`, optionally "
        "`timeout=SECONDS` (above 0, default 30); `starttls` is `true` or `false`, other "
        "parameters are refused; a `#`, `/` or `?` in the user name or password must be "
        "percent-encoded (`%23`, `%2F`, `%3F`: the password `Ab#cd` is written `Ab%23cd`), "
        "else the URL is refused (an `@` may stay as it is); unset: digests go to the outbox "
        "folder.",
    )
    mail_from: str = Field("mmlr@localhost", description="Sender of digest e-mails: an "
                           "address, or `Name <address>` (one mailbox; a name with a comma "
                           "is quoted, `\"Name, Team\" <address>`, and has no @).")
    digest_to: str = Field(
        "",
        description="Comma-separated fixed digest recipients (each an e-mail address, as "
        "for subscribers): they always receive the digest, "
        "beside the subscribers managed on `/admin/subscribers` or with `mmlr subscribers`, and "
        "cannot unsubscribe by a link (remove them here).",
    )
    admin_email: str = Field(
        "admin@localhost", description="First admin, created by `init`/`demo`."
    )
    admin_password: SecretStr | None = Field(
        None, description="Password of the first admin, checked by `init`/`demo` when they "
        "create it (at least 15 characters, not naming the address: docs/operations.md, "
        "\"Security\"); unset: generated and printed once."
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Signs sessions and CSRF tokens. Unset in development: generated and kept in "
        "the data dir. Required in production.",
    )
    poll_cron: str = Field(
        "0 6 * * *", description="Cron (UTC) of the monitoring cycle; `serve`/`worker` refuse a "
        "cron that never fires (`0 6 31 2 *`), as for the other crons."
    )
    digest_cron: str = Field("0 7 * * 1", description="Cron (UTC) of the weekly digest.")
    modified_cron: str = Field(
        "0 5 * * 0",
        description="Cron (UTC) of the modification-date (`[mdat]`) pass that re-fetches "
        "stored records PubMed changed since (retractions, errata, late indexing).",
    )
    retrain_min_decisions: int = Field(
        10, description="New curator decisions (1 or more) that trigger retraining of the "
        "classifier between scheduled runs; the daily cycle retrains on any change of the "
        "training set."
    )
    target_recall: float = Field(
        0.99, description="Recall the flag threshold is calibrated to by cross-validation (at "
        "least 0.5, below 1). A change retrains the classifier at the next `mmlr screen`; the "
        "keyword prior's threshold is a fixed score of 0.5, not calibrated."
    )
    audit_fraction: float = Field(
        0.05, description="Share of low-score records routed to curators as a random audit "
        "(above 0, below 1: the audit is the recall check that does not rest on the model)."
    )
    stopping_recall: float = Field(
        0.95, description="Recall target of the stopping tests in the screening health (queue "
        "banner, digest): they say whether recall is at least this with 95% confidence."
    )
    screeners_per_record: int = Field(
        1,
        description="Independent screeners per record, at both stages: `1` one decision (one "
        "full-text verdict) settles a record; `2` dual screening (two people vote blind on "
        "titles/abstracts, disagreements go to `/conflicts`; two people assess each full text "
        "blind, conflicts are resolved on the record page). See docs/curation.md.",
    )
    verify_second_person: bool = Field(
        True,
        description="`true`: an estimate is verified by a second person (double data "
        "extraction): whoever enters or corrects it cannot save it verified nor verify it "
        "later; another curator or an admin does. `false`: people may verify their own "
        "estimates. See docs/curation.md.",
    )
    api_token_days: int = Field(
        90, description="Days an API token works after it is issued (1 to 3650); then the API "
        "answers 401 and its owner creates a new one on /account (or an admin issues one). "
        "Changing it applies to tokens issued afterwards.",
    )
    base_url: str = Field(
        "http://127.0.0.1:8000", description="Public URL of the web app, used in e-mail links; "
        "`https://` (plain `http://` only on a loopback address: the login and the session "
        "cookie must not cross a network in clear)."
    )
    host: str = Field("127.0.0.1", description="Address `serve`/`web` listen on (one address "
                      "or host name; an empty one is refused, as it would mean every "
                      "interface).")
    port: int = Field(8000, description="Port `serve`/`web` listen on (1 to 65535).")
    pool_method: Literal["REML", "DL", "PM", "FE"] = Field(
        "REML", description="τ² estimator of the primary analyses: `REML`, `DL` "
        "(DerSimonian–Laird), `PM` (Paule–Mandel) or `FE` (fixed effect, no τ²)."
    )
    pool_ci: Literal["hksj", "hksj-adhoc", "wald"] = Field(
        "hksj", description="Confidence interval of the primary analyses: `hksj` "
        "(Hartung–Knapp–Sidik–Jonkman), `hksj-adhoc` (the same, never narrower than `wald`: "
        "Knapp–Hartung's ad hoc correction) or `wald` (normal quantiles)."
    )
    analyses_file: Path | None = Field(
        None, description="TOML file of extra analyses, e.g. a drug class pooled together "
        "(IMiD: thalidomide or lenalidomide), and of [[arms]] corrections for the network "
        "meta-analysis; see docs/curation.md, \"Analyses\" and \"Network meta-analysis\".",
    )
    monitoring_hr: str = Field(
        "0.80", description="Sequential monitoring (monitoring only, beside the primary "
        "analysis): the smallest HR worth detecting, which sets the required information. "
        "An HR other than 1 from 0.2 to 5; one for every analysis (`0.80`), or per endpoint "
        "(`PFS=0.75,OS=0.85`; an endpoint not named takes 0.80, or a bare number given with "
        "them). See docs/curation.md, \"Sequential monitoring\".",
    )
    monitoring_power: float = Field(
        0.80, description="Power of the sequential monitoring plan (two-sided α 0.05): at least "
        "0.5 and below 1.",
    )
    log_level: str = Field(
        "INFO", description="Logging level of the entry points: DEBUG, INFO, WARNING, ERROR or "
        "CRITICAL."
    )

    @field_validator(*_INT_RANGES)
    @classmethod
    def _check_int_range(cls, value: int, info: ValidationInfo) -> int:
        low, high = _INT_RANGES[str(info.field_name)]
        if high is None and value < low:
            raise ValueError(f"must be a whole number of at least {low}, got {value}")
        if high is not None and not low <= value <= high:
            raise ValueError(f"must be a whole number from {low} to {high}, got {value}")
        return value

    @field_validator("entrez_timeout")
    @classmethod
    def _check_timeout(cls, value: float) -> float:
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"must be a number of seconds above 0, e.g. 30, got {value:g}")
        return value

    @field_validator("target_recall")
    @classmethod
    def _check_target_recall(cls, value: float) -> float:
        # The same rule as ScreeningConfig.validate, checked at load rather than at the first
        # screening run.
        problem = share_problem(value, "0.99")
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("audit_fraction")
    @classmethod
    def _check_audit_fraction(cls, value: float) -> float:
        # 0 (or below, or nan) puts no record in the audit sample: the screening health would
        # say "not yet possible" for ever, and recall would rest on the model's order alone.
        # 1 or more audits every low-score record, which is screening everything by another name.
        if not 0 < value < 1:
            raise ValueError(f"must be a share above 0 and below 1, e.g. 0.05, got {value:g}")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
        return level

    @field_validator("poll_start")
    @classmethod
    def _check_poll_start(cls, value: str) -> str:
        # Read only by the very first poll: unchecked, a typo would pass every command and
        # stop the worker's first scheduled cycle instead.
        parse_poll_start(value)
        return value.strip()

    @field_validator("query")
    @classmethod
    def _check_query(cls, value: str) -> str:
        # An empty query was sent as "() AND <dates>[crdt]"; an unbalanced one is a typo
        # PubMed reads its own way (an unclosed quote makes the rest one phrase). Kept as
        # written otherwise: the search log compares it with the queries used before.
        problem = query_syntax_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        # An empty host is not "the default": the socket layer binds it to every interface,
        # which would put the plain-HTTP login on the network.
        if not value.strip() or any(ch.isspace() for ch in value.strip()):
            raise ValueError(f"must be one address or host name to listen on, e.g. 127.0.0.1, "
                             f"got {value!r} (an empty one would listen on every interface)")
        return value.strip()

    @field_validator("admin_email")
    @classmethod
    def _check_admin_email(cls, value: str) -> str:
        # the rule for every account; `init` would refuse it only after migrating
        _check_address(value)
        return value.strip()

    @field_validator("entrez_email")
    @classmethod
    def _check_entrez_email(cls, value: str | None) -> str | None:
        # NCBI blocks a tool it cannot reach; a typo here was sent with every request
        if value is None or not value.strip():
            return None
        _check_address(value.strip())
        return value.strip()

    @field_validator("mail_from")
    @classmethod
    def _check_mail_from(cls, value: str) -> str:
        from store.addresses import parse_sender
        from store.errors import ValidationError

        # "Living review <review@example.org>" is a valid sender; its address part follows
        # the rule of every address mmlr accepts (a server would refuse a malformed sender
        # only at the first delivery), and it is one mailbox, parsed as the From header,
        # the envelope and the Message-ID use it (store.addresses.parse_sender).
        try:
            parse_sender(value)
        except ValidationError as exc:
            raise ValueError(exc.one_line()) from None
        return value.strip()

    @field_validator("digest_to")
    @classmethod
    def _check_digest_to(cls, value: str) -> str:
        for address in (a.strip() for a in value.split(",")):
            if address:  # "a@x.org, b@y.org," is a list of two
                _check_address(address)
        return value

    @field_validator("database_url")
    @classmethod
    def _check_db_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        value = supported_database_url(value)  # raises ValueError naming the accepted forms
        scheme = value.split(":", 1)[0]
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        if unencoded_at_in_userinfo(value):
            raise ValueError(UNENCODED_AT)
        try:
            url = make_url(value)
        except (ArgumentError, ValueError):  # ValueError: a port not a number, its text
            # quoting the URL, which may hold a password: neither is echoed
            raise ValueError(f"is not a database URL: use {DATABASE_URL_FORMS}") from None
        # An in-memory SQLite database lives as long as one connection: every command would
        # "succeed" and leave nothing behind.
        if scheme.startswith("sqlite") and (
                not url.database or url.database == ":memory:"
                or url.database.startswith("file::memory:")
                or url.query.get("mode") == "memory"):
            raise ValueError(f"{value} is an in-memory SQLite database, which is lost when "
                             "each command ends: give a file, sqlite:///PATH")
        return value

    @field_validator("screeners_per_record")
    @classmethod
    def _check_screeners(cls, value: int) -> int:
        if value not in (1, 2):
            raise ValueError("must be 1 (single screening) or 2 (dual screening), "
                             f"got {value}")
        return value

    @field_validator("monitoring_hr", mode="before")
    @classmethod
    def _check_monitoring_hr(cls, value: object) -> str:
        text = str(value).strip()
        monitoring_hrs(text)  # raises ValueError naming what is wrong
        return text

    @field_validator("monitoring_power", "stopping_recall")
    @classmethod
    def _check_share(cls, value: float, info: ValidationInfo) -> float:
        problem = share_problem(value, "0.95" if info.field_name == "stopping_recall"
                                else "0.80")
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("entrez_rate")
    @classmethod
    def _check_rate(cls, value: float | None, info: ValidationInfo) -> float | None:
        # NCBI blocks clients above 3 requests/s (10 with an API key); a faster setting would
        # get the whole installation blocked, so it is refused for NCBI's own host. Other
        # hosts (a mirror, our replay server in tests) may go faster.
        if value is None:
            return None
        if not (math.isfinite(value) and value > 0):  # nan > limit is False: refused here
            raise ValueError(f"must be a positive number of requests per second, got {value}")
        if value < MIN_ENTREZ_RATE:
            # Slower is no rate but a stall: 1e-9 waited decades before each request (and a
            # SIGTERM with it), 1e-300 overflowed the clock.
            raise ValueError(f"{value:g} requests/s is one request every {1 / value:.3g} s: "
                             f"at least {MIN_ENTREZ_RATE:g} (one every "
                             f"{1 / MIN_ENTREZ_RATE:g} s)")
        limit = 10.0 if info.data.get("entrez_api_key") else 3.0
        if is_ncbi(str(info.data.get("entrez_url") or "")) and value > limit:
            key = "with" if limit == 10.0 else "without"
            raise ValueError(f"{value:g} requests/s is above NCBI's limit of {limit:g} {key} "
                             "an API key (leave it unset for a safe default)")
        return value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        # The address goes into every digest's links and List-Unsubscribe header and into a
        # log line: credentials in it would be sent to every recipient. Checked first, so no
        # message below echoes them.
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not contain a user name or password (user:pass@): it is "
                             "put in every digest's links; give the web app's address, e.g. "
                             "https://mmlr.example.org")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be the web app's http(s) address, got {value!r}")
        # The session cookie is marked Secure only under https, and the login form posts a
        # password: plain http is for a browser on the same machine, never across a network.
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ValueError(
                f"{value} is not https: passwords and session cookies would cross the network "
                "in clear; put mmlr behind a TLS proxy and give its https:// address (plain "
                "http only for a loopback address such as http://127.0.0.1:8000)")
        return value.strip()

    @field_validator("entrez_url")
    @classmethod
    def _check_entrez_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"MMLR_ENTREZ_URL must be an http(s) URL, got {value!r}")
        # A bad port loaded and stopped the first poll as an internal error (httpx: "Invalid
        # port"); a missing host ("http://:8080/") failed there too.
        port_problem = url_port_problem(value)
        if port_problem:
            raise ValueError(f"{port_problem}, e.g. http://127.0.0.1:8080/ or {NCBI_EUTILS_URL}")
        if not parts.hostname:
            raise ValueError(f"has no host name, e.g. {NCBI_EUTILS_URL}")
        # NCBI needs no login (the API key has its own setting), and the URL is printed in
        # errors and on /searches: a password in it would be shown. Not echoed here either.
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not contain a user name or password (user:pass@): "
                             "E-utilities needs none; put an API key in MMLR_ENTREZ_API_KEY")
        return value if value.endswith("/") else value + "/"

    @field_validator("entrez_tool")
    @classmethod
    def _check_tool(cls, value: str) -> str:
        if not value or any(ch.isspace() for ch in value):
            raise ValueError("MMLR_ENTREZ_TOOL must be one word without spaces (NCBI's rule)")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        parse_smtp_url(value.get_secret_value())
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _check_number_text(cls, value: object, info: ValidationInfo) -> object:
        # pydantic reads "1_0" as 10 (a Python literal): MMLR_PORT=80_80 or a timeout of
        # "3_0" would start with a number nobody wrote. A number setting takes what a
        # person writes: ASCII digits, for a whole number nothing after the point but zeros.
        if not isinstance(value, str) or not value.strip() or info.field_name is None:
            return value
        kinds = _number_kinds(cls.model_fields[info.field_name].annotation)
        if not kinds:
            return value
        number = parse_decimal(value)  # ValueError naming the value, with a hint
        if float not in kinds and not (number.is_integer() and "e" not in value.lower()):
            raise ValueError(f"{value.strip()[:30]!r} is not a whole number")
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _check_encoding(cls, value: object) -> object:
        # Bytes that are not UTF-8 in the environment reach Python as lone surrogates
        # (PEP 383); such a value cannot be sent to NCBI, logged or stored, and would fail
        # far from here. Declared after the other validators: pydantic runs
        # the last-declared "before" validator first.
        if isinstance(value, str) and not is_utf8(value):
            raise ValueError("contains bytes that are not UTF-8 text; write the value in UTF-8")
        return value

    # ---- derived values -------------------------------------------------------------
    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'mmlr.sqlite3').resolve()}"

    @property
    def dual_screening(self) -> bool:
        """Two blind votes per record, conflicts resolved by a third person (docs/curation.md)."""
        return is_dual_screening(self.screeners_per_record)

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite")

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def request_rate(self) -> float:
        if self.entrez_rate:
            return self.entrez_rate
        return 9.0 if self.entrez_api_key else 2.7

    @property
    def digest_recipients(self) -> list[str]:
        """The fixed recipients as written; ``store.subscribers.digest_recipients`` adds the
        subscribers and compares lower-case."""
        return [a.strip() for a in self.digest_to.split(",") if a.strip()]

    def secret(self) -> str:
        """The session-signing key: from the environment, else kept in the data dir."""
        if self.secret_key is not None:
            key = self.secret_key.get_secret_value()
            if self.env == "production" and (key.lower() in _PLACEHOLDER_SECRETS or len(key) < 32):
                raise ConfigError(
                    "MMLR_SECRET_KEY is a placeholder or shorter than 32 characters",
                    hint="set a long random value, e.g. `python -c 'import secrets; "
                    "print(secrets.token_urlsafe(48))'`",
                )
            return key
        if self.env == "production":
            raise ConfigError(
                "MMLR_SECRET_KEY is not set",
                hint="production needs an explicit secret key in the environment",
            )
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key)
        os.chmod(path, 0o600)
        return key


class SmtpTarget:
    """A parsed ``MMLR_SMTP_URL``."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str | None,
        password: str | None,
        ssl: bool,
        starttls: bool,
        timeout: float,
    ) -> None:
        self.host, self.port, self.username, self.password = host, port, username, password
        self.ssl, self.starttls, self.timeout = ssl, starttls, timeout

    def __repr__(self) -> str:  # never show the password
        return (
            f"SmtpTarget(host={self.host!r}, port={self.port}, ssl={self.ssl}, "
            f"starttls={self.starttls})"
        )


#: The query parameters of ``MMLR_SMTP_URL``, and the words its ``starttls`` takes.
_SMTP_PARAMETERS = {"starttls", "timeout"}
_TRUE_WORDS = {"1", "true", "yes"}
_FALSE_WORDS = {"0", "false", "no"}


#: The one-line refusal of :func:`unencoded_in_smtp_userinfo` (the URL is never quoted).
UNENCODED_SMTP = ("MMLR_SMTP_URL: percent-encode '#', '/', '?' in the user name or password "
                  "(e.g. %23 for '#')")


def unencoded_in_smtp_userinfo(url: str) -> bool:
    """Whether the user name or password of an SMTP URL holds a '#', '/' or '?' not
    percent-encoded. Each ends the authority for a URL parser, which then read the rest of the
    password as the port ("invalid port 'Xy7'", quoting it), or the user name as the host and
    the password's first digits as the port, without a word. An SMTP URL has no path and its
    parameters hold no '@', so the user name and password are all before its last '@'. An
    '@' there is no trouble: the last '@' ends them, for ``urlsplit`` as here (a user name
    that is an e-mail address, as many providers' are, works written as it is)."""
    start = url.find("://")
    if start < 0:
        return False
    at = url.rfind("@", start + 3)
    return at >= 0 and any(ch in url[start + 3:at] for ch in "#/?")


def parse_smtp_url(url: str) -> SmtpTarget:
    """Parse ``smtp://user:pass@host:587?starttls=true`` / ``smtps://…``; raise ConfigError."""
    from urllib.parse import unquote

    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ConfigError(
            "MMLR_SMTP_URL must start with smtp:// or smtps://, "
            f"got {parts.scheme or 'no scheme'!r}"
        )
    if unencoded_in_smtp_userinfo(url):
        raise ConfigError(UNENCODED_SMTP, hint="'/' is %2F and '?' %3F; the password Ab#cd is "
                          "written smtp://USER:Ab%23cd@HOST:587")
    # A port 0 was taken as "none" (the default, 25) without a word.
    port_problem = url_port_problem(url)
    if port_problem:
        raise ConfigError(f"MMLR_SMTP_URL {port_problem}", hint="e.g. smtp://mail.example.org:587")
    port = parts.port
    if not parts.hostname:
        raise ConfigError("MMLR_SMTP_URL has no host", hint="e.g. smtp://mail.example.org:587")
    query = {k: v[-1].lower() for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    # A mistyped parameter or value ("startls=true", "starttls=ture") used to be read as "no
    # STARTTLS": the password then crossed the network in clear, without a word.
    unknown = sorted(set(query) - _SMTP_PARAMETERS)
    if unknown:
        raise ConfigError(f"MMLR_SMTP_URL has an unknown parameter {unknown[0]!r}",
                          hint="it takes starttls=true|false and timeout=SECONDS")
    ssl = parts.scheme == "smtps"
    starttls_word = query.get("starttls", "false")
    if starttls_word not in _TRUE_WORDS | _FALSE_WORDS:
        raise ConfigError(f"MMLR_SMTP_URL starttls must be true or false, got {starttls_word!r}",
                          hint="e.g. ?starttls=true")
    starttls = starttls_word in _TRUE_WORDS
    try:
        timeout = parse_decimal(query.get("timeout", "30"))
    except ValueError:
        timeout = math.nan  # refused just below, with the same message
    # smtplib takes 0 as "non-blocking" (the send fails at once) and refuses a negative one.
    if not (math.isfinite(timeout) and timeout > 0):
        raise ConfigError("MMLR_SMTP_URL timeout must be a number of seconds above 0, got "
                          f"{query.get('timeout')!r}", hint="e.g. ?timeout=30")
    return SmtpTarget(
        host=parts.hostname,
        port=port or (465 if ssl else 587 if starttls else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        ssl=ssl,
        starttls=starttls,
        timeout=timeout,
    )


def query_syntax_problem(query: str) -> str | None:
    """What makes ``query`` no PubMed query at all (blank; a parenthesis or double quote left
    open or closed without an opening), or None. Parentheses inside a quoted phrase are
    text. The rest of PubMed's syntax is PubMed's to read (terms it does not know are
    reported after each search)."""
    if not query.strip():
        return ("is empty: leave MMLR_QUERY unset for the protocol query, or write the "
                "review's PubMed query")
    opened: list[int] = []
    quote = 0
    for position, ch in enumerate(query, start=1):
        if quote:
            if ch == '"':
                quote = 0
        elif ch == '"':
            quote = position
        elif ch == "(":
            opened.append(position)
        elif ch == ")":
            if not opened:
                return (f"has a ')' at character {position} with no '(' before it: "
                        "unbalanced parentheses")
            opened.pop()
    if quote:
        return (f"has a double quote at character {quote} that is never closed: "
                "unbalanced quotes")
    if opened:
        return (f"has a '(' at character {opened[-1]} that is never closed: unbalanced "
                "parentheses")
    return None


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; turn pydantic's errors into one clear ConfigError."""
    from pydantic import ValidationError as PydanticValidationError

    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        if first.get("type") == "bool_parsing":  # pydantic's words do not say what is allowed
            msg = f"must be true or false, got {first.get('input')!r}"
        raise ConfigError(f"invalid setting MMLR_{field.upper()}: {msg}") from None
    if settings.env == "production":
        # Checked by every command at start, not only by the web app: the worker signs the
        # unsubscribe links of the digests it sends with this key, and would otherwise start
        # and then fail at the first digest.
        settings.secret()
    return settings


def settings_table() -> list[tuple[str, str, str]]:
    """(environment variable, default, description) for every setting, for the docs."""
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, Path):
            default = str(default)
        elif isinstance(default, bool):  # as it is written in the environment, not `True`
            default = "true" if default else "false"
        if name == "query":
            default = "the protocol query (see docs/operations.md)"
        rows.append(
            (
                f"MMLR_{name.upper()}",
                "" if default is None else str(default),
                field.description or "",
            )
        )
    return rows
