"""Write-locking one row for the length of a transaction: a record (screening votes,
full-text assessments: the rules that count votes must see every vote cast at the same moment;
a retried judgement must find the first attempt) and a trial (an edit checks the version the
editor read, then writes: nobody may write in between)."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import update
from sqlmodel import Session, col

from store.errors import NotFoundError
from store.models import Record, Trial

Row = TypeVar("Row", Record, Trial)


def _locked(session: Session, model: type[Row], key_column: Any, key: int,
            touched_column: Any, missing: str) -> Row:
    """The row of ``model`` whose primary key (``key_column``) is ``key``, write-locked until
    the transaction ends, read fresh.

    A no-op UPDATE (``touched_column`` set to itself) is the lock both engines honour: on
    PostgreSQL it locks the row, on SQLite it starts the write transaction (waiting for the
    other writer to commit); every read after it sees what the other writer committed."""
    touched = session.execute(
        update(model).where(col(key_column) == key).values({touched_column: touched_column})
        .execution_options(synchronize_session=False))
    row = session.get(model, key, populate_existing=True)
    if row is None or touched.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFoundError(missing)
    return row


def locked_record(session: Session, pmid: int) -> Record:
    """The record, write-locked until the transaction ends, read fresh: two votes arriving
    together see each other, or each would count only itself and leave two agreeing votes
    unresolved."""
    return _locked(session, Record, Record.pmid, pmid, Record.decision,
                   f"record PMID {pmid} is not in the database")


def locked_trial(session: Session, trial_id: int) -> Trial:
    """The trial, write-locked until the transaction ends, read fresh: an edit's check of the
    version its author read and its write happen with no other edit in between."""
    return _locked(session, Trial, Trial.id, trial_id, Trial.name,
                   f"trial {trial_id} does not exist")


__all__ = ["locked_record", "locked_trial"]
