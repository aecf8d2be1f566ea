"""Dual screening below the web pages, on a real database (SQLite file or PostgreSQL): the
per-person queue, training labels, switching MMLR_SCREENERS_PER_RECORD on a live database, the
digest, and migration 0003 on a database at 0002 with rows in it."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from conftest import table_without
from migration_steps import alembic_config
from scipy.stats import hypergeom
from sqlalchemy import column, inspect, table, text
from sqlmodel import Session, col, select
from sqlmodel.sql.sqltypes import UTCDateTime

from reports.digest import build_digest
from screening.agreement import record_state
from screening.config import ScreeningConfig
from screening.health import screening_health, screening_order
from screening.queue import AUDIT_EVERY, queue
from screening.service import build_training_set, latest_decisions
from screening.votes import blind_pairs, screener_counts
from screening.web.conflicts import agreement, record_resolution
from screening.web.decisions import RecordStateError, record_decision
from store.errors import PermissionDeniedError
from store.models import Decision, Record, User, utcnow


@pytest.fixture
def dual(ctx: Any) -> Any:
    return replace(ctx, settings=ctx.settings.model_copy(update={"screeners_per_record": 2}))


def _users(ctx: Any) -> dict[str, User]:
    with ctx.sessions() as session:
        made = {name: User(email=f"{name}@example.org", role=role)
                for name, role in [("a", "curator"), ("b", "curator"), ("c", "curator"),
                                   ("admin", "admin")]}
        session.add_all(made.values())
        session.commit()
        for user in made.values():
            session.refresh(user)
        return made


def _records(ctx: Any, pmids: range | list[int], **extra: Any) -> None:
    with ctx.sessions() as session:
        for p in pmids:
            session.add(Record(pmid=p, title=f"Record {p}", score=(100 - p) / 100, **extra))
        session.commit()


def _vote(ctx: Any, user: User, pmid: int, decision: str, screeners: int = 2) -> None:
    with ctx.sessions() as session:
        record_decision(session, user=user, pmid=pmid, decision=decision, screeners=screeners)
        session.commit()


def _resolve(ctx: Any, user: User, pmid: int, decision: str, screeners: int = 2) -> None:
    with ctx.sessions() as session:
        record_resolution(session, user=user, pmid=pmid, decision=decision, reason="why",
                          screeners_per_record=screeners)
        session.commit()


def _decision(ctx: Any, pmid: int) -> str | None:
    with ctx.sessions() as session:
        record = session.get(Record, pmid)
        assert record is not None
        return record.decision


def _queue(ctx: Any, **kw: Any) -> list[Any]:
    with ctx.sessions() as session:
        return queue(session, **kw)


# ----------------------------------------------------------------------------- queue
def test_queue_per_screener_keeps_score_order_and_audit_interleaving(dual: Any) -> None:
    people = _users(dual)
    a, b = people["a"], people["b"]
    _records(dual, range(1, 41))  # scores .99 … .60, highest PMID lowest
    with dual.sessions() as session:
        for p in (33, 35, 37, 39):
            record = session.get(Record, p)
            assert record is not None
            record.audit_sample = True
            session.add(record)
        session.commit()
    for pmid in (1, 2, 33):
        _vote(dual, a, pmid, "include")  # awaiting a second screener
    _vote(dual, a, 3, "include")
    _vote(dual, b, 3, "exclude")  # conflict
    _vote(dual, a, 4, "exclude")
    _vote(dual, b, 4, "exclude")  # resolved
    _vote(dual, b, 5, "maybe")
    expected = {"a": set(range(1, 41)) - {1, 2, 3, 4, 33},
                "b": set(range(1, 41)) - {3, 4, 5},
                "c": set(range(1, 41)) - {3, 4}}
    audit_at = {"a": [10, 20, 30], "b": [10, 20, 30, 37], "c": [10, 20, 30, 38]}
    for name, want in expected.items():
        items = _queue(dual, limit=100, screener_id=people[name].id)
        assert {i.pmid for i in items} == want, name
        assert [i.rank for i in items] == list(range(1, len(want) + 1))
        main = [i.score for i in items if not i.audit_sample]
        assert main == sorted(main, reverse=True)
        assert [i.rank for i in items if i.audit_sample] == audit_at[name], name
        assert all(r % AUDIT_EVERY == 0 for r in audit_at[name][:3])
        assert {i.pmid for i in items if i.votes == 1} == {1, 2, 5, 33} & want, name
        # paging gives the same order as one long page
        assert [i.pmid for i in _queue(dual, limit=10, offset=10,
                                       screener_id=people[name].id)] == \
            [i.pmid for i in items[10:20]]
    # the queue without a screener (single screening) is today's: every undecided record
    assert {i.pmid for i in _queue(dual, limit=100)} == set(range(1, 41)) - {4}


def test_two_votes_at_the_same_moment_see_each_other(dual: Any) -> None:
    people = _users(dual)
    _records(dual, [50])
    errors: list[BaseException] = []

    def second_vote() -> None:
        try:
            _vote(dual, people["b"], 50, "include")
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    first = dual.sessions()
    try:
        record_decision(first, user=people["a"], pmid=50, decision="include", screeners=2)
        thread = threading.Thread(target=second_vote)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive(), "the second vote should wait for the first one's lock"
        first.commit()
    finally:
        first.close()
    thread.join(timeout=60)
    assert errors == []
    assert _decision(dual, 50) == "include"  # both agreeing votes were seen together


# ----------------------------------------------------------------------------- training
def test_training_labels_under_dual_screening(dual: Any) -> None:
    people = _users(dual)
    a, b, admin = people["a"], people["b"], people["admin"]
    _records(dual, range(1, 10))
    for pmid, first, second in [(1, "include", "include"), (2, "include", "exclude"),
                                (5, "maybe", "exclude"), (6, "include", "maybe"),
                                (7, "exclude", "exclude")]:
        _vote(dual, a, pmid, first)
        _vote(dual, b, pmid, second)
    _vote(dual, a, 3, "exclude")
    _vote(dual, a, 4, "maybe")
    _resolve(dual, admin, 6, "exclude")
    _vote(dual, a, 9, "include")
    _vote(dual, a, 9, "exclude")  # changed before the second vote: the latest counts
    _vote(dual, b, 9, "exclude")
    expected = {1: "include",  # agreed
                2: "include",  # conflict: one include is enough (recall first)
                3: "exclude",  # one screener, exclude
                4: "include",  # one screener, maybe
                5: "include",  # conflict maybe/exclude
                6: "exclude",  # resolved: the resolution counts, not the votes
                7: "exclude",  # agreed
                9: "exclude"}  # agreed after a changed vote
    with dual.sessions() as session:
        assert latest_decisions(session, screeners=2) == expected
        # single screening reads the newest row: record 2's is curator b's exclude
        single = latest_decisions(session, screeners=1)
        assert single[2] == "exclude" and single[6] == "exclude" and single[1] == "include"
        records = list(session.exec(select(Record).order_by(col(Record.pmid))).all())
        ts = build_training_set(session, records, ScreeningConfig(), screeners=2)
    labels = dict(zip(ts.pmids, ts.labels.tolist(), strict=True))
    assert {p: labels[p] for p in expected} == {p: int(d != "exclude")
                                                for p, d in expected.items()}
    assert ts.n_decisions == len(expected)


# ----------------------------------------------------------------------------- mode switch
def test_switching_from_single_to_dual_keeps_decided_records(ctx: Any, dual: Any) -> None:
    people = _users(ctx)
    _records(ctx, [10, 11])
    _vote(ctx, people["a"], 10, "include", screeners=1)
    assert _decision(ctx, 10) == "include"
    # now dual: still decided, out of every queue, votes refused
    assert _decision(dual, 10) == "include"
    with dual.sessions() as session:
        assert record_state(_decision(dual, 10), screener_counts(session, [10])[10]) == "resolved"
    for name in ("a", "b"):
        assert [i.pmid for i in _queue(dual, screener_id=people[name].id)] == [11]
    with pytest.raises(RecordStateError, match="already resolved"):
        _vote(dual, people["b"], 10, "exclude")
    with pytest.raises(PermissionDeniedError, match="only an admin"):
        _resolve(dual, people["c"], 10, "exclude")
    assert _decision(dual, 10) == "include"
    _resolve(dual, people["admin"], 10, "exclude")
    assert _decision(dual, 10) == "exclude"


def test_switching_from_dual_to_single_lets_the_next_vote_decide(ctx: Any, dual: Any) -> None:
    people = _users(ctx)
    a, b, c = people["a"], people["b"], people["c"]
    _records(ctx, [20, 21, 22])
    _vote(dual, a, 20, "include")
    _vote(dual, b, 20, "exclude")  # conflict
    _vote(dual, a, 21, "include")  # awaiting a second screener
    assert _decision(ctx, 20) is None and _decision(ctx, 21) is None
    # single screening: both are undecided in the (shared) queue; one vote settles each
    assert [i.pmid for i in _queue(ctx)] == [20, 21, 22]
    _vote(ctx, c, 20, "exclude", screeners=1)
    _vote(ctx, b, 21, "exclude", screeners=1)
    assert (_decision(ctx, 20), _decision(ctx, 21)) == ("exclude", "exclude")
    # a resolution is for conflicts only under single screening
    with pytest.raises(RecordStateError, match="single screening"):
        _resolve(ctx, people["admin"], 20, "include", screeners=1)
    # and back to dual: still decided
    assert [i.pmid for i in _queue(dual, screener_id=c.id)] == [22]


# ----------------------------------------------------------------------------- digest
def test_digest_under_dual_screening_lists_only_resolved_includes(dual: Any) -> None:
    people = _users(dual)
    _records(dual, [30], flagged=True)
    _vote(dual, people["a"], 30, "include")
    first = build_digest(dual).summary["decisions"]
    assert (first["total"], first["counts"], first["includes"]) == (1, {"votes": 1}, [])
    _vote(dual, people["b"], 30, "include")
    second = build_digest(dual).summary["decisions"]
    assert second["counts"] == {"votes": 1}
    assert [r["pmid"] for r in second["includes"]] == [30]
    # an admin's resolution reverses the announced inclusion: withdrawn by name, once
    _resolve(dual, people["admin"], 30, "exclude")
    third = build_digest(dual)
    assert _decision(dual, 30) == "exclude"
    assert [r["pmid"] for r in third.summary["decisions"]["no_longer_included"]] == [30]
    assert "no longer included: Record 30" in third.text
    _records(dual, [31])  # a later period with a vote on another record: not said again
    _vote(dual, people["a"], 31, "exclude")
    fourth = build_digest(dual).summary["decisions"]
    assert fourth["total"] == 1 and fourth["no_longer_included"] == []


# ----------------------------------------------------------------------------- health
def _health_setup(dual: Any) -> None:
    """1 awaits its second vote, 2 and 4 are conflicts, 3 is resolved, 5 nobody screened; 6
    was a conflict until PubMed deleted it (deleted records are not counted)."""
    people = _users(dual)
    a, b = people["a"], people["b"]
    _records(dual, range(1, 7))
    _vote(dual, a, 1, "include")
    for pmid, first, second in [(2, "include", "exclude"), (3, "exclude", "exclude"),
                                (4, "maybe", "include"), (6, "include", "exclude")]:
        _vote(dual, a, pmid, first)
        _vote(dual, b, pmid, second)
    with dual.sessions() as session:
        record = session.get(Record, 6)
        assert record is not None
        record.deleted = True
        session.add(record)
        session.commit()


def test_screening_health_separates_second_votes_and_conflicts(dual: Any) -> None:
    _health_setup(dual)
    with dual.sessions() as session:
        health = screening_health(session, dual=True)
        single = screening_health(session)
    # 1, 2 and 4 were screened (voted on) even though nothing is settled on them yet
    assert (health["records"], health["screened"], health["records_remaining"]) == (5, 4, 1)
    assert health["awaiting_second_vote"] == 1
    assert health["conflicts_awaiting_resolution"] == 2
    assert health["includes_found"] == 3  # 1, 2 and 4: an include or maybe vote each
    # right after the screened records they are part of, for the banner and the digest
    keys = list(health)
    assert keys[keys.index("screened") + 1:][:2] == [
        "awaiting_second_vote", "conflicts_awaiting_resolution"]
    # single screening: the same summary without the two counts, in the same order
    assert single == {k: v for k, v in health.items()
                      if k not in ("awaiting_second_vote", "conflicts_awaiting_resolution")}
    assert list(single) == [k for k in keys if k in single]


def test_the_stopping_test_keeps_the_records_voted_on_last(dual: Any) -> None:
    """20 includes agreed on, then 800 excludes, then 5 conflicts (include / exclude) and 2
    records with one include vote; 73 nobody looked at. Left out as unscreened, the 7 votes
    cast last would leave a run of 800 excludes, and the test claimed recall ≥ 95% (p =
    0.008) with 7 records somebody wants to include screened after them."""
    people = _users(dual)
    a, b = people["a"], people["b"]
    _records(dual, range(1, 901), first_seen_at=utcnow() - timedelta(days=30))
    with dual.sessions() as session:
        for pmid in range(1, 821):
            for user in (a, b):
                record_decision(session, user=user, pmid=pmid, screeners=2,
                                decision="include" if pmid <= 20 else "exclude")
        for pmid in range(821, 826):
            record_decision(session, user=a, pmid=pmid, decision="include", screeners=2)
            record_decision(session, user=b, pmid=pmid, decision="exclude", screeners=2)
        for pmid in (826, 827):
            record_decision(session, user=a, pmid=pmid, decision="include", screeners=2)
        session.commit()
        health = screening_health(session, dual=True)
        order = screening_order(session)
    assert list(order.labels) == [1] * 20 + [0] * 800 + [1] * 7
    assert order.unscreened == 73
    assert (health["screened"], health["includes_found"], health["records_remaining"]) == (
        827, 27, 73)
    assert (health["awaiting_second_vote"], health["conflicts_awaiting_resolution"]) == (2, 5)
    assert health["may_stop"] is False
    # the last 807 records screened (800 excludes, then the 7 include votes) out of 880
    assert health["stopping_p_value"] == pytest.approx(hypergeom.cdf(7, 880, 9, 807), abs=1e-4)
    assert health["stopping_test"].startswith(
        "cannot yet claim recall ≥ 95% (p = 0.167; the last 807 records screened held 7 "
        "includes; 73 unscreened)")


def test_an_unresolved_record_is_an_include_for_the_stopping_test_unless_all_say_exclude(
        dual: Any) -> None:
    people = _users(dual)
    a, b, c = people["a"], people["b"], people["c"]
    _records(dual, range(1, 7), first_seen_at=utcnow() - timedelta(days=30))
    _vote(dual, a, 1, "exclude")  # one exclude, awaiting a second vote
    _vote(dual, a, 2, "maybe")  # one maybe, awaiting a second vote
    _vote(dual, a, 3, "exclude")
    _vote(dual, b, 3, "maybe")  # conflict: maybe / exclude
    _vote(dual, a, 4, "include")
    _vote(dual, a, 4, "exclude")  # changed before anyone else voted: the latest counts
    _vote(dual, c, 5, "exclude")
    _vote(dual, b, 5, "exclude")  # agreed exclude
    with dual.sessions() as session:
        order = screening_order(session)
        health = screening_health(session, dual=True)
    assert list(order.labels) == [0, 1, 1, 0, 0]
    assert order.unscreened == 1  # 6
    assert (health["screened"], health["includes_found"]) == (5, 2)


def test_single_screening_decisions_changed_by_a_colleague_are_no_blind_pairs(ctx: Any,
                                                                            dual: Any) -> None:
    """Under single screening whoever decides again sees the decision they change on the
    record's page: not a blind vote, so no agreement statistic counts it (it paired A's and
    B's decisions, κ from 3 pairs B had seen)."""
    people = _users(ctx)
    a, b = people["a"], people["admin"]
    _records(ctx, range(1, 11))
    for pmid in range(1, 11):
        _vote(ctx, a, pmid, "include" if pmid <= 5 else "exclude", screeners=1)
    for pmid, decision in [(4, "exclude"), (5, "exclude"), (6, "include")]:
        _vote(ctx, b, pmid, decision, screeners=1)
    with ctx.sessions() as session:
        assert blind_pairs(session) == []
        stats = agreement(session)
        kinds = set(session.exec(select(Decision.kind)).all())
        decided = {r.pmid: r.decision for r in session.exec(select(Record)).all()}
    assert (stats.binary.n, stats.binary.kappa, stats.three_way.kappa) == (0, None, None)
    assert kinds == {"decision"}
    assert (decided[4], decided[5], decided[6]) == ("exclude", "exclude", "include")
    # The review turns to dual screening: the records decided before stay resolved, and the
    # votes cast from now on pair as before.
    _records(dual, [11])
    _vote(dual, a, 11, "include")
    _vote(dual, people["b"], 11, "exclude")
    with dual.sessions() as session:
        assert blind_pairs(session) == [("include", "exclude")]
    assert _decision(dual, 4) == "exclude"


