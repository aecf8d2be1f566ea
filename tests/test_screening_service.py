"""`screen()` on a real database (SQLite file or PostgreSQL) with the synthetic demo corpus:
cold start (keyword prior, then seed PMIDs), retraining after decisions, idempotency,
provenance on scores and decisions, the queue and the screening health."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sqlmodel import Session, col, func, select

from monitor.demo_corpus import read_labels, write_demo_corpus
from monitor.pubmed_xml import iter_records
from monitor.records import ParsedRecord
from screening.health import screening_health
from screening.queue import AUDIT_EVERY, queue
from screening.service import PROGRESS_KEY, load_model, record_document, screen
from store.errors import LockedError
from store.locks import job_lock
from store.models import Decision, KeyValue, ModelVersion, Record, Score, Trial, TrialReport, User


def _load_corpus(ctx, tmp_path: Path) -> dict[int, bool]:
    dest = tmp_path / "corpus"
    files = write_demo_corpus(dest)
    with ctx.sessions() as session:
        for f in files:
            if f.suffix != ".xml":
                continue
            for item in iter_records(f):
                if not isinstance(item, ParsedRecord):
                    continue
                data = item.content()
                session.merge(Record(pmid=item.pmid, source="demo",
                                     content_hash=item.content_hash(),
                                     **{k: v for k, v in data.items()}))
        session.commit()
    return {pmid: eligible for pmid, (_, eligible) in read_labels(dest).items()}


def _count(session: Session, model, *conds) -> int:
    return int(session.exec(select(func.count()).select_from(model).where(*conds)).one())


def _add_seeds(ctx, pmids: list[int]) -> None:
    with ctx.sessions() as session:
        trial = Trial(name="Demo seed trial", drug="lenalidomide", setting="post_asct")
        session.add(trial)
        session.flush()
        for p in pmids:
            session.add(TrialReport(trial_id=int(trial.id or 0), pmid=p, citation=f"PMID {p}"))
        session.commit()


def _curator(ctx) -> User:
    with ctx.sessions() as session:
        user = User(email="curator@example.org", role="curator")
        session.add(user)
        session.commit()
        session.refresh(user)
        return user


def _decide(ctx, user: User, pmid: int, decision: str) -> Decision:
    from screening.web.decisions import record_decision

    with ctx.sessions() as session:
        row = record_decision(session, user=user, pmid=pmid, decision=decision).row
        session.commit()
        session.refresh(row)
        return row


def _queue(ctx, **kw):
    # Sessions are closed explicitly: a connection left to the garbage collector can be
    # finalised at any later point of the run.
    with ctx.sessions() as session:
        return queue(session, **kw)


def _health(ctx):
    with ctx.sessions() as session:
        return screening_health(session)


@pytest.fixture
def corpus(ctx, tmp_path: Path) -> dict[int, bool]:
    return _load_corpus(ctx, tmp_path)


def test_cold_start_prior_then_seeds_then_decisions(ctx, corpus) -> None:
    n = len(corpus)
    eligible = sorted(p for p, e in corpus.items() if e)
    # 1. nothing known: the transparent keyword prior ranks the records
    s1 = screen(ctx)
    assert s1.model_name == "keyword-prior" and s1.trained
    assert s1.scored == n and 0 < s1.flagged < n
    assert "keyword prior" in s1.describe() and f"scored {n}" in s1.describe()
    with ctx.sessions() as session:
        assert _count(session, Score) == n
        flagged = session.exec(select(Record.pmid).where(col(Record.flagged).is_(True))).all()
    # the prior already finds most maintenance trials
    assert sum(corpus[p] for p in flagged) >= 0.8 * len(eligible)

    # 2. idempotent: nothing new → no new model, no new score rows
    s2 = screen(ctx)
    assert not s2.trained and s2.scored == 0 and s2.model_version_id == s1.model_version_id
    with ctx.sessions() as session:
        assert _count(session, Score) == n and _count(session, ModelVersion) == 1

    # 3. the seed trials' records arrive: a classifier replaces the prior
    _add_seeds(ctx, eligible[:5])
    s3 = screen(ctx)
    assert s3.trained and s3.model_name == "mmlr-default" and s3.scored == n
    assert s3.n_positive == 5 and s3.n_train > 5
    with ctx.sessions() as session:
        mv = session.get(ModelVersion, s3.model_version_id)
        assert mv is not None and mv.active and mv.artifact and mv.threshold is not None
        assert mv.cv_metrics["recall"] >= ctx.settings.target_recall
        assert mv.cv_metrics["n_seed"] == 5 and mv.cv_metrics["n_weak_negative"] > 0
        assert mv.config["classifier"] == "svm" and mv.code_version
        assert not session.get(ModelVersion, s1.model_version_id).active
        # provenance on every record and score
        recs = session.exec(select(Record)).all()
        assert {r.score_model_version_id for r in recs} == {mv.id}
        assert _count(session, Score, Score.model_version_id == mv.id) == n
        # persistence round trip through the database: the stored model gives the same scores
        model = load_model(session.get(ModelVersion, mv.id))
        sample = recs[:20]
        rescored = model.score([record_document(r) for r in sample])
        for r, value in zip(sample, rescored, strict=True):
            row = session.exec(select(Score).where(Score.pmid == r.pmid,
                                                   Score.model_version_id == mv.id)).one()
            assert row.score == pytest.approx(float(value), abs=1e-12)
            assert row.content_hash == r.content_hash and r.score == row.score

    # 4. curator decisions carry the model version they saw; enough of them retrain
    user = _curator(ctx)
    top = _queue(ctx, limit=ctx.settings.retrain_min_decisions)
    for item in top:
        d = _decide(ctx, user, item.pmid, "include" if corpus[item.pmid] else "exclude")
        assert d.model_version_id == s3.model_version_id
        assert d.score_shown == pytest.approx(item.score)
    s4 = screen(ctx)
    assert s4.trained and s4.model_version_id != s3.model_version_id
    with ctx.sessions() as session:
        mv4 = session.get(ModelVersion, s4.model_version_id)
        assert mv4.n_decisions == len(top)
    # the classifier puts the eligible records on top of the queue
    ranked = _queue(ctx, limit=40)
    assert sum(corpus[i.pmid] for i in ranked) >= 30
    undecided_eligible = [p for p in eligible if p not in {i.pmid for i in top}]
    with ctx.sessions() as session:
        scores = dict(session.exec(select(Record.pmid, Record.score)).all())
    others = [scores[p] for p, e in corpus.items() if not e]
    pairs = [(scores[p] > o) for p in undecided_eligible for o in others]
    assert sum(pairs) / len(pairs) > 0.9  # AUC of the undecided eligible records

    # 5. a second call with nothing new is a no-op again
    s5 = screen(ctx)
    assert not s5.trained and s5.scored == 0
    # 6. a decided record that PubMed deletes leaves the training set, not the history
    with ctx.sessions() as session:
        dead = session.get(Record, top[0].pmid)
        dead.deleted = True
        session.add(dead)
        session.commit()
    s6 = screen(ctx, force_retrain=True)
    assert s6.trained
    with ctx.sessions() as session:
        assert session.get(ModelVersion, s6.model_version_id).n_decisions == len(top) - 1
        assert _count(session, Decision, Decision.pmid == top[0].pmid) == 1
    assert top[0].pmid not in {i.pmid for i in _queue(ctx, limit=500, include_decided=True)}
    with ctx.sessions() as session:
        progress = session.get(KeyValue, PROGRESS_KEY).value
    assert progress["phase"] == "done" and {"done", "total", "updated_at"} <= set(progress)


def test_the_scheduled_run_learns_what_changed_below_the_decision_threshold(ctx,
                                                                          corpus) -> None:
    """Two decisions and two more seed records, fewer than retrain_min_decisions: a run after
    decisions waits for more, the scheduled run retrains on them (it waited for ever)."""
    eligible = sorted(p for p, e in corpus.items() if e)
    first = screen(ctx)
    _add_seeds(ctx, eligible[:5])
    classifier = screen(ctx)
    assert classifier.trained and classifier.model_version_id != first.model_version_id
    # nothing changed: the scheduled run trains nothing either
    same = screen(ctx, on_schedule=True)
    assert not same.trained and same.model_version_id == classifier.model_version_id
    user = _curator(ctx)
    for pmid in eligible[5:7]:
        _decide(ctx, user, pmid, "include")
    with ctx.sessions() as session:  # two more reports of the seed trial arrive
        trial_id = session.exec(select(Trial.id)).one()
        for p in eligible[7:9]:
            session.add(TrialReport(trial_id=int(trial_id or 0), pmid=p, citation=f"PMID {p}"))
        session.commit()
    assert ctx.settings.retrain_min_decisions > 2
    waiting = screen(ctx)
    assert not waiting.trained and waiting.model_version_id == classifier.model_version_id
    learnt = screen(ctx, on_schedule=True)
    assert learnt.trained and learnt.model_version_id != classifier.model_version_id
    with ctx.sessions() as session:
        mv = session.get(ModelVersion, learnt.model_version_id)
        assert mv is not None and mv.active
        assert mv.n_decisions == 2 and mv.n_positive == 9


def test_changed_content_is_rescored_and_deleted_records_leave_the_queue(ctx, corpus) -> None:
    eligible = sorted(p for p, e in corpus.items() if e)
    _add_seeds(ctx, eligible[:4])
    first = screen(ctx)
    victim, gone = eligible[10], eligible[11]
    with ctx.sessions() as session:
        rec = session.get(Record, victim)
        old_hash = rec.content_hash
        rec.abstract = (rec.abstract or "") + " Updated with MEDLINE indexing."
        rec.content_hash = "changed-" + old_hash
        rec.score = None  # what the poller does when the content changes
        session.add(rec)
        dead = session.get(Record, gone)
        dead.deleted = True
        session.add(dead)
        session.commit()
    again = screen(ctx)
    assert not again.trained and again.scored == 1
    with ctx.sessions() as session:
        rows = session.exec(select(Score).where(Score.pmid == victim)).all()
        assert {r.content_hash for r in rows} == {old_hash, "changed-" + old_hash}
        assert {r.model_version_id for r in rows} == {first.model_version_id}
        assert session.get(Record, victim).score is not None
    pmids = {i.pmid for i in _queue(ctx, limit=500, include_decided=True)}
    assert gone not in pmids and victim in pmids
    assert first.model_version_id == again.model_version_id


def _break_artifact(ctx, version_id: int) -> None:
    """What a library upgrade does to a stored model: the bytes are intact (the checksum
    matches) but no longer unpickle."""
    import hashlib

    payload = b"not a pickle any more"
    with ctx.sessions() as session:
        mv = session.get(ModelVersion, version_id)
        mv.artifact = hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
        session.add(mv)
        session.commit()


def test_an_artifact_that_no_longer_loads_is_replaced_by_a_new_version(ctx, corpus,
                                                                        caplog) -> None:
    """The active classifier's artifact stopped unpickling (a library upgrade): every
    `mmlr screen`, and so every cycle with its pooling and digest, failed with 'artifact
    cannot be loaded', even with nothing to score, until someone ran `--retrain`."""
    eligible = sorted(p for p, e in corpus.items() if e)
    _add_seeds(ctx, eligible[:5])
    first = screen(ctx)
    assert first.trained and first.model_name == "mmlr-default"
    _break_artifact(ctx, first.model_version_id)
    # nothing to score: the artifact is not read
    idle = screen(ctx)
    assert not idle.trained and idle.scored == 0
    assert idle.model_version_id == first.model_version_id
    # a record to score: a new version from the current labels takes over and scores all
    victim = eligible[10]
    with ctx.sessions() as session:
        rec = session.get(Record, victim)
        rec.content_hash = "changed-" + rec.content_hash
        rec.score = None
        session.add(rec)
        session.commit()
    with caplog.at_level("WARNING", logger="screening.service"):
        again = screen(ctx)
    assert again.trained and again.model_name == "mmlr-default"
    assert again.model_version_id != first.model_version_id
    assert again.scored == len(corpus) and again.n_positive == 5
    assert any(f"model version {first.model_version_id} artifact cannot be loaded"
               in r.getMessage() and "training a new version" in r.getMessage()
               for r in caplog.records)
    with ctx.sessions() as session:
        assert not session.get(ModelVersion, first.model_version_id).active
        mv = session.get(ModelVersion, again.model_version_id)
        assert mv.active and load_model(mv) is not None
        assert {r.score_model_version_id for r in session.exec(select(Record))} == {mv.id}
    assert not screen(ctx).trained  # the new version loads: nothing more to do


