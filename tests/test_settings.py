"""The one settings object: defaults that run, clear errors, safe secrets, docs in sync."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import ROOT, cli_env, run_cli

from store.errors import ConfigError
from store.settings import Settings, load_settings, parse_smtp_url


def test_defaults_run_with_nothing_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MMLR_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.db_url == f"sqlite:///{tmp_path / 'mmlr-data' / 'mmlr.sqlite3'}"
    assert s.outbox_dir == Path("mmlr-data/outbox")
    assert s.smtp_url is None and s.entrez_url.startswith("https://eutils.ncbi.nlm.nih.gov/")
    assert s.request_rate < 3  # NCBI's limit without a key, with headroom


def test_rate_with_api_key_stays_below_ten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMLR_ENTREZ_API_KEY", "abc123")
    assert 3 < load_settings().request_rate < 10


def _refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> str:
    """The one-line error of loading the settings with ``name`` set to ``value``."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    return err.value.one_line()


def test_rate_above_ncbi_limits_is_refused_for_ncbi_only(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _refused(monkeypatch, "MMLR_ENTREZ_RATE", "5").startswith(
        "invalid setting MMLR_ENTREZ_RATE: 5 requests/s is above NCBI's limit of 3 without an "
        "API key")
    monkeypatch.setenv("MMLR_ENTREZ_API_KEY", "abc123")
    assert load_settings().request_rate == 5.0  # with a key 5/s is allowed
    monkeypatch.setenv("MMLR_ENTREZ_RATE", "12")
    with pytest.raises(ConfigError, match="above NCBI's limit of 10 with an API key"):
        load_settings()
    monkeypatch.setenv("MMLR_ENTREZ_RATE", "0")
    with pytest.raises(ConfigError, match="must be a positive number"):
        load_settings()
    # a mirror or the replay server is not NCBI: the tests poll it at 500/s
    monkeypatch.setenv("MMLR_ENTREZ_RATE", "500")
    monkeypatch.setenv("MMLR_ENTREZ_URL", "http://127.0.0.1:8099/entrez/eutils/")
    assert load_settings().request_rate == 500.0


@pytest.mark.parametrize(
    ("var", "value", "fragment"),
    [
        ("MMLR_DATABASE_URL", "mysql://x@y/z", "unsupported database URL scheme 'mysql'"),
        ("MMLR_ENTREZ_URL", "ftp://example.org", "MMLR_ENTREZ_URL must be an http(s) URL"),
        ("MMLR_SMTP_URL", "http://mail.example.org", "MMLR_SMTP_URL must start with smtp://"),
        ("MMLR_SMTP_URL", "smtp://", "MMLR_SMTP_URL has no host"),
        ("MMLR_ENTREZ_TOOL", "my tool", "without spaces"),
        ("MMLR_PORT", "eighty", "MMLR_PORT"),
        ("MMLR_BASE_URL", "mmlr.example.org", "must be the web app's http(s) address"),
        ("MMLR_BASE_URL", "http://mmlr.example.org", "http://mmlr.example.org is not https"),
        ("MMLR_BASE_URL", "http://10.0.0.5:8000", "passwords and session cookies would cross"),
        # 0 divided by zero later; a negative size "completed" a poll that fetched nothing
        ("MMLR_ENTREZ_BATCH_SIZE", "0", "MMLR_ENTREZ_BATCH_SIZE: must be a whole number from 1 "
         "to 10000, got 0"),
        ("MMLR_ENTREZ_BATCH_SIZE", "-5", "from 1 to 10000, got -5"),
        ("MMLR_ENTREZ_BATCH_SIZE", "10001", "from 1 to 10000, got 10001"),
        ("MMLR_PORT", "99999", "MMLR_PORT: must be a whole number from 1 to 65535, got 99999"),
        ("MMLR_PORT", "-1", "from 1 to 65535, got -1"),
        ("MMLR_PORT", "0", "from 1 to 65535, got 0"),
        # nan > NCBI's limit is False: the rate guard let it through and nothing ever slept
        ("MMLR_ENTREZ_RATE", "nan", "MMLR_ENTREZ_RATE: must be a positive number"),
        ("MMLR_ENTREZ_RATE", "-1", "MMLR_ENTREZ_RATE: must be a positive number"),
        # a stall, not a rate (1e-300 overflowed the clock; 1e-9 waited decades per request)
        ("MMLR_ENTREZ_RATE", "1e-300", "MMLR_ENTREZ_RATE: 1e-300 requests/s is one request "
                                       "every 1e+300 s: at least 0.01 (one every 100 s)"),
        ("MMLR_ENTREZ_RATE", "0.009", "MMLR_ENTREZ_RATE: 0.009 requests/s is one request every"),
        ("MMLR_ENTREZ_TIMEOUT", "-1", "MMLR_ENTREZ_TIMEOUT: must be a number of seconds above 0"),
        ("MMLR_ENTREZ_TIMEOUT", "nan", "MMLR_ENTREZ_TIMEOUT: must be a number of seconds above 0"),
        ("MMLR_ENTREZ_TIMEOUT", "0", "MMLR_ENTREZ_TIMEOUT: must be a number of seconds above 0"),
        ("MMLR_ENTREZ_TIMEOUT", "inf", "MMLR_ENTREZ_TIMEOUT: must be a number of seconds above 0"),
        ("MMLR_POLL_OVERLAP_DAYS", "-1", "MMLR_POLL_OVERLAP_DAYS: must be a whole number from 0 "
         "to 365"),
        ("MMLR_POLL_OVERLAP_DAYS", "400", "from 0 to 365, got 400"),
        ("MMLR_RECHECK_DAYS", "-1", "MMLR_RECHECK_DAYS: must be a whole number from 0 to 3650"),
        ("MMLR_RECHECK_DAYS", "1000000", "MMLR_RECHECK_DAYS: must be a whole number from 0"),
        # 0 days would issue tokens already expired; beyond ten years means "never expires"
        ("MMLR_API_TOKEN_DAYS", "0", "MMLR_API_TOKEN_DAYS: must be a whole number from 1 to "
         "3650, got 0"),
        ("MMLR_API_TOKEN_DAYS", "3651", "from 1 to 3650, got 3651"),
        ("MMLR_ENTREZ_MAX_RETRIES", "-1", "MMLR_ENTREZ_MAX_RETRIES: must be a whole number of at "
         "least 0"),
        ("MMLR_ENTREZ_RETRY_BUDGET", "-1", "MMLR_ENTREZ_RETRY_BUDGET: must be a whole number of "
         "at least 0"),
        ("MMLR_RETRAIN_MIN_DECISIONS", "0", "MMLR_RETRAIN_MIN_DECISIONS: must be a whole number "
         "of at least 1"),
        # -1 silently turned the audit off; 0 does too (the audit test would wait for ever)
        ("MMLR_AUDIT_FRACTION", "5", "MMLR_AUDIT_FRACTION: must be a share above 0 and below 1"),
        ("MMLR_AUDIT_FRACTION", "-1", "must be a share above 0 and below 1, e.g. 0.05, got -1"),
        ("MMLR_AUDIT_FRACTION", "0", "must be a share above 0 and below 1, e.g. 0.05, got 0"),
        ("MMLR_AUDIT_FRACTION", "1", "must be a share above 0 and below 1, e.g. 0.05, got 1"),
        ("MMLR_AUDIT_FRACTION", "nan", "must be a share above 0 and below 1"),
        ("MMLR_TARGET_RECALL", "1", "MMLR_TARGET_RECALL: must be at least 0.5 and below 1"),
        ("MMLR_TARGET_RECALL", "0.3", "MMLR_TARGET_RECALL: must be at least 0.5 and below 1"),
        ("MMLR_TARGET_RECALL", "nan", "MMLR_TARGET_RECALL: must be at least 0.5 and below 1"),
        # 80 for 0.80: a typo that gave absurd monitoring
        ("MMLR_MONITORING_HR", "80", "MMLR_MONITORING_HR: must be a hazard ratio other than 1 "
         "from 0.2 to 5, e.g. 0.80, got 80"),
        ("MMLR_MONITORING_HR", "0.1", "from 0.2 to 5, e.g. 0.80, got 0.1"),
        ("MMLR_MONITORING_HR", "5.5", "from 0.2 to 5, e.g. 0.80, got 5.5"),
        ("MMLR_MONITORING_HR", "PFS=0.75,OS=80", "from 0.2 to 5, e.g. 0.80, got 80"),
        ("MMLR_LOG_LEVEL", "bogus", "MMLR_LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, "
         "CRITICAL, got 'bogus'"),
        # in-memory SQLite: every command "succeeded" and kept nothing
        ("MMLR_DATABASE_URL", "sqlite://", "MMLR_DATABASE_URL: sqlite:// is an in-memory SQLite "
         "database"),
        ("MMLR_DATABASE_URL", "sqlite:///", "sqlite:/// is an in-memory SQLite database"),
        ("MMLR_DATABASE_URL", "sqlite:///:memory:", "is an in-memory SQLite database"),
        ("MMLR_DATABASE_URL", "sqlite+pysqlite:///file:db?mode=memory&uri=true",
         "is an in-memory SQLite database"),
        ("MMLR_DATABASE_URL", "sqlite:", "MMLR_DATABASE_URL: is not a database URL"),
        # a driver mmlr does not ship loaded, and every command then failed as an internal
        # error (ModuleNotFoundError) at its first connection
        ("MMLR_DATABASE_URL", "postgresql+psycopg2://u:hunter2@h/db",
         "MMLR_DATABASE_URL: unsupported database driver 'psycopg2' in postgresql+psycopg2://: "
         "mmlr ships Python's sqlite3 and psycopg 3 and opens only sqlite://, "
         "sqlite+pysqlite://, postgresql:// and postgresql+psycopg:// URLs, e.g. "
         "sqlite:///PATH or postgresql+psycopg://USER:PASS@HOST/DB"),
        ("MMLR_DATABASE_URL", "postgresql+asyncpg://u@h/db",
         "unsupported database driver 'asyncpg' in postgresql+asyncpg://"),
        ("MMLR_DATABASE_URL", "sqlite+aiosqlite:///x.db",
         "unsupported database driver 'aiosqlite' in sqlite+aiosqlite://"),
        ("MMLR_DIGEST_TO", "not-an-email", "MMLR_DIGEST_TO: 'not-an-email' is not an e-mail "
         "address: it has no @"),
        ("MMLR_DIGEST_TO", "team@example.org, a b@example.org",
         "'a b@example.org' is not an e-mail address: it contains a space"),
        ("MMLR_SMTP_URL", "smtp://mail.example.org?timeout=0",
         "MMLR_SMTP_URL timeout must be a number of seconds above 0, got '0'"),
        ("MMLR_SMTP_URL", "smtp://mail.example.org?timeout=-1", "above 0, got '-1'"),
        ("MMLR_SMTP_URL", "smtp://mail.example.org?timeout=nan", "above 0, got 'nan'"),
        ("MMLR_SMTP_URL", "smtp://mail.example.org?timeout=soon", "above 0, got 'soon'"),
        # port 0 became the default, 25, without a word; 99999 did not say why it was refused
        ("MMLR_SMTP_URL", "smtp://127.0.0.1:0", "MMLR_SMTP_URL has an invalid port '0': a port "
         "is a whole number from 1 to 65535 (e.g. smtp://mail.example.org:587)"),
        ("MMLR_SMTP_URL", "smtp://127.0.0.1:99999", "MMLR_SMTP_URL has an invalid port '99999': "
         "a port is a whole number from 1 to 65535 (e.g. smtp://mail.example.org:587)"),
        ("MMLR_SMTP_URL", "smtps://me:hunter2@[::1]:25x", "MMLR_SMTP_URL has an invalid port "
         "'25x'"),
        # surrogate-escaped bytes (not UTF-8 in the environment) broke far from here
        ("MMLR_QUERY", "myeloma\udcff", "MMLR_QUERY: contains bytes that are not UTF-8"),
        ("MMLR_ENTREZ_API_KEY", "abc\udcff", "MMLR_ENTREZ_API_KEY: contains bytes that are not "
         "UTF-8"),
        ("MMLR_MONITORING_HR", "0.8\udcff", "MMLR_MONITORING_HR: contains bytes that are not "
         "UTF-8"),
        ("MMLR_DATA_DIR", "/tmp/\udcff", "MMLR_DATA_DIR: contains bytes that are not UTF-8"),
        ("MMLR_ENTREZ_URL", "https://me:hunter2@eutils.ncbi.nlm.nih.gov/entrez/eutils/",
         "MMLR_ENTREZ_URL: must not contain a user name or password"),
        # a port that is no port loaded, and the first poll stopped with an internal error
        ("MMLR_ENTREZ_URL", "http://127.0.0.1:abc/", "MMLR_ENTREZ_URL: has an invalid port "
         "'abc': a port is a whole number from 1 to 65535, e.g. http://127.0.0.1:8080/"),
        ("MMLR_ENTREZ_URL", "http://x:99999/", "has an invalid port '99999': a port is a whole "
         "number from 1 to 65535"),
        ("MMLR_ENTREZ_URL", "http://x:0/", "has an invalid port '0'"),
        ("MMLR_ENTREZ_URL", "https://me:hunter2@x:-1/", "has an invalid port '-1'"),
        ("MMLR_ENTREZ_URL", "http://:8080/", "MMLR_ENTREZ_URL: has no host name"),
        # Each of these loaded, and failed only where it was used (the first poll, `init`,
        # the first delivery) or, for the host, listened on every interface.
        ("MMLR_POLL_START", "2024-01-01", "MMLR_POLL_START: must be a date YYYY/MM/DD, e.g. "
         "2024/01/01, got '2024-01-01'"),
        ("MMLR_POLL_START", "2024/02/30", "MMLR_POLL_START: must be a date YYYY/MM/DD"),
        ("MMLR_POLL_START", "1800/01/01", "MMLR_POLL_START: must not be before 1900/01/01"),
        ("MMLR_POLL_START", "9999/12/31", "MMLR_POLL_START: must not be in the future"),
        ("MMLR_HOST", "", "MMLR_HOST: must be one address or host name to listen on"),
        # pydantic said "Input should be a valid boolean", not what is allowed
        ("MMLR_VERIFY_SECOND_PERSON", "maybe", "MMLR_VERIFY_SECOND_PERSON: must be true or "
         "false, got 'maybe'"),
        # pydantic read "8_080" as 8080 and "80.5" as an error in its own words
        ("MMLR_PORT", "8_080", "MMLR_PORT: '8_080' is not a number (write it without "
         "underscores)"),
        ("MMLR_PORT", "80.5", "MMLR_PORT: '80.5' is not a whole number"),
        ("MMLR_PORT", "1e3", "MMLR_PORT: '1e3' is not a whole number"),
        ("MMLR_ENTREZ_TIMEOUT", "3_0", "MMLR_ENTREZ_TIMEOUT: '3_0' is not a number (write it "
         "without underscores)"),
        ("MMLR_ENTREZ_RATE", "2,5", "MMLR_ENTREZ_RATE: '2,5' is not a number (use a decimal "
         "point, not a comma)"),
        ("MMLR_RETRAIN_MIN_DECISIONS", "\u0663", "MMLR_RETRAIN_MIN_DECISIONS: '\u0663' is not a "
         "number (write it with the digits 0-9)"),
        ("MMLR_ENTREZ_EMAIL", "me at example.org", "MMLR_ENTREZ_EMAIL: 'me at example.org' is "
         "not an e-mail address"),
        ("MMLR_HOST", "127.0.0.1 ::1", "MMLR_HOST: must be one address or host name"),
        ("MMLR_ADMIN_EMAIL", "admin", "MMLR_ADMIN_EMAIL: 'admin' is not an e-mail address"),
        ("MMLR_MAIL_FROM", "Living review", "MMLR_MAIL_FROM: 'Living review' is not an e-mail "
         "address"),
        # Each loaded: a line break ended the first delivery with an internal error, the
        # others sent as someone other than the address checked (envelope a@x.org; two From
        # mailboxes and a Message-ID under @y.org).
        ("MMLR_MAIL_FROM", "Review <r@x.org>\r\nBcc: evil@x.org", "MMLR_MAIL_FROM: 'Review "
         "<r@x.org>\\r\\nBcc: evil@x.org' is not a sender: it contains a line break"),
        ("MMLR_MAIL_FROM", "a@x.org <b@y.org>", "MMLR_MAIL_FROM: 'a@x.org <b@y.org>' is not a "
         "sender: its name has an @"),
        ("MMLR_MAIL_FROM", '"Evil" <r@x.org>, other@y.org', "is not one sender: it names more "
         "than one mailbox"),
        ("MMLR_MAIL_FROM", "r@x.org, other@y.org", "is not one sender"),
        ("MMLR_MAIL_FROM", "Review <r@x.org> other@y.org", "is not one sender"),
        ("MMLR_MAIL_FROM", "Review\x07 <r@x.org>", "another control character"),
        # A typo in STARTTLS sent the password in clear, without a word.
        ("MMLR_SMTP_URL", "smtp://me:hunter2@mail.example.org:587?starttls=ture",
         "MMLR_SMTP_URL starttls must be true or false, got 'ture'"),
        ("MMLR_SMTP_URL", "smtp://me:hunter2@mail.example.org:587?startls=true",
         "MMLR_SMTP_URL has an unknown parameter 'startls'"),
    ],
)
def test_bad_values_give_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, fragment: str
) -> None:
    line = _refused(monkeypatch, var, value)
    assert fragment in line
    assert "\n" not in line
    assert "hunter2" not in line  # a password is never echoed


