"""Migration 0017: the index of the queue's order (``score DESC NULLS LAST, pmid DESC``) on
PostgreSQL, nothing on SQLite; records kept through the upgrade and the downgrade, and on
PostgreSQL the queue's own statements walk the index."""

from __future__ import annotations

from typing import Any

import pytest
from migration_steps import alembic_config, insert_records
from sqlalchemy import event, inspect, text

from store.models import Record

SCORES = {11: 0.8, 12: None, 13: 0.8, 14: 0.2, 15: None}


def _indexes(engine: Any) -> dict[str, str]:
    """The indexes of ``records`` by name: PostgreSQL's definition (pg_indexes), or on SQLite
    the indexed columns."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            return dict(conn.execute(text("SELECT indexname, indexdef FROM pg_indexes "
                                          "WHERE tablename = 'records'")).all())
        return {str(i["name"]): ",".join(str(c) for c in i["column_names"])
                for i in inspect(conn).get_indexes("records")}


def _scores(engine: Any) -> dict[int, float | None]:
    with engine.connect() as conn:
        return {int(p): s for p, s in conn.execute(text("SELECT pmid, score FROM records"))}


@pytest.mark.empty_database
def test_the_index_is_added_on_postgresql_only_and_dropped_by_the_downgrade(db_url: str) -> None:
    from alembic import command

    from store.engine import make_engine

    engine = make_engine(db_url)
    cfg = alembic_config(engine)
    postgresql = engine.dialect.name == "postgresql"
    try:
        command.upgrade(cfg, "0016")
        insert_records(engine, {pmid: {"score": score} for pmid, score in SCORES.items()})
        before = _indexes(engine)
        assert "ix_records_queue_order" not in before
        command.upgrade(cfg, "0017")
        after = _indexes(engine)
        if postgresql:
            assert after.pop("ix_records_queue_order") == (
                "CREATE INDEX ix_records_queue_order ON public.records "
                "USING btree (score DESC NULLS LAST, pmid DESC)")
        assert after == before  # on SQLite nothing at all; ix_records_score stays everywhere
        assert "ix_records_score" in after
        assert _scores(engine) == SCORES
        command.downgrade(cfg, "0016")
        assert _indexes(engine) == before
        assert _scores(engine) == SCORES
        command.upgrade(cfg, "head")
        assert ("ix_records_queue_order" in _indexes(engine)) == postgresql
    finally:
        engine.dispose()


def test_the_queue_walks_the_index_on_postgresql(ctx, pg_admin_url: str) -> None:  # type: ignore[no-untyped-def]
    """The queue's two statements (audit sample and main list), as ``screening.queue`` writes
    them, are served in order by an index: with sorts made prohibitively expensive (the
    planner still sorts when no index gives the order), the plan walks one and sorts nothing.
    Sequential scans are off too: on a table this small one would win whatever the order.
    The main list walks this index; the audit sample the partial index of migration 0018."""
    from screening.queue import queue

    with ctx.sessions() as session:
        for pmid, score in SCORES.items():
            session.add(Record(pmid=pmid, title=f"record {pmid}", score=score))
        session.commit()
    statements: list[tuple[str, Any]] = []

    def keep(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if "ORDER BY records.score" in statement:
            statements.append((statement, parameters))

    event.listen(ctx.engine, "before_cursor_execute", keep)
    try:
        with ctx.sessions() as session:
            assert [i.pmid for i in queue(session, limit=10)] == [13, 11, 14, 15, 12]
    finally:
        event.remove(ctx.engine, "before_cursor_execute", keep)
    assert len(statements) == 2
    with ctx.engine.connect() as conn:
        for setting in ("enable_seqscan", "enable_sort", "enable_incremental_sort"):
            conn.exec_driver_sql(f"SET LOCAL {setting} = off")
        for statement, parameters in statements:
            plan = "\n".join(row[0] for row in conn.exec_driver_sql(
                f"EXPLAIN {statement}", parameters))
            index = ("ix_records_queue_order" if "NOT (records.audit_sample" in statement
                     else "ix_records_audit_queue")
            assert f"Index Scan using {index} on records" in plan, plan
            assert "Sort" not in plan, plan
        conn.rollback()
