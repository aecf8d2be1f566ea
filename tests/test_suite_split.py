"""CI's PostgreSQL run keeps every test that uses the run's database
(``conftest.uses_the_run_database``); a test classified wrongly would silently never meet
PostgreSQL, so the rule is pinned here on stand-ins of collected tests, and every test that
reaches the server without the run's fixtures must say so with ``own_databases``."""

from __future__ import annotations

import ast
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import ROOT, uses_the_run_database


def _item(*fixtures: str, markers: tuple[str, ...] = ()) -> Any:
    return SimpleNamespace(
        fixturenames=list(fixtures),
        get_closest_marker=lambda name: SimpleNamespace(name=name) if name in markers else None)


@pytest.mark.parametrize("fixtures", [("db_url",), ("tmp_path", "db_url", "settings"),
                                      ("pg_admin_url",)])
def test_a_test_with_the_runs_database_is_kept(fixtures: tuple[str, ...]) -> None:
    assert uses_the_run_database(_item(*fixtures))


def test_a_test_that_makes_its_own_postgres_databases_is_kept() -> None:
    assert uses_the_run_database(_item("tmp_path", markers=("own_databases",)))
    assert not uses_the_run_database(_item("tmp_path", markers=("slow",)))


def test_a_test_without_a_database_is_not() -> None:
    assert not uses_the_run_database(_item("tmp_path", "monkeypatch"))


def test_the_context_fixture_depends_on_db_url(ctx: Any, request: pytest.FixtureRequest) -> None:
    """``ctx`` (through ``settings``; the apps build on them) is how tests reach the database:
    it must keep depending on ``db_url``, or the rule above would drop those tests."""
    assert {"ctx", "settings", "db_url"} <= set(request.fixturenames)
    assert uses_the_run_database(request.node)


# ------------------------------------------------------------- the marker is where it must be
#: What a test uses when it makes PostgreSQL databases itself.
_SERVER_NAMES = {"PG_URL", "_fresh_pg_database", "MMLR_TEST_DATABASE_URL"}
#: Fixtures that hand a test the run's database (``ctx`` and ``settings`` through ``db_url``,
#: pinned above).
_DATABASE_FIXTURES = {"db_url", "pg_admin_url", "settings", "ctx"}


def _unmarked_server_tests(tree: ast.Module) -> list[str]:
    """The tests of a module that reach the server (directly, through a module function they
    call, or through a module fixture they take) with neither the run's database nor the
    ``own_databases`` marker. Docstrings may name the server's variable freely."""
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    module_marked = any(isinstance(n, ast.Attribute) and n.attr == "own_databases"
                        for stmt in tree.body if isinstance(stmt, ast.Assign)
                        for n in ast.walk(stmt))

    def uses(f: ast.FunctionDef) -> set[str]:
        body = f.body[1:] if ast.get_docstring(f) is not None else f.body
        nodes = [n for stmt in body for n in ast.walk(stmt)]
        return ({n.id for n in nodes if isinstance(n, ast.Name)}
                | {a.name for n in nodes if isinstance(n, ast.ImportFrom) for a in n.names}
                | {n.value for n in nodes
                   if isinstance(n, ast.Constant) and isinstance(n.value, str)}
                | {a.arg for a in f.args.args})

    def reaches(name: str, seen: frozenset[str]) -> bool:
        used = uses(funcs[name])
        return bool(_SERVER_NAMES & used) or any(
            reaches(u, seen | {name}) for u in used if u in funcs and u not in seen | {name})

    def has_database(name: str, seen: frozenset[str]) -> bool:
        params = {a.arg for a in funcs[name].args.args}
        return bool(_DATABASE_FIXTURES & params) or any(
            has_database(p, seen | {name}) for p in params if p in funcs and p not in seen)

    def marked(f: ast.FunctionDef) -> bool:
        return module_marked or any(isinstance(n, ast.Attribute) and n.attr == "own_databases"
                                    for d in f.decorator_list for n in ast.walk(d))

    return [name for name, f in funcs.items()
            if name.startswith("test_") and reaches(name, frozenset())
            and not has_database(name, frozenset()) and not marked(f)]


def test_every_test_that_reaches_the_server_itself_is_marked() -> None:
    """A test that makes PostgreSQL databases from the server's URL without taking the run's
    database would be dropped from CI's PostgreSQL run unless marked ``own_databases``."""
    unmarked = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        if path.name != "test_suite_split.py":
            tree = ast.parse(path.read_text(encoding="utf-8"))
            unmarked += [f"{path.name}::{t}" for t in _unmarked_server_tests(tree)]
    assert unmarked == []


_EXAMPLE = '''
from conftest import PG_URL

def _make():
    return PG_URL

@pytest.fixture
def built(tmp_path):
    return _make()

def test_direct(tmp_path):
    assert PG_URL

def test_through_fixture(built):
    pass

def test_with_database(db_url):
    assert PG_URL

@pytest.mark.own_databases
def test_marked(built):
    pass

def test_unrelated(tmp_path):
    """Docstrings may name MMLR_TEST_DATABASE_URL."""
'''


def test_the_check_finds_an_unmarked_test() -> None:
    assert _unmarked_server_tests(ast.parse(_EXAMPLE)) == ["test_direct", "test_through_fixture"]
    marked = ast.parse("pytestmark = pytest.mark.own_databases\n" + _EXAMPLE)
    assert _unmarked_server_tests(marked) == []
