"""Migration 0008 on a database at 0007 with the duplicate report ``mmlr init`` used to make
(CEMSG 01-002-0601, PMID 20418244 twice): merged into the first, estimates re-pointed, then
the database refuses a second report of a PMID for one trial (SQLite or PostgreSQL)."""

from __future__ import annotations

import pytest
from migration_steps import alembic_config
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from store.models import Estimate, Trial, TrialReport, utcnow


def _report(conn, id_: int, trial_id: int, pmid: int | None, citation: str) -> None:  # type: ignore[no-untyped-def]
    conn.execute(TrialReport.__table__.insert().values(  # type: ignore[attr-defined]
        id=id_, trial_id=trial_id, pmid=pmid, citation=citation, kind="primary",
        created_at=utcnow()))


@pytest.mark.empty_database
def test_duplicates_are_merged_and_then_refused(db_url: str) -> None:
    from alembic import command

    from store.engine import make_engine

    engine = make_engine(db_url)
    cfg = alembic_config(engine)
    try:
        command.upgrade(cfg, "0007")
        with engine.begin() as conn:
            for id_, name in ((1, "CEMSG 01-002-0601"), (2, "Other")):
                conn.execute(Trial.__table__.insert().values(  # type: ignore[attr-defined]
                    id=id_, name=name, registry_ids=[], drug="thalidomide",
                    setting="non_transplant", is_strategy=False, created_at=utcnow()))
            _report(conn, 10, 1, 20418244, "Ludwig H et al. Blood 2010 (primary)")
            _report(conn, 11, 1, 20418244, "Ludwig H et al. ASH 2009 (seed estimate)")
            _report(conn, 12, 2, 20418244, "the same PMID on another trial stays")
            _report(conn, 13, 1, None, "conference abstract without a PMID")
            _report(conn, 14, 1, None, "another one without a PMID")
            conn.execute(Estimate.__table__.insert().values(  # type: ignore[attr-defined]
                id=1, trial_id=1, report_id=11, endpoint="PFS", setting="non_transplant",
                comparison="thalidomide + IFN vs IFN", hr=0.55, ci_low=0.36, ci_high=0.85,
                log_hr=-0.598, se=0.22, method="reported_ci", approximate=False,
                orientation_entered="maint_vs_control", verified=True, created_at=utcnow()))
        command.upgrade(cfg, "head")
        with engine.connect() as conn:
            reports = conn.execute(text("SELECT id, trial_id, pmid FROM trial_reports "
                                        "ORDER BY id")).all()
            assert [tuple(r) for r in reports] == [(10, 1, 20418244), (12, 2, 20418244),
                                                   (13, 1, None), (14, 1, None)]
            assert conn.execute(text("SELECT report_id FROM estimates")).scalar() == 10
        with pytest.raises(IntegrityError), engine.begin() as conn:
            _report(conn, 15, 1, 20418244, "a second report of the same PMID")
        with engine.begin() as conn:  # without a PMID there is no limit
            _report(conn, 16, 1, None, "a third one without a PMID")
        command.downgrade(cfg, "0007")
        with engine.begin() as conn:  # the index is gone; merged reports stay merged
            _report(conn, 17, 1, 20418244, "allowed again at 0007")
            assert conn.execute(text("SELECT count(*) FROM trial_reports")).scalar() == 6
    finally:
        engine.dispose()
