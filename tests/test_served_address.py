"""The address an app is served on, and the links its digests and e-mails carry."""

from __future__ import annotations

from pathlib import Path

from monitor.service import served_at
from store.settings import Settings

BASE = {"env": "test", "secret_key": "test-secret-key-that-is-long-enough-0123456789"}


def test_a_port_on_the_command_line_moves_the_default_links(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, **BASE)  # MMLR_BASE_URL left at its default
    assert served_at(settings, None, 8765).base_url == "http://127.0.0.1:8765"
    assert served_at(settings, "::1", 8765).base_url == "http://[::1]:8765"
    assert served_at(settings, None, None) is settings  # the default port: nothing to move


def test_an_explicit_base_url_or_a_public_host_is_kept(tmp_path: Path) -> None:
    proxied = Settings(data_dir=tmp_path, base_url="https://review.example.org", **BASE)
    assert served_at(proxied, None, 8765).base_url == "https://review.example.org"
    # behind a proxy on all interfaces: the public address is the proxy's, not this one
    public = Settings(data_dir=tmp_path, **BASE)
    assert served_at(public, "0.0.0.0", 8765).base_url == public.base_url