def test_a_retrain_replaces_the_scores_all_at_once(ctx, corpus, monkeypatch) -> None:
    """A new version was made active before it rescored the records in batches: mid-run the
    queue (ordered by Record.score) and the digest's flagged list mixed both versions."""
    import screening.service as service
    from reports.digest import _flagged_records

    first = screen(ctx)  # the keyword prior
    eligible = sorted(p for p, e in corpus.items() if e)
    _add_seeds(ctx, eligible[:5])
    with ctx.sessions() as session:
        before = {r.pmid: (r.score_model_version_id, r.score, r.flagged)
                  for r in session.exec(select(Record))}
    assert {v for v, _, _ in before.values()} == {first.model_version_id}
    seen: list[tuple[int, int]] = []
    real = service.write_progress

    def pause(ctx_, phase: str, done: int, total: int) -> None:
        real(ctx_, phase, done, total)
        if phase != "scoring" or not 0 < done < total or seen:
            return
        seen.append((done, total))
        with ctx.sessions() as session:  # what the queue and the digest read now
            now = {r.pmid: (r.score_model_version_id, r.score, r.flagged)
                   for r in session.exec(select(Record))}
            active = session.exec(select(ModelVersion).where(
                col(ModelVersion.active).is_(True))).all()
            flagged = {r.score_model_version_id for r in _flagged_records(session)}
        assert now == before
        assert [m.id for m in active] == [first.model_version_id]
        assert flagged == {first.model_version_id}
        assert {i.model_version_id for i in _queue(ctx, limit=500)} == {first.model_version_id}

    monkeypatch.setattr(service, "SCORE_BATCH", 50)
    monkeypatch.setattr(service, "write_progress", pause)
    second = screen(ctx)
    assert seen and second.trained and second.model_name == "mmlr-default"
    with ctx.sessions() as session:
        recs = session.exec(select(Record)).all()
        assert {r.score_model_version_id for r in recs} == {second.model_version_id}
        scores = {(s.pmid, s.content_hash): s for s in session.exec(
            select(Score).where(Score.model_version_id == second.model_version_id))}
        assert all((r.score, r.flagged) == (scores[r.pmid, r.content_hash].score,
                                            scores[r.pmid, r.content_hash].flagged)
                   for r in recs)
        assert [m.id for m in session.exec(select(ModelVersion).where(
            col(ModelVersion.active).is_(True)))] == [second.model_version_id]
    assert second.flagged == sum(r.flagged for r in recs) > 0


