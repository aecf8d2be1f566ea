"""The bundle every job needs: settings, an engine and a session factory."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from store.engine import (
    SessionFactory,
    check_connection,
    make_engine,
    make_session_factory,
    migrate,
)
from store.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    sessions: SessionFactory

    def dispose(self) -> None:
        self.engine.dispose()


def make_context(settings: Settings, *, upgrade: bool = True) -> AppContext:
    """Connect (failing with one clear line) and bring the schema to head when asked."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings)
    try:
        if upgrade:
            migrate(engine)
        else:
            check_connection(engine)
    except BaseException:
        # Refused (a role that may not create tables, a newer schema): the caller never gets
        # the engine to dispose, and on PostgreSQL its connection would stay open.
        engine.dispose()
        raise
    return AppContext(settings=settings, engine=engine, sessions=make_session_factory(engine))