def test_digest_health_counts_second_votes_and_conflicts_only_under_dual(ctx: Any,
                                                                       dual: Any) -> None:
    _records(ctx, [50], flagged=True)
    single = build_digest(ctx, health=screening_health)
    assert "awaiting_second_vote" not in single.summary["screening_health"]
    assert "awaiting second vote" not in single.text
    _health_setup(dual)
    digest = build_digest(dual, health=screening_health)
    health = digest.summary["screening_health"]
    assert (health["awaiting_second_vote"], health["conflicts_awaiting_resolution"]) == (1, 2)
    assert "awaiting second vote: 1" in digest.text
    assert "conflicts awaiting resolution: 2" in digest.text
    assert "conflicts awaiting resolution" in digest.html


# ----------------------------------------------------------------------------- migration
@pytest.mark.empty_database
def test_database_at_0002_upgrades_with_decisions_intact(db_url: str) -> None:
    from alembic import command

    from store.engine import make_engine

    engine = make_engine(db_url)
    cfg = alembic_config(engine)
    # the decisions table as revision 0002 knows it (the model has a column more now)
    old_decisions = table("decisions", column("pmid"), column("user_id"), column("decision"),
                          column("reason"), column("stage"), column("audit_sample"),
                          column("created_at", UTCDateTime()))
    try:
        command.upgrade(cfg, "0002")
        with engine.begin() as conn:
            assert "kind" not in [c["name"] for c in inspect(conn).get_columns("decisions")]
            # records did not change in 0003: the model's table is the old one, but for the
            # column 0016 added
            conn.execute(table_without(Record, "identified_via").insert().values(
                pmid=1, title="Old", decision="include", first_seen_at=utcnow(),
                updated_at=utcnow(), last_fetched_at=utcnow(),
                **{key: [] for key in ("authors", "language", "publication_types", "mesh",
                                       "keywords", "nct_ids", "comments_corrections")}))
            conn.execute(old_decisions.insert(), [
                {"pmid": 1, "user_id": None, "decision": "exclude", "reason": "first look",
                 "stage": "title_abstract", "audit_sample": False, "created_at": utcnow()},
                {"pmid": 1, "user_id": None, "decision": "include", "reason": "kept",
                 "stage": "title_abstract", "audit_sample": False, "created_at": utcnow()}])
        command.upgrade(cfg, "head")
        with engine.connect() as conn:
            indexes = {i["name"] for i in inspect(conn).get_indexes("decisions")}
            assert "ix_decisions_user_id" in indexes
        with Session(engine) as session:
            rows = session.exec(select(Decision).order_by(col(Decision.id))).all()
            assert [(d.decision, d.reason, d.kind) for d in rows] == [
                ("exclude", "first look", "vote"), ("include", "kept", "vote")]
            record = session.get(Record, 1)
            assert record is not None and record.decision == "include"  # still decided
            assert latest_decisions(session, screeners=2) == {1: "include"}
        command.downgrade(cfg, "0002")
        with engine.connect() as conn:
            assert "kind" not in [c["name"] for c in inspect(conn).get_columns("decisions")]
            assert conn.execute(text("SELECT count(*) FROM decisions")).scalar() == 2
    finally:
        engine.dispose()