class _Killed(Exception):
    """Stands in for SIGKILL in the middle of scoring: nothing after it runs."""


def _kill_while_scoring(ctx, monkeypatch) -> None:
    import screening.service as service

    real = service.write_progress

    def die(ctx_, phase: str, done: int, total: int) -> None:
        real(ctx_, phase, done, total)
        if phase == "scoring" and 0 < done < total:
            raise _Killed

    monkeypatch.setattr(service, "SCORE_BATCH", 50)
    monkeypatch.setattr(service, "write_progress", die)
    with pytest.raises(_Killed):
        screen(ctx, force_retrain=True)
    monkeypatch.setattr(service, "write_progress", real)


def _versions(ctx) -> dict[int, tuple[bool, bool, int]]:
    """Each version: active, marked abandoned, its Score rows."""
    from screening.service import ABANDONED

    with ctx.sessions() as session:
        return {int(mv.id or 0): (mv.active, ABANDONED in mv.cv_metrics,
                                  _count(session, Score, Score.model_version_id == mv.id))
                for mv in session.exec(select(ModelVersion))}


def test_a_version_a_killed_run_left_is_abandoned_by_the_next_run(ctx, corpus,
                                                                  monkeypatch) -> None:
    """A retrain killed mid-scoring left its inactive version and part of its Score rows
    behind for good; the next run now removes the scores and marks the version abandoned,
    and leaves the versions that were active alone."""
    from store.models import AuditLog

    n = len(corpus)
    _kill_while_scoring(ctx, monkeypatch)  # the very first run: no version is active
    [(first_killed, (active, abandoned, scores))] = _versions(ctx).items()
    assert not active and not abandoned and 0 < scores < n
    prior = screen(ctx)
    assert prior.trained and prior.model_version_id > first_killed
    assert _versions(ctx) == {first_killed: (False, True, 0),
                              prior.model_version_id: (True, False, n)}

    _add_seeds(ctx, sorted(p for p, e in corpus.items() if e)[:5])
    _kill_while_scoring(ctx, monkeypatch)  # a retrain: the keyword prior stays active
    killed = max(_versions(ctx))
    assert _versions(ctx)[killed][:2] == (False, False) and 0 < _versions(ctx)[killed][2] < n
    assert [i.model_version_id for i in _queue(ctx, limit=5)] == [prior.model_version_id] * 5
    classifier = screen(ctx)
    assert classifier.trained and classifier.model_version_id > killed
    assert _versions(ctx) == {first_killed: (False, True, 0),
                              prior.model_version_id: (False, False, n),  # was active: kept
                              killed: (False, True, 0),
                              classifier.model_version_id: (True, False, n)}
    with ctx.sessions() as session:
        rows = session.exec(select(AuditLog).where(AuditLog.action == "model.abandon")
                            .order_by(col(AuditLog.id))).all()
        assert [r.object_id for r in rows] == [str(first_killed), str(killed)]
    last = screen(ctx, force_retrain=True)  # not killed: nothing more is abandoned
    assert [v for v, (_, abandoned, _) in _versions(ctx).items() if abandoned] == [
        first_killed, killed]
    assert _versions(ctx)[last.model_version_id] == (True, False, n)


