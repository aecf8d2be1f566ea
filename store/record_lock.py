"""Write-locking one record for the length of a transaction (screening votes, full-text
assessments): the rules that count votes must see every vote cast at the same moment."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import Session, col

from store.errors import NotFoundError
from store.models import Record


def locked_record(session: Session, pmid: int) -> Record:
    """The record, write-locked until the transaction ends, read fresh.

    Two votes arriving together must see each other, or each would count only itself and
    leave two agreeing votes unresolved. A no-op UPDATE is the lock both engines honour: on
    PostgreSQL it locks the row, on SQLite it starts the write transaction (waiting for the
    other writer to commit); every read after it sees the other vote."""
    touched = session.execute(
        update(Record).where(col(Record.pmid) == pmid).values(decision=Record.decision)
        .execution_options(synchronize_session=False))
    record = session.get(Record, pmid, populate_existing=True)
    if record is None or touched.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFoundError(f"record PMID {pmid} is not in the database")
    return record


__all__ = ["locked_record"]
