"""Helpers of the tests of one migration each (``test_migration_*.py``): Alembic's
configuration for a test's engine, and records stored the way the records table holds them
just before the migration."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from store.models import Record, utcnow


def alembic_config(engine: Any = None) -> Any:
    """Alembic's ``Config`` of the project's migrations, run on ``engine`` when one is given
    (without one, for reading the scripts: the head revision)."""
    from alembic.config import Config

    import store.engine

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(store.engine.__file__).parent / "migrations"))
    if engine is not None:
        cfg.attributes["connection_engine"] = engine
    return cfg


def insert_records(engine: Any, records: Mapping[int, Mapping[str, Any]]) -> None:
    """One row per PMID, titled "record PMID", with the given fields and the timestamps set."""
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(Record.__table__.insert(), [  # type: ignore[attr-defined]
            Record(pmid=pmid, title=f"record {pmid}", first_seen_at=now, updated_at=now,
                   last_fetched_at=now, **fields).model_dump()
            for pmid, fields in records.items()])