def test_a_changed_target_recall_recalibrates_the_threshold(ctx, corpus) -> None:
    """MMLR_TARGET_RECALL changed after a classifier was trained: `mmlr screen` kept the
    version calibrated to the old target, while the pages named the new one."""
    eligible = sorted(p for p, e in corpus.items() if e)
    _add_seeds(ctx, eligible[:5])
    first = screen(ctx)
    assert first.trained and first.model_name == "mmlr-default"
    lower = replace(ctx, settings=ctx.settings.model_copy(update={"target_recall": 0.9}))
    again = screen(lower)
    assert again.trained and again.model_version_id != first.model_version_id
    with ctx.sessions() as session:
        mv = session.get(ModelVersion, again.model_version_id)
        assert mv is not None and mv.active and mv.config["target_recall"] == 0.9
    assert not screen(lower).trained  # calibrated to it now: nothing to do


def test_could_train_agrees_with_the_training_set(ctx, corpus) -> None:
    """The web app's check before a background run (``could_train``) answers as the training
    set it stands for: includes from decisions and seeds, excludes from decisions and weak
    negatives."""
    from screening.config import ScreeningConfig
    from screening.service import build_training_set, could_train

    config = ScreeningConfig()
    eligible = sorted(p for p, e in corpus.items() if e)
    others = sorted(p for p, e in corpus.items() if not e)

    def agree() -> bool:
        with ctx.sessions() as session:
            records = session.exec(select(Record).where(col(Record.deleted).is_(False))).all()
            full = build_training_set(session, records, config).trainable
            assert could_train(session, config) == full
            return full

    assert not agree()  # nothing known
    user = _curator(ctx)
    for pmid in others[:3]:
        _decide(ctx, user, pmid, "exclude")
    assert not agree()  # excludes only
    _add_seeds(ctx, eligible[:1])
    assert not agree()  # one include
    _decide(ctx, user, eligible[1], "maybe")
    assert agree()  # two
    with ctx.sessions() as session:  # a deleted record's decision leaves the set
        dead = session.get(Record, eligible[1])
        dead.deleted = True
        session.add(dead)
        session.commit()
    assert not agree()


