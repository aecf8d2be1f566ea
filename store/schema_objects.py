"""Which schema objects Alembic compares with the models, on which engine.

Two kinds of object are left out of the comparison (``store.migrations.env`` and the test
that the migrations create exactly the models both use :func:`compared_on`):

* APScheduler's job table: APScheduler creates and owns it, Alembic must not try to drop it;
* an index the models declare for one engine only (SQLAlchemy's ``ddl_if(dialect=...)``, as
  ``store.models.QUEUE_ORDER_INDEX``): on another engine no migration creates it, and
  Alembic, which does not read ``ddl_if``, would otherwise ask to add it there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

FOREIGN_TABLES = frozenset({"apscheduler_jobs"})

IncludeObject = Callable[[Any, str | None, str, bool, Any], bool]


def exists_on(item: Any, dialect: str) -> bool:
    """Whether a table, index or constraint of the models exists on ``dialect`` ("sqlite",
    "postgresql"): every one does unless it was declared with ``ddl_if(dialect=...)``."""
    condition = getattr(item, "_ddl_if", None)
    wanted = getattr(condition, "dialect", None)
    if wanted is None:
        return True
    return dialect == wanted if isinstance(wanted, str) else dialect in wanted


def compared_on(dialect: str) -> IncludeObject:
    """Alembic's ``include_object`` hook for a database of ``dialect``."""
    def include_object(obj: Any, name: str | None, type_: str, reflected: bool,
                       compare_to: Any) -> bool:
        if type_ == "table" and name in FOREIGN_TABLES:
            return False
        return exists_on(obj, dialect)  # a reflected object has no ddl_if: always compared
    return include_object


__all__ = ["FOREIGN_TABLES", "compared_on", "exists_on"]
