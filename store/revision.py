"""Developer helper: ``python -m store.revision "message"`` autogenerates a migration by
comparing the models with a scratch SQLite database upgraded to head.

``python -m store.revision --regenerate-initial`` rewrites ``0001_initial_schema.py`` from the
models. Only allowed while no release has shipped (the schema is still being built)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config

from store.engine import make_engine

VERSIONS = Path(__file__).parent / "migrations" / "versions"


def regenerate_initial() -> None:
    others = [p for p in VERSIONS.glob("*.py") if not p.name.startswith("0001_")]
    if others:
        raise SystemExit("later migrations exist; add a new revision instead")
    for p in VERSIONS.glob("0001_*.py"):
        p.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/scratch.sqlite3")
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        cfg.attributes["connection_engine"] = engine
        command.revision(cfg, message="initial schema", autogenerate=True, rev_id="0001")
    (new,) = VERSIONS.glob("0001_*.py")
    new.rename(VERSIONS / "0001_initial_schema.py")


def main() -> None:
    if sys.argv[1:] == ["--regenerate-initial"]:
        regenerate_initial()
        return
    message = sys.argv[1] if len(sys.argv) > 1 else "schema change"
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/scratch.sqlite3")
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        cfg.attributes["connection_engine"] = engine
        command.upgrade(cfg, "head")
        command.revision(cfg, message=message, autogenerate=True)


if __name__ == "__main__":
    main()