def test_queue_interleaves_the_audit_sample_and_health_estimates_recall(ctx, corpus) -> None:
    ctx = replace(ctx, settings=ctx.settings.model_copy(update={"audit_fraction": 0.3}))
    eligible = sorted(p for p, e in corpus.items() if e)
    _add_seeds(ctx, eligible[:5])
    summary = screen(ctx)
    assert summary.audit_sample > 0
    items = _queue(ctx, limit=60)
    assert [i.rank for i in items] == list(range(1, 61))
    assert len({i.pmid for i in items}) == 60
    audit_positions = [i.rank for i in items if i.audit_sample]
    assert audit_positions and all(r % AUDIT_EVERY == 0 for r in audit_positions)
    main_scores = [i.score for i in items if not i.audit_sample]
    assert main_scores == sorted(main_scores, reverse=True)
    assert all(not i.flagged for i in items if i.audit_sample)
    # paging gives the same order as one long page
    assert [i.pmid for i in _queue(ctx, limit=20, offset=20)] == \
        [i.pmid for i in items[20:40]]

    health = _health(ctx)
    assert health["audit_screened"] == 0 and health["estimated_recall"] is None
    assert "not yet possible" in health["audit_test"] and health["assumptions"]
    assert health["stopping_test"].endswith("no record has been screened yet")

    user = _curator(ctx)
    with ctx.sessions() as session:
        audit = session.exec(select(Record).where(col(Record.audit_sample).is_(True))).all()
        flagged = session.exec(select(Record).where(col(Record.flagged).is_(True))).all()
    for r in audit:
        d = _decide(ctx, user, r.pmid, "include" if corpus[r.pmid] else "exclude")
        assert d.audit_sample
    for r in flagged:
        _decide(ctx, user, r.pmid, "include" if corpus[r.pmid] else "exclude")
    health = _health(ctx)
    assert health["audit_screened"] == len(audit)
    assert health["includes_found"] == sum(corpus[p] for p in {r.pmid for r in [*audit, *flagged]})
    assert 0 < health["estimated_recall"] <= 1
    assert health["estimated_recall_lower95"] <= health["estimated_recall"]
    assert 0 <= health["audit_p_value"] <= 1
    # The records were all there before the first decision: every decision may be sampled.
    assert 0 < health["stopping_p_value"] <= 1 and "last" in health["stopping_test"]
    assert health["records"] == len(corpus)


