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


def test_rate_above_ncbi_limits_is_refused_for_ncbi_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMLR_ENTREZ_RATE", "5")
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert exc.value.one_line().startswith(
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
    ],
)
def test_bad_values_give_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert fragment in err.value.one_line()
    assert "\n" not in err.value.one_line()


@pytest.mark.parametrize("url", ["https://mmlr.example.org", "http://127.0.0.1:8000",
                                 "http://localhost:8000/", "http://[::1]:8000",
                                 "https://10.0.0.5"])
def test_base_url_is_https_or_this_machine(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("MMLR_BASE_URL", url)
    assert load_settings().base_url == url


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
