"""Alembic environment: the engine comes from the caller (``store.engine.migrate``) or from
``MMLR_DATABASE_URL`` when Alembic is run by hand."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import store.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from store.locks import migration_lock
from store.schema_objects import compared_on

config = context.config
target_metadata = SQLModel.metadata


def _run(connection: Connection) -> None:
    """Alembic's upgrade inside ``connection``'s transaction, which it did not begin."""
    sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=compared_on(connection.dialect.name),
        render_as_batch=sqlite,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if dangling:
                raise RuntimeError(f"the migration left rows pointing nowhere: {dangling}")


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        # The caller's transaction (store.engine.migrate_within: copy-db creates the target's
        # schema and copies the rows in one), begun under the migration lock and ended by the
        # caller. Only a new, empty schema is made this way, so foreign keys stay enforced.
        _run(given)
        return
    engine = config.attributes.get("connection_engine")
    if engine is None:
        from store.engine import make_engine
        from store.settings import load_settings

        engine = make_engine(load_settings())
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # A batch migration rebuilds a table (copy, drop, rename). With foreign keys
            # enforced, dropping a table that other rows point at fails ("users" under its
            # risk-of-bias assessments), though the rebuilt table keeps every row. SQLite
            # ignores this pragma inside a transaction: it goes before the lock's BEGIN, and
            # foreign_key_check below proves nothing was left dangling.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        try:
            # One migration at a time across processes. The transaction begun here is the
            # whole upgrade's (Alembic runs inside a transaction it did not begin), so a
            # process that waited reads the version the other committed.
            migration_lock(connection)
            _run(connection)
            connection.commit()
        finally:
            if sqlite:
                # The connection goes back to the pool: it must enforce foreign keys again.
                connection.rollback()
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


run_migrations_online()