def test_screen_refuses_to_run_twice_at_once(ctx, corpus) -> None:
    with job_lock(ctx.engine, "screen"), pytest.raises(LockedError):
        screen(ctx)


def test_cli_screen_runs_on_an_empty_database(settings, db_url: str) -> None:
    from conftest import cli_env, run_cli

    env = cli_env(MMLR_DATA_DIR=str(settings.data_dir), MMLR_DATABASE_URL=db_url)
    for _ in range(2):
        proc = run_cli("screen", env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip().startswith("model v1 (keyword prior)")
        assert "scored 0 / flagged 0" in proc.stdout


def test_interleave_puts_an_audit_item_at_every_tenth_place() -> None:
    from screening.queue import interleave

    main = [f"m{i}" for i in range(25)]
    merged = interleave(main, ["a1", "a2", "a3"], 40)
    places = [i + 1 for i, x in enumerate(merged) if x.startswith("a")]
    assert places == [AUDIT_EVERY, 2 * AUDIT_EVERY, 28]  # the last after the main order ends
    assert [x for x in merged if x.startswith("m")] == main  # the main order is kept
    assert interleave(main, ["a1"], 5) == main[:5] and interleave([], ["a1"], 3) == ["a1"]


def test_the_previous_versions_reports_are_not_screened_again(ctx) -> None:
    """The seed evidence's reports stored as records (the monitor re-fetches them) are already
    included: the queue (main list and audit list) and the audit sample leave them out, while
    a curator's report of a new trial is screened like any record."""
    from previous_reports import NEW_REPORT, ORDINARY, store_previous_reports

    from screening.service import _choose_audit

    with ctx.sessions() as session:
        pool = store_previous_reports(session)
        # drawn into the audit sample by an older mmlr, then decided
        decided = session.get(Record, pool.previous[1])
        decided.audit_sample = True
        session.add(decided)
        session.commit()
    previous = set(pool.previous)
    items = _queue(ctx, limit=100)
    # they score highest, yet the queue starts with the new trial's report
    assert [i.pmid for i in items][:1] == [NEW_REPORT]
    assert {i.pmid for i in items} == {*ORDINARY, NEW_REPORT}
    assert not previous & {i.pmid for i in _queue(ctx, limit=100, include_decided=True)}
    # the audit sample: every low-score record of the pool is drawn at fraction 1, no
    # previous report is, and the marks of those drawn before are cleared (decided or not)
    assert _choose_audit(ctx, 1.0) == len(ORDINARY) - 5
    with ctx.sessions() as session:
        drawn = set(session.exec(select(Record.pmid).where(
            col(Record.audit_sample).is_(True))).all())
    assert drawn == set(ORDINARY[5:])
    assert {i.pmid for i in _queue(ctx, limit=100) if i.audit_sample} == set(ORDINARY[5:])


def test_the_queue_puts_the_unscored_last_and_breaks_ties_by_the_newest_pmid(ctx) -> None:
    """The queue's order, which migration 0017's index serves on PostgreSQL as it is written:
    highest score first, unscored records last, records of one score newest PMID first; pages
    follow one another without a gap or an overlap. The search page orders the same way."""
    from screening.record_search import search

    scores = {101: 0.5, 102: None, 103: 0.9, 104: 0.5, 105: None, 106: 0.5, 107: 0.1}
    with ctx.sessions() as session:
        for pmid, score in scores.items():
            session.add(Record(pmid=pmid, title=f"Myeloma record {pmid}", score=score))
        session.commit()
    expected = [103, 106, 104, 101, 107, 105, 102]
    assert [i.pmid for i in _queue(ctx, limit=10)] == expected
    assert [i.pmid for i in _queue(ctx, limit=3)] + [i.pmid for i in _queue(
        ctx, limit=3, offset=3)] + [i.pmid for i in _queue(ctx, limit=3, offset=6)] == expected
    with ctx.sessions() as session:
        assert [r.pmid for r in search(session, "myeloma record", limit=10).records] == expected
