"""CI's PostgreSQL run keeps every test that uses the run's database
(``conftest.uses_the_run_database``); a test classified wrongly would silently never meet
PostgreSQL, so the rule is pinned here on stand-ins of collected tests."""

from __future__ import annotations

from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from conftest import uses_the_run_database


def _item(*fixtures: str, module: ModuleType | None = None) -> Any:
    return SimpleNamespace(fixturenames=list(fixtures), module=module or ModuleType("plain"))


@pytest.mark.parametrize("fixtures", [("db_url",), ("tmp_path", "db_url", "settings"),
                                      ("pg_admin_url",)])
def test_a_test_with_the_runs_database_is_kept(fixtures: tuple[str, ...]) -> None:
    assert uses_the_run_database(_item(*fixtures))


def test_a_module_that_makes_its_own_postgres_databases_is_kept() -> None:
    for name in ("PG_URL", "_fresh_pg_database"):
        module = ModuleType("own_databases")
        setattr(module, name, "")
        assert uses_the_run_database(_item("tmp_path", module=module))


def test_a_test_without_a_database_is_not() -> None:
    assert not uses_the_run_database(_item("tmp_path", "monkeypatch"))


def test_the_context_fixture_depends_on_db_url(ctx: Any, request: pytest.FixtureRequest) -> None:
    """``ctx`` (through ``settings``; the apps build on them) is how tests reach the database:
    it must keep depending on ``db_url``, or the rule above would drop those tests."""
    assert {"ctx", "settings", "db_url"} <= set(request.fixturenames)
    assert uses_the_run_database(request.node)