@pytest.mark.parametrize("value", [
    "postgresql+psycopg://mm:Ab@cdSecr3tTail@127.0.0.1:54400/mmpw",
    "postgresql+psycopg://mm:k9@Vq:Zt7Lx2@127.0.0.1:54400/mmpw",
    "postgresql://m@m:Secr3tTail@127.0.0.1/mmpw",  # in the user name
])
def test_an_unencoded_at_in_the_database_password_is_refused_unquoted(
        monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """SQLAlchemy ends the password at its first '@': the rest of it was shown as the host
    beside the mask ("mm:***@cdSecr3tTail@127.0.0.1"), or quoted by int() as the port."""
    line = _refused(monkeypatch, "MMLR_DATABASE_URL", value)
    assert line.startswith("invalid setting MMLR_DATABASE_URL: has an '@' in its user name "
                           "or password: write each '@' there percent-encoded, as %40"), line
    for secret in ("Secr3tTail", "Zt7Lx2", "cd", "k9", "Vq", "127.0.0.1"):
        assert secret not in line.replace("Ab%40cd", "")


def test_a_database_port_that_is_no_number_is_not_quoted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    line = _refused(monkeypatch, "MMLR_DATABASE_URL", "postgresql+psycopg://mm:Secr3t@h:5x432/db")
    assert "MMLR_DATABASE_URL: is not a database URL" in line
    assert "Secr3t" not in line


def test_a_database_url_is_shown_without_any_of_its_user_part() -> None:
    """Whatever a URL holds, nothing before the last '@' of its authority is shown."""
    from sqlalchemy.engine import make_url

    from store.engine import shown_url

    plain = "postgresql+psycopg://mm:Secr3t@127.0.0.1:54400/mmpw"
    assert shown_url(plain) == "postgresql+psycopg://mm:***@127.0.0.1:54400/mmpw"
    assert shown_url(make_url("postgresql+psycopg://mm:Ab%40cd@h/db")) == \
        "postgresql+psycopg://mm:***@h/db"
    for raw in ("postgresql+psycopg://mm:Ab@cdSecr3tTail@127.0.0.1:54400/mmpw",
                "postgresql+psycopg://mm:k9@Vq:Zt7Lx2@127.0.0.1:54400/mmpw"):
        assert shown_url(raw) == "postgresql+psycopg://***@127.0.0.1:54400/mmpw"
    parsed = make_url("postgresql+psycopg://mm:Ab@cdSecr3tTail@127.0.0.1:54400/mmpw")
    assert shown_url(parsed) == "postgresql+psycopg://***@127.0.0.1:54400/mmpw"
    assert shown_url("sqlite:////srv/a@b/mmlr.sqlite3") == "sqlite:////srv/a@b/mmlr.sqlite3"


def test_a_password_in_the_query_of_a_database_url_is_not_shown() -> None:
    """Before: ``?password=`` and ``?sslpassword=`` (which libpq reads) were shown in clear."""
    from sqlalchemy.engine import make_url

    from store.engine import shown_url

    assert shown_url("postgresql+psycopg://mm@h/db?password=Secr3t&sslmode=require") == \
        "postgresql+psycopg://mm@h/db?password=***&sslmode=require"
    assert shown_url(make_url("postgresql+psycopg://mm:pw@h/db?sslpassword=Secr3t")) == \
        "postgresql+psycopg://mm:***@h/db?sslpassword=***"
    assert shown_url("postgresql+psycopg://mm:Ab@cd@h/db?Password=Secr3t") == \
        "postgresql+psycopg://***@h/db?Password=***"
    assert shown_url("postgresql+psycopg://mm@h:5x4/db?pass%77ord=Secr3t") == \
        "postgresql+psycopg://***@h:5x4/db?pass%77ord=***"
    assert shown_url("sqlite:///file:db?mode=ro&uri=true") == \
        "sqlite:///file:db?mode=ro&uri=true"


def test_a_driver_error_that_quotes_the_password_is_masked() -> None:
    """Only a URL's ``user:password@`` and ``?password=`` were masked: a driver's message
    quoting the password itself (libpq quotes parts of its connection string) or a
    ``password=…`` pair of a key-value connection string reached the user and the log."""
    from sqlalchemy.exc import OperationalError

    from store.engine import make_engine, unreachable_reason
    from store.settings import forget_passwords, masked

    forget_passwords()
    engine = make_engine("postgresql+psycopg://mm:Pa%24%24-w0rd_9@127.0.0.1:54400/mmpw")
    try:
        for said in ('invalid percent-encoded token: "Pa%24%24-w0rd_9"',
                     'connection to "Pa$$-w0rd_9" failed',  # decoded, as the driver has it
                     "host=127.0.0.1 user=mm password=Pa$$-w0rd_9 dbname=mmpw",
                     "host=h password='two words' dbname=d",
                     "PGPASSWORD=other-secret sslpassword=also-secret&x=1"):
            shown = masked(said)
            for secret in ("Pa%24%24-w0rd_9", "Pa$$-w0rd_9", "two words", "other-secret",
                           "also-secret"):
                assert secret not in shown, shown
            assert "***" in shown
        # What is not a password stays as it was.
        assert masked("host=127.0.0.1 user=mm dbname=mmpw: Connection refused") == \
            "host=127.0.0.1 user=mm dbname=mmpw: Connection refused"
        assert masked("password=Pa$$-w0rd_9 dbname=mmpw") == "password=*** dbname=mmpw"
        # The one line every command, the status report and the web app show for it.
        error = OperationalError("SELECT 1", {}, Exception(
            'invalid connection option "Pa$$-w0rd_9"\nsecond line'))
        assert unreachable_reason(error) == 'invalid connection option "***"'
    finally:
        engine.dispose()
        forget_passwords()
    # A password the URL given to masked() holds, without make_engine.
    assert masked("bad value Secr3t", "postgresql+psycopg://mm@h/db?password=Secr3t") == \
        "bad value ***"


@pytest.mark.parametrize(
    ("var", "value", "attribute", "expected"),
    [  # the ends of each allowed range load (the bounds are not off by one)
        ("MMLR_ENTREZ_BATCH_SIZE", "1", "entrez_batch_size", 1),
        ("MMLR_ENTREZ_BATCH_SIZE", "10000", "entrez_batch_size", 10000),
        ("MMLR_PORT", "1", "port", 1),
        ("MMLR_PORT", "65535", "port", 65535),
        ("MMLR_POLL_OVERLAP_DAYS", "0", "poll_overlap_days", 0),
        ("MMLR_RECHECK_DAYS", "0", "recheck_days", 0),
        ("MMLR_API_TOKEN_DAYS", "1", "api_token_days", 1),
        ("MMLR_API_TOKEN_DAYS", "3650", "api_token_days", 3650),
        ("MMLR_ENTREZ_MAX_RETRIES", "0", "entrez_max_retries", 0),
        ("MMLR_ENTREZ_RETRY_BUDGET", "0", "entrez_retry_budget", 0),
        ("MMLR_RETRAIN_MIN_DECISIONS", "1", "retrain_min_decisions", 1),
        ("MMLR_ENTREZ_TIMEOUT", "0.5", "entrez_timeout", 0.5),
        ("MMLR_AUDIT_FRACTION", "0.5", "audit_fraction", 0.5),
        ("MMLR_TARGET_RECALL", "0.5", "target_recall", 0.5),
        ("MMLR_MONITORING_HR", "0.2", "monitoring_hr", "0.2"),
        ("MMLR_MONITORING_HR", "PFS=5,OS=0.9", "monitoring_hr", "PFS=5,OS=0.9"),
        ("MMLR_LOG_LEVEL", "debug", "log_level", "DEBUG"),  # any case
        ("MMLR_LOG_LEVEL", " Warning ", "log_level", "WARNING"),
        ("MMLR_DIGEST_TO", "team@example.org, ops@localhost,", "digest_recipients",
         ["team@example.org", "ops@localhost"]),
        ("MMLR_DATABASE_URL", "sqlite:///relative.sqlite3", "db_url",
         "sqlite:///relative.sqlite3"),
        # the drivers mmlr ships: plain postgresql:// is psycopg 3, not SQLAlchemy's psycopg2
        ("MMLR_DATABASE_URL", "sqlite+pysqlite:///relative.sqlite3", "db_url",
         "sqlite+pysqlite:///relative.sqlite3"),
        ("MMLR_DATABASE_URL", "postgresql://u@h/db", "db_url", "postgresql+psycopg://u@h/db"),
        ("MMLR_DATABASE_URL", "postgresql+psycopg://u@h/db", "db_url",
         "postgresql+psycopg://u@h/db"),
        ("MMLR_QUERY", "myéloma[tiab]", "query", "myéloma[tiab]"),  # UTF-8 is fine
        ("MMLR_ENTREZ_URL", "http://127.0.0.1:65535", "entrez_url", "http://127.0.0.1:65535/"),
        ("MMLR_ENTREZ_URL", "http://[::1]:1/e/", "entrez_url", "http://[::1]:1/e/"),
    ],
)
def test_values_at_the_ends_of_their_range_load(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, attribute: str, expected: object
) -> None:
    monkeypatch.setenv(var, value)
    assert getattr(load_settings(), attribute) == expected


def test_smtp_timeout_is_read() -> None:
    assert parse_smtp_url("smtp://mail.example.org?timeout=2.5").timeout == 2.5
    assert parse_smtp_url("smtp://mail.example.org").timeout == 30.0


@pytest.mark.parametrize("var", ["MMLR_POLL_CRON", "MMLR_DIGEST_CRON", "MMLR_MODIFIED_CRON"])
def test_a_cron_that_never_fires_is_refused(monkeypatch: pytest.MonkeyPatch, var: str) -> None:
    # APScheduler adds such a job paused, silently: the cycle would never run.
    from monitor.scheduler import build_scheduler

    monkeypatch.setenv(var, "0 6 31 2 *")
    with pytest.raises(ConfigError) as err:
        build_scheduler(load_settings())
    assert err.value.one_line().startswith(f"{var} '0 6 31 2 *' never fires")
    monkeypatch.setenv(var, "0 6 29 2 *")  # leap days come
    assert build_scheduler(load_settings()).get_jobs()


@pytest.mark.parametrize("url", ["https://mmlr.example.org", "http://127.0.0.1:8000",
                                 "http://localhost:8000/", "http://[::1]:8000",
                                 "https://10.0.0.5"])
def test_base_url_is_https_or_this_machine(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("MMLR_BASE_URL", url)
    assert load_settings().base_url == url


@pytest.mark.parametrize("url", ["https://digest:S3cretPw@mmlr.example.org",
                                 "https://digest@mmlr.example.org",
                                 "http://u:S3cretPw@10.0.0.5:8000", "ftp://u:S3cretPw@h"])
def test_base_url_with_a_user_or_password_is_refused_without_echoing_it(
        monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Before: loaded, and the credentials went into every digest's unsubscribe links,
    its List-Unsubscribe header and a log line."""
    line = _refused(monkeypatch, "MMLR_BASE_URL", url)
    assert line.startswith("invalid setting MMLR_BASE_URL: must not contain a user name or "
                           "password (user:pass@)"), line
    assert "S3cretPw" not in line and "digest@" not in line


@pytest.mark.parametrize("value", [
    # '#' ended the host part: the rest of the password was quoted as the port
    "smtp://digest:Xy7#s3cretTail@mail.example.org:587?starttls=true",
    # … or read, without a word, as host 'digest', port 2024, no login
    "smtp://digest:2024#s3cretTail@mail.example.org:587",
    "smtps://digest:Xy7/s3cretTail@mail.example.org",
    "smtp://digest:Xy7?s3cretTail@mail.example.org:587?starttls=true",
    "smtp://dig#est:s3cretTail@mail.example.org:587",  # in the user name
])
def test_an_unencoded_hash_slash_or_question_mark_in_the_smtp_login_is_refused_unquoted(
        monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    line = _refused(monkeypatch, "MMLR_SMTP_URL", value)
    assert "MMLR_SMTP_URL: percent-encode '#', '/', '?' in the user name or password" in line
    assert "%23" in line and "\n" not in line
    for part in ("s3cret", "Xy7", "2024", "digest:", "dig#est", "Tail"):
        assert part not in line, part
    with pytest.raises(ConfigError, match="percent-encode"):
        parse_smtp_url(value)


def test_an_encoded_or_at_sign_smtp_login_is_read_as_written() -> None:
    target = parse_smtp_url("smtp://digest:Xy7%23s3cret%2F%3F@mail.example.org:587"
                            "?starttls=true")
    assert (target.host, target.port, target.username, target.password, target.starttls) == (
        "mail.example.org", 587, "digest", "Xy7#s3cret/?", True)
    # a user name that is an e-mail address needs no encoding: the last '@' ends it
    target = parse_smtp_url("smtps://me@example.org:pa@ss@mail.example.org")
    assert (target.host, target.port, target.username, target.password) == (
        "mail.example.org", 465, "me@example.org", "pa@ss")


def test_postgres_scheme_is_normalised_to_psycopg() -> None:
    s = Settings(database_url="postgresql://u@h/db")
    assert s.db_url == "postgresql+psycopg://u@h/db"


def test_smtp_url_parsing_never_shows_the_password() -> None:
    target = parse_smtp_url("smtp://user:s%40cret@mail.example.org:2525?starttls=true")
    assert (target.host, target.port, target.username, target.password) == (
        "mail.example.org",
        2525,
        "user",
        "s@cret",
    )
    assert target.starttls and not target.ssl
    assert "s@cret" not in repr(target)
    assert parse_smtp_url("smtps://mail.example.org").port == 465


def test_secret_key_generated_and_kept_in_development(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    first = s.secret()
    assert len(first) >= 32 and s.secret() == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("key", [None, "changeme", "short"])
def test_production_refuses_missing_or_placeholder_secret(tmp_path: Path, key: str | None) -> None:
    s = Settings(env="production", data_dir=tmp_path, secret_key=key)
    with pytest.raises(ConfigError, match="MMLR_SECRET_KEY"):
        s.secret()
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize(("var", "value", "attribute", "expected"), [
    ("MMLR_POLL_START", " 2024/01/01 ", "poll_start", "2024/01/01"),
    ("MMLR_MAIL_FROM", "Living review <review@example.org>", "mail_from",
     "Living review <review@example.org>"),
    ("MMLR_MAIL_FROM", '"Review, team" <review@example.org>', "mail_from",
     '"Review, team" <review@example.org>'),
    ("MMLR_HOST", "::1", "host", "::1"),
    ("MMLR_ADMIN_EMAIL", "admin@localhost", "admin_email", "admin@localhost"),
])
def test_checked_text_settings_accept_their_forms(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, attribute: str, expected: str
) -> None:
    monkeypatch.setenv(var, value)
    assert getattr(load_settings(), attribute) == expected


@pytest.mark.parametrize(("query", "starttls"), [
    ("starttls=true", True), ("starttls=yes", True), ("starttls=1", True),
    ("starttls=false", False), ("starttls=no", False), ("timeout=5", False),
])
def test_smtp_starttls_words(query: str, starttls: bool) -> None:
    assert parse_smtp_url(f"smtp://mail.example.org:587?{query}").starttls is starttls


@pytest.mark.parametrize(("command", "key", "fragment"), [
    ("config", None, "MMLR_SECRET_KEY is not set"),
    ("init", "changeme", "MMLR_SECRET_KEY is a placeholder or shorter than 32 characters"),
    # The worker started with either, and failed at its first digest (the unsubscribe links
    # are signed with the key).
    ("worker", None, "MMLR_SECRET_KEY is not set"),
    ("worker", "changeme", "MMLR_SECRET_KEY is a placeholder"),
])
def test_production_refuses_to_start_any_command_without_a_real_secret(
    tmp_path: Path, command: str, key: str | None, fragment: str
) -> None:
    extra = {"MMLR_SECRET_KEY": key} if key is not None else {}
    proc = run_cli(command, env=cli_env(MMLR_DATA_DIR=str(tmp_path), MMLR_ENV="production",
                                        **extra), timeout=60)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mmlr: error: ") and fragment in lines[0]
    assert not (tmp_path / "mmlr.sqlite3").exists()  # refused before anything was done
    ok = run_cli("config", env=cli_env(MMLR_DATA_DIR=str(tmp_path), MMLR_ENV="production",
                                       MMLR_SECRET_KEY="k" * 40))
    assert ok.returncode == 0, ok.stderr


def test_readme_settings_table_is_generated_from_the_settings(tmp_path: Path) -> None:
    out = run_cli(
        "config", "--markdown", env=cli_env(MMLR_DATA_DIR=str(tmp_path / "data")), check=True
    ).stdout
    readme = (ROOT / "README.md").read_text()
    table = re.search(
        r"<!-- settings-table:start -->\n(.*)<!-- settings-table:end -->", readme, re.S
    )
    assert table is not None
    assert table.group(1) == out, "README table is stale: regenerate with `mmlr config --markdown`"
    for name in Settings.model_fields:
        assert f"`MMLR_{name.upper()}`" in readme


def test_dual_screening_is_named_once() -> None:
    from store.settings import is_dual_screening

    assert Settings(screeners_per_record=2).dual_screening is True
    assert Settings().dual_screening is False  # the default: one decision settles a record
    assert [is_dual_screening(n) for n in (1, 2)] == [False, True]
    with pytest.raises(ConfigError, match=r"must be 1 .* or 2"):
        load_settings(screeners_per_record=3)
