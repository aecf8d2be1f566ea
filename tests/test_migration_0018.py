"""Migration 0018: the partial index of the audit sample still to screen, in the queue's order
(``ix_records_audit_queue``), on both engines; records kept through the upgrade and the
downgrade, and the queue's audit statement reads the index instead of every waiting record."""

from __future__ import annotations

from typing import Any

import pytest
from migration_steps import alembic_config, insert_records
from sqlalchemy import event, text

from store.models import Record

#: pmid -> (score, audit sample, decision)
RECORDS = {21: (0.1, True, None), 22: (0.3, True, "exclude"), 23: (None, True, None),
           24: (0.9, False, None), 25: (0.1, True, None), 26: (0.05, False, None)}


def _index_sql(engine: Any) -> str | None:
    """The definition of ``ix_records_audit_queue`` as the database keeps it, or None."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            return conn.execute(text("SELECT indexdef FROM pg_indexes WHERE tablename = 'records' "
                                     "AND indexname = 'ix_records_audit_queue'")).scalar()
        return conn.execute(text("SELECT sql FROM sqlite_master WHERE type = 'index' "
                                 "AND name = 'ix_records_audit_queue'")).scalar()


def _rows(engine: Any) -> dict[int, tuple[Any, ...]]:
    with engine.connect() as conn:
        return {int(p): (s, bool(a), d) for p, s, a, d in conn.execute(
            text("SELECT pmid, score, audit_sample, decision FROM records"))}


@pytest.mark.empty_database
def test_the_partial_index_is_added_on_both_engines_and_dropped_by_the_downgrade(
        db_url: str) -> None:
    from alembic import command

    from store.engine import make_engine

    engine = make_engine(db_url)
    cfg = alembic_config(engine)
    try:
        command.upgrade(cfg, "0017")
        insert_records(engine, {pmid: {"score": score, "audit_sample": audit,
                                        "decision": decision}
                                for pmid, (score, audit, decision) in RECORDS.items()})
        assert _index_sql(engine) is None
        command.upgrade(cfg, "0018")
        if engine.dialect.name == "postgresql":
            assert _index_sql(engine) == (
                "CREATE INDEX ix_records_audit_queue ON public.records USING btree "
                "(score DESC NULLS LAST, pmid DESC) WHERE ((audit_sample IS TRUE) AND "
                "(decision IS NULL))")
        else:
            assert _index_sql(engine) == (
                "CREATE INDEX ix_records_audit_queue ON records (score DESC, pmid DESC) "
                "WHERE audit_sample IS 1 AND decision IS NULL")
        assert _rows(engine) == RECORDS
        command.downgrade(cfg, "0017")
        assert _index_sql(engine) is None
        assert _rows(engine) == RECORDS
        command.upgrade(cfg, "head")
        assert _index_sql(engine) is not None
    finally:
        engine.dispose()


def test_the_queues_audit_statement_reads_the_partial_index(ctx) -> None:  # type: ignore[no-untyped-def]
    """The audit statement as ``screening.queue`` writes it: the waiting audit records' PMIDs
    from the partial index, which the plan reads without sorting (on PostgreSQL with
    sequential scans and sorts made prohibitively expensive, since on a table this small a
    scan would win whatever the indexes); the queue puts them in the order of their draw."""
    from screening.queue import queue

    with ctx.sessions() as session:
        for pmid, (score, audit, decision) in RECORDS.items():
            session.add(Record(pmid=pmid, title=f"record {pmid}", score=score,
                               audit_sample=audit, decision=decision))
        session.commit()
    statements: list[tuple[str, Any]] = []

    def keep(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if "records.audit_sample IS" in statement and "ORDER BY records.score" in statement:
            statements.append((statement, parameters))

    event.listen(ctx.engine, "before_cursor_execute", keep)
    try:
        with ctx.sessions() as session:
            items = queue(session, limit=10)
    finally:
        event.remove(ctx.engine, "before_cursor_execute", keep)
    # the main list (24, 26) runs out before the tenth place, so the waiting audit records
    # follow it in the order of their draw; the decided one is not listed
    assert [(i.pmid, i.audit_sample) for i in items] == [
        (24, False), (26, False), (23, True), (25, True), (21, True)]
    audit_statement = [s for s in statements if "NOT (records.audit_sample" not in s[0]]
    assert len(audit_statement) == 1 and len(statements) == 2, statements
    statement, parameters = audit_statement[0]
    with ctx.engine.connect() as conn:
        if ctx.engine.dialect.name == "postgresql":
            for setting in ("enable_seqscan", "enable_sort", "enable_incremental_sort"):
                conn.exec_driver_sql(f"SET LOCAL {setting} = off")
            plan = "\n".join(row[0] for row in conn.exec_driver_sql(
                f"EXPLAIN {statement}", parameters))
            assert "Index Scan using ix_records_audit_queue on records" in plan, plan
            assert "Sort" not in plan, plan
        else:
            plan = "\n".join(str(row[3]) for row in conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {statement}", parameters))
            assert "USING INDEX ix_records_audit_queue" in plan, plan
            assert "TEMP B-TREE" not in plan, plan
        conn.rollback()
