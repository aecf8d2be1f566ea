"""Hints to the query planner, written once for both engines.

SQLite keeps no statistics unless ``ANALYZE`` has run, so it takes an equality on an indexed
column to pick out a few rows. ``deleted IS 0`` holds for nearly every record, yet SQLite
then reads the records through the ``deleted`` index and sorts them all before it can
return the 100 highest-scored; walking the score index and stopping after 100 matches costs
a fraction of that. :func:`likely` tells SQLite a condition holds for most rows (its
``likely()``, which costs nothing when the query runs); PostgreSQL keeps statistics and
gets the condition as it is.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class likely(FunctionElement[bool]):  # an SQL function, named as SQLite names it
    """``likely(condition)``: the condition, marked as true for most rows."""

    inherit_cache = True
    name = "likely"


@compiles(likely)
def _as_it_is(element: likely, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(likely, "sqlite")
def _sqlite(element: likely, compiler: Any, **kw: Any) -> str:
    return f"likely({compiler.process(element.clauses, **kw)})"


__all__ = ["likely"]
