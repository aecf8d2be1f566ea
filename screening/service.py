"""`mmlr screen`: (re)train the classifier when the evidence changed, score what needs it.

One call, under the job lock "screen":
1. decide whether to train: no model yet, ``force_retrain``, at least
   ``settings.retrain_min_decisions`` decisions newer than the active model, or the active
   model is the keyword prior and a classifier can now be trained, or the keyword prior
   scored with another query than ``settings.query`` (its gates come from the query), or the
   active classifier's threshold was calibrated to another recall than
   ``settings.target_recall``; on schedule (the daily cycle), any change of the training set
   since the active model (a decision, a seed record arrived, a new weak negative);
2. build the training set — curator decisions (include/maybe = 1, exclude = 0; under dual
   screening the resolved decision, else the recall-first rule of ``latest_decisions``)
   override everything; seed PMIDs (``TrialReport.pmid``) are known includes; undecided
   records whose publication type can never be a trial report, or that never mention
   myeloma, are weak negatives (capped per include) — and train, calibrating the flag
   threshold by cross-validation; with fewer than 2 includes or 2 excludes the transparent
   keyword prior (``screening.prior``) stands in; the new version stays inactive until it
   has scored every record, then becomes active and its scores and flags go onto the records
   in one transaction (the queue and the digest never mix two versions' scores); a version
   a killed run left inactive loses its scores and is marked abandoned at the next run's
   start;
3. score every live record whose score is missing, from another model, or from older content,
   reusing a Score row when one exists for (pmid, model, content hash); the active model's
   artifact is loaded only when some record needs scoring, and one that no longer loads
   (unpickling after a library upgrade) is replaced by a version trained on the current
   labels, as in step 2;
4. choose the random audit sample among low-score undecided records.

Progress is written to KeyValue "screening.progress"; every transaction is short so the web
app keeps serving while this runs in a background thread.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
from sqlalchemy import delete, exists, func, update
from sqlmodel import Session, col, select

from screening.agreement import VOTE, latest_votes, provisional_label
from screening.config import ScreeningConfig
from screening.draw import audit_draw
from screening.features import Document
from screening.model import ScreeningModel, train_model
from screening.prior import (
    PRIOR_THRESHOLD,
    gates_from_config,
    prior_config,
    prior_gates,
    prior_score,
)
from screening.votes import votes_on
from store.audit import audit
from store.context import AppContext
from store.errors import ScreeningError
from store.locks import job_lock
from store.models import Decision, KeyValue, ModelVersion, Record, Score, TrialReport, utcnow
from store.screening_pool import in_screening_pool, previous_report_pmids
from store.settings import is_dual_screening

log = logging.getLogger(__name__)

PROGRESS_KEY = "screening.progress"
PRIOR_NAME = "keyword-prior"
SCORE_BATCH = 500
_MYELOMA = re.compile(r"myelom|plasma[- ]cell", re.IGNORECASE)


@dataclass
class ScreenSummary:
    model_version_id: int
    model_name: str
    trained: bool
    n_train: int
    n_positive: int
    scored: int
    flagged: int
    audit_sample: int
    threshold: float | None = None

    def describe(self) -> str:
        what = (f"model v{self.model_version_id} (keyword prior)" if self.model_name == PRIOR_NAME
                else f"model v{self.model_version_id} (trained on {self.n_train}: "
                     f"{self.n_positive} includes)")
        if self.trained:
            what += " new"
        return f"{what} / scored {self.scored} / flagged {self.flagged}"

    def to_json(self) -> dict[str, Any]:
        return {"model_version_id": self.model_version_id, "model": self.model_name,
                "trained": self.trained, "n_train": self.n_train,
                "n_positive": self.n_positive, "scored": self.scored,
                "flagged": self.flagged, "audit_sample": self.audit_sample,
                "threshold": self.threshold}


def code_version() -> str:
    try:
        return version("mmlr")
    except PackageNotFoundError:  # running from a checkout that was not installed
        return "unknown"


def record_document(r: Record) -> Document:
    return Document(
        title=r.title or "", abstract=r.abstract or "",
        mesh=tuple(str(m.get("descriptor", "")) for m in (r.mesh or []) if isinstance(m, dict)),
        keywords=tuple(r.keywords or ()), publication_types=tuple(r.publication_types or ()),
        journal=r.journal or "",
    )


# ----------------------------------------------------------------------------- progress
def write_progress(ctx: AppContext, phase: str, done: int, total: int) -> None:
    with ctx.sessions() as session:
        row = session.get(KeyValue, PROGRESS_KEY)
        value = {"phase": phase, "done": done, "total": total,
                 "updated_at": utcnow().isoformat()}
        if row is None:
            row = KeyValue(key=PROGRESS_KEY, value=value)
        else:
            row.value = value
            row.updated_at = utcnow()
        session.add(row)
        session.commit()


# ----------------------------------------------------------------------------- training data
@dataclass
class TrainingSet:
    pmids: list[int]
    labels: np.ndarray
    n_decisions: int
    n_seed: int
    n_weak: int
    snapshot_at: datetime

    @property
    def n_positive(self) -> int:
        return int(self.labels.sum())

    @property
    def trainable(self) -> bool:
        return self.n_positive >= 2 and int((self.labels == 0).sum()) >= 2


def latest_decisions(session: Session, *, screeners: int = 1) -> dict[int, str]:
    """The curators' decision per PMID that the classifier learns from.

    Single screening: the newest decision (the Decision table is append-only). Dual
    screening: the resolved decision (``Record.decision``) where there is one; a record with
    votes but no resolution yet (awaiting a second screener, or in conflict) counts as
    include when any screener's latest vote is include or maybe, and as exclude only when
    every screener said exclude (``screening.agreement.provisional_label``). Why: these
    labels steer the ranking and the recall estimate, and a false exclude can bury an
    eligible trial at the bottom of the queue, while a false include only costs a look.
    """
    if not is_dual_screening(screeners):
        newest = (select(Decision.pmid, func.max(Decision.id).label("id"))
                  .group_by(col(Decision.pmid)).subquery())
        rows = session.exec(select(Decision.pmid, Decision.decision)
                            .join(newest, col(Decision.id) == newest.c.id)).all()
        return {int(p): d for p, d in rows}
    resolved = {int(p): str(d) for p, d in session.exec(
        select(Record.pmid, Record.decision).where(col(Record.decision).is_not(None))).all()}
    voted = {int(p) for p in session.exec(
        select(Decision.pmid).where(col(Decision.kind) == VOTE).distinct()).all()}
    pending = sorted(voted - set(resolved))
    for pmid, votes in votes_on(session, pending).items():
        # every screener's latest vote; a vote without a user still carries its opinion
        named = [v.decision for v in latest_votes(votes).values()]
        anonymous = [v.decision for v in votes if v.user_id is None]
        label = provisional_label(named + anonymous)
        resolved[pmid] = "include" if label else "exclude"
    return resolved


def _weak_negative(r: Record, weak_types: set[str]) -> bool:
    """An undecided record that can never be a trial report (its publication type) or never
    mentions myeloma: a weak negative of the training set."""
    return (any(t.lower() in weak_types for t in (r.publication_types or []))
            or not _MYELOMA.search(" ".join([r.title or "", r.abstract or "", *[
                str(m.get("descriptor", "")) for m in (r.mesh or []) if isinstance(m, dict)]])))


def could_train(session: Session, config: ScreeningConfig, *, screeners: int = 1) -> bool:
    """Whether ``build_training_set`` would now give a trainable set (2 includes and 2
    excludes), without reading every record when the labels tell sooner: the web app asks
    before it starts a background run (``screening.web.retrain``). Labels as there: the
    decisions of live records, then the seed PMIDs, then weak negatives up to their cap."""
    decided = latest_decisions(session, screeners=screeners)
    dead = {int(p) for p in session.exec(select(Record.pmid).where(
        col(Record.deleted).is_(True))).all()}
    labels = {p: d != "exclude" for p, d in decided.items() if p not in dead}
    seeds = {int(p) for p in session.exec(select(TrialReport.pmid).where(
        col(TrialReport.pmid).is_not(None))).all() if p is not None} - set(labels) - dead
    if seeds:  # a seed PMID counts once its record is stored
        labels.update({int(p): True for p in session.exec(select(Record.pmid).where(
            col(Record.pmid).in_(sorted(seeds)))).all()})
    positives = sum(labels.values())
    need = 2 - (len(labels) - positives)  # weak negatives still needed
    if positives < 2 or need <= 0:
        return positives >= 2
    if int(max(1, positives) * config.weak_negative_ratio) < need:
        return False
    weak_types = {t.lower() for t in config.weak_negative_types}
    stmt = select(Record).where(col(Record.deleted).is_(False)).execution_options(
        yield_per=SCORE_BATCH)
    for r in session.exec(stmt):
        if r.pmid not in labels and _weak_negative(r, weak_types):
            need -= 1
            if need == 0:
                return True
    return False


def build_training_set(session: Session, records: Sequence[Record],
                       config: ScreeningConfig, *, screeners: int = 1) -> TrainingSet:
    snapshot_at = utcnow()
    decided = latest_decisions(session, screeners=screeners)
    seeds = {int(p) for p in session.exec(select(TrialReport.pmid)
                                          .where(col(TrialReport.pmid).is_not(None))).all()
             if p is not None}
    live = {r.pmid for r in records}
    labels: dict[int, int] = {}
    for pmid, decision in decided.items():
        if pmid in live:  # a deleted record keeps its decision but leaves the training set
            labels[pmid] = 0 if decision == "exclude" else 1  # "maybe" = include: recall first
    n_seed = 0
    for pmid in sorted(seeds & live):
        if pmid not in labels:
            labels[pmid] = 1
            n_seed += 1
    weak_types = {t.lower() for t in config.weak_negative_types}
    weak = [r.pmid for r in records if r.pmid not in labels and _weak_negative(r, weak_types)]
    n_pos = sum(labels.values())
    cap = int(max(1, n_pos) * config.weak_negative_ratio)
    weak.sort(key=lambda p: audit_draw(p, salt="mmlr-weak"))  # deterministic, content-blind
    for pmid in weak[:cap]:
        labels[pmid] = 0
    pmids = sorted(labels)
    return TrainingSet(pmids=pmids, labels=np.asarray([labels[p] for p in pmids], dtype=int),
                       n_decisions=len(set(decided) & live), n_seed=n_seed,
                       n_weak=min(len(weak), cap), snapshot_at=snapshot_at)


# ----------------------------------------------------------------------------- models
def active_model(session: Session) -> ModelVersion | None:
    return session.exec(select(ModelVersion).where(col(ModelVersion.active).is_(True))
                        .order_by(col(ModelVersion.id).desc())).first()


#: The key of ``ModelVersion.cv_metrics`` that marks a version abandoned (``_abandon_leftovers``).
ABANDONED = "abandoned_at"


def _abandon_leftovers(ctx: AppContext) -> None:
    """A run killed before ``_activate`` leaves its version inactive with part of its Score
    rows. Runs hold the "screen" lock and a version becomes active only in the run that built
    it, so at the start of a run every inactive version newer than the active one (every
    version, when none is active) is such a leftover: its Score rows go (no other version
    reads them) and the row is marked abandoned (``ABANDONED`` in its ``cv_metrics``) and kept,
    so its id, which the audit trail's ``model.train`` names, is never given to another
    version. Older inactive versions (active once, or left before mmlr marked them) keep
    everything."""
    with ctx.sessions() as session:
        mv = active_model(session)
        query = select(ModelVersion).where(col(ModelVersion.active).is_(False))
        if mv is not None:
            query = query.where(col(ModelVersion.id) > mv.id)
        for left in session.exec(query.order_by(col(ModelVersion.id))).all():
            if ABANDONED in (left.cv_metrics or {}):
                continue
            scores = int(session.exec(select(func.count()).select_from(Score).where(
                Score.model_version_id == left.id)).one())
            session.execute(delete(Score).where(col(Score.model_version_id) == left.id))
            left.cv_metrics = {**(left.cv_metrics or {}), ABANDONED: utcnow().isoformat()}
            session.add(left)
            audit(session, "model.abandon", object_type="model_version", object_id=left.id,
                  name=left.name, scores_removed=scores)
            log.warning("screen: model version %s was left by a run stopped before it scored "
                        "every record: its %s scores removed, the version marked abandoned",
                        left.id, scores)
        session.commit()


def check_prior_query(ctx: AppContext) -> None:
    """Start-up check of commands that screen (``run``, ``serve``/``worker``): while no trained
    classifier is active the keyword prior scores, and it must be able to read MMLR_QUERY
    (ValidationError naming it otherwise). With a trained classifier the query only goes to
    PubMed, which may understand more than the prior does, so nothing is checked."""
    with ctx.sessions() as session:
        mv = active_model(session)
    if mv is None or mv.name == PRIOR_NAME:
        prior_gates(ctx.settings.query)


def load_model(mv: ModelVersion) -> ScreeningModel | None:
    """The fitted model of a version (None for the keyword prior)."""
    if mv.name == PRIOR_NAME:
        return None
    config = ScreeningConfig.from_dict(mv.config)
    return ScreeningModel.from_bytes(mv.artifact, config=config, threshold=mv.threshold,
                                     label=f"model version {mv.id}")


def _needs_training(session: Session, ctx: AppContext, mv: ModelVersion | None,
                    force: bool, ts: TrainingSet, config: ScreeningConfig, *,
                    on_schedule: bool = False) -> bool:
    trainable = ts.trainable
    if mv is None or force:
        return True
    if mv.name == PRIOR_NAME:  # a changed MMLR_QUERY means new gates: a new prior version
        return trainable or (mv.config or {}).get("query") != ctx.settings.query
    # A changed MMLR_TARGET_RECALL means another flag threshold: the version's was calibrated
    # to the recall it stores, and the pages state that one.
    if (mv.config or {}).get("target_recall") != config.target_recall:
        return True
    newer = int(session.exec(select(func.count()).select_from(Decision)
                             .where(Decision.created_at > mv.created_at)).one())
    if on_schedule:
        # The scheduled run learns whatever changed since the model: a few decisions, seed
        # trials' records that arrived, new weak negatives. With the threshold alone, nine
        # includes and eight seed reports waited for a tenth decision however many days
        # passed.
        return newer > 0 or (mv.n_train, mv.n_positive, mv.n_decisions) != (
            len(ts.pmids), ts.n_positive, ts.n_decisions)
    return newer >= ctx.settings.retrain_min_decisions


def would_change_model(session: Session, ctx: AppContext) -> bool:
    """Whether ``screen`` would now train a new version (enough new decisions assumed): false
    while the keyword prior stands in for a classifier that the labels cannot train yet and
    for the query it was built from — a run then scores nothing and trains nothing."""
    mv = active_model(session)
    if mv is None or mv.name != PRIOR_NAME or (mv.config or {}).get("query") != ctx.settings.query:
        return True
    return could_train(session, ScreeningConfig(target_recall=ctx.settings.target_recall),
                       screeners=ctx.settings.screeners_per_record)


def _train(ctx: AppContext, records: Sequence[Record], ts: TrainingSet,
           config: ScreeningConfig) -> ModelVersion:
    """Train and store a new version, not yet active: ``_activate`` makes it so once it has
    scored every record (the queue and the digest never mix two versions' scores)."""
    if not ts.trainable:
        mv = ModelVersion(name=PRIOR_NAME, config=prior_config(prior_gates(ctx.settings.query)),
                          n_train=len(ts.pmids),
                          n_positive=ts.n_positive, n_decisions=ts.n_decisions,
                          cv_metrics={"note": "keyword prior: fewer than 2 includes or 2 "
                                              "excludes to train on"},
                          threshold=PRIOR_THRESHOLD, code_version=code_version(),
                          created_at=ts.snapshot_at, active=False)
    else:
        by_pmid = {r.pmid: r for r in records}
        docs = [record_document(by_pmid[p]) for p in ts.pmids]
        corpus = [record_document(r) for r in records]
        model, cv = train_model(docs, ts.labels, config, corpus=corpus)
        metrics = dict(cv.metrics) if cv else {}
        metrics.update({"n_seed": ts.n_seed, "n_weak_negative": ts.n_weak})
        mv = ModelVersion(name=config.name, config=config.to_dict(), n_train=len(ts.pmids),
                          n_positive=ts.n_positive, n_decisions=ts.n_decisions,
                          cv_metrics=metrics, threshold=model.threshold,
                          artifact=model.to_bytes(), code_version=code_version(),
                          created_at=ts.snapshot_at, active=False)
    with ctx.sessions() as session:
        session.add(mv)
        session.flush()
        audit(session, "model.train", object_type="model_version", object_id=mv.id,
              name=mv.name, n_train=mv.n_train, n_positive=mv.n_positive,
              threshold=mv.threshold)
        session.commit()
    log.info("trained model version %s (%s): %s records, %s includes", mv.id, mv.name,
             mv.n_train, mv.n_positive)
    return mv


def _activate(ctx: AppContext, mv: ModelVersion) -> None:
    """In one transaction: make ``mv`` the active version and copy its scores and flags onto
    every live record it scored (its Score row for the record's current content). A record
    whose content changed meanwhile keeps the old score and is stale for the next run."""
    match = ((col(Score.pmid) == col(Record.pmid)) & (col(Score.model_version_id) == mv.id)
             & (col(Score.content_hash) == col(Record.content_hash)))
    with ctx.sessions() as session:
        for old in session.exec(select(ModelVersion).where(col(ModelVersion.active).is_(True))):
            old.active = False
            session.add(old)
        row = session.get(ModelVersion, mv.id)
        assert row is not None
        row.active = True
        session.add(row)
        session.flush()
        session.execute(update(Record).where(col(Record.deleted).is_(False), exists().where(match))
                        .values(score=select(Score.score).where(match).limit(1)
                                .scalar_subquery(),
                                flagged=select(Score.flagged).where(match).limit(1)
                                .scalar_subquery(),
                                score_model_version_id=mv.id))
        session.commit()
    mv.active = True


# ----------------------------------------------------------------------------- scoring
def _stale(session: Session, records: Sequence[Record], mv: ModelVersion) -> list[Record]:
    have = {(int(p), h) for p, h in session.exec(
        select(Score.pmid, Score.content_hash).where(Score.model_version_id == mv.id)).all()}
    return [r for r in records if r.score is None or r.score_model_version_id != mv.id
            or (r.pmid, r.content_hash) not in have]


def _score_records(ctx: AppContext, mv: ModelVersion, model: ScreeningModel | None,
                   stale: Sequence[Record], progress: Any) -> int:
    """Score ``stale`` in batches, writing the Score rows. The active version's scores also go
    onto the records batch by batch; a new version's stay off them until ``_activate`` copies
    them all at once (it is inactive until then, so it can never reach a record here)."""
    apply = mv.active
    threshold = mv.threshold if mv.threshold is not None else 1.0
    new_rows = 0
    for start in range(0, len(stale), SCORE_BATCH):
        chunk = stale[start:start + SCORE_BATCH]
        docs = [record_document(r) for r in chunk]
        scores = (model.score(docs) if model is not None  # gates: cached per query
                  else np.asarray([prior_score(d, gates_from_config(mv.config)) for d in docs]))
        with ctx.sessions() as session:
            existing = {int(s.pmid): s for s in session.exec(select(Score).where(
                Score.model_version_id == mv.id,
                col(Score.pmid).in_([r.pmid for r in chunk]))).all()}
            current = {rec.pmid: rec for rec in session.exec(select(Record).where(
                col(Record.pmid).in_([r.pmid for r in chunk]))).all()}
            for r, value in zip(chunk, scores, strict=True):
                rec = current.get(r.pmid)
                if rec is None or rec.deleted or rec.content_hash != r.content_hash:
                    # changed or deleted while we scored: the next run scores the new content
                    continue
                row = existing.get(rec.pmid)
                if row is None or row.content_hash != rec.content_hash:
                    row = session.exec(select(Score).where(
                        Score.pmid == rec.pmid, Score.model_version_id == mv.id,
                        Score.content_hash == rec.content_hash)).first()
                if row is None:
                    row = Score(pmid=rec.pmid, model_version_id=int(mv.id or 0),
                                content_hash=rec.content_hash, score=float(value),
                                flagged=bool(value >= threshold))
                    session.add(row)
                    new_rows += 1
                if not apply:
                    continue
                rec.score, rec.flagged = row.score, row.flagged
                rec.score_model_version_id = mv.id
                session.add(rec)
            session.commit()
        done = min(start + SCORE_BATCH, len(stale))
        write_progress(ctx, "scoring", done, len(stale))
        if progress is not None:
            progress.update(progress.task_ids[0], completed=done)
    return new_rows


def _choose_audit(ctx: AppContext, fraction: float) -> int:
    """Mark undecided low-score records of the screening pool whose fixed draw falls under
    the audit fraction. A previous version's report is never in the sample: it is not
    screened, so the audit would estimate nothing from it; one drawn before (by an older
    mmlr, or before its trial was seeded) loses the mark, decided or not."""
    with ctx.sessions() as session:
        previous = previous_report_pmids(session)
        rows = session.exec(select(Record).where(col(Record.deleted).is_(False)).where(
            col(Record.decision).is_(None) | (col(Record.audit_sample).is_(True)
                                              & ~in_screening_pool()))).all()
        for r in rows:
            want = (r.decision is None and r.pmid not in previous and not r.flagged
                    and r.score is not None and audit_draw(r.pmid) < fraction)
            if r.audit_sample != want:
                r.audit_sample = want
                session.add(r)
        session.commit()
        n = session.exec(select(func.count()).select_from(Record).where(
            col(Record.deleted).is_(False), in_screening_pool(),
            col(Record.audit_sample).is_(True))).one()
    return int(n)


def _progress_bar(enabled: bool, total: int) -> Any:
    if not enabled or total == 0:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn

    from store.progress import progress_bar

    bar = progress_bar(TextColumn("scoring records"), BarColumn(), MofNCompleteColumn())
    bar.add_task("score", total=total)
    return bar


# ----------------------------------------------------------------------------- entry point
def screen(ctx: AppContext, *, force_retrain: bool = False, progress: bool = False,
           config: ScreeningConfig | None = None, on_schedule: bool = False) -> ScreenSummary:
    """Train when needed, score stale records, pick the audit sample (module docstring).
    ``on_schedule`` (the daily cycle) retrains on any change of the training set, not only
    after ``retrain_min_decisions`` new decisions."""
    config = config or ScreeningConfig(target_recall=ctx.settings.target_recall)
    config.validate()
    with job_lock(ctx.engine, "screen"):
        _abandon_leftovers(ctx)  # a killed run's version, before this one builds its own
        with ctx.sessions() as session:
            records = list(session.exec(select(Record).where(col(Record.deleted).is_(False))
                                        .order_by(col(Record.pmid))).all())
            mv = active_model(session)
            ts = build_training_set(session, records, config,
                                    screeners=ctx.settings.screeners_per_record)
            train = _needs_training(session, ctx, mv, force_retrain, ts, config,
                                    on_schedule=on_schedule)
        if train:
            if not ts.trainable:  # the keyword prior stands in: it must read MMLR_QUERY
                prior_gates(ctx.settings.query)
            write_progress(ctx, "training", 0, len(ts.pmids))
            mv = _train(ctx, records, ts, config)
        assert mv is not None
        with ctx.sessions() as session:
            stale = _stale(session, records, mv)
        # The artifact is read only when something needs scoring: a run with nothing to score
        # never depends on it.
        model = None
        if stale:
            try:
                model = load_model(mv)
            except ScreeningError as exc:
                if train:  # the version just trained: retraining would fail the same way
                    raise
                # Unpickling after a library upgrade can fail: the labels are all here, so a
                # new version takes its place rather than every run failing until someone
                # runs `mmlr screen --retrain`.
                log.warning("screen: %s: training a new version from the current labels",
                            exc.message)
                if not ts.trainable:
                    prior_gates(ctx.settings.query)
                write_progress(ctx, "training", 0, len(ts.pmids))
                mv = _train(ctx, records, ts, config)
                train = True
                model = load_model(mv)
                with ctx.sessions() as session:
                    stale = _stale(session, records, mv)
        write_progress(ctx, "scoring", 0, len(stale))
        bar = _progress_bar(progress, len(stale))
        with bar if bar is not None else nullcontext():
            scored = _score_records(ctx, mv, model, stale, bar)
        if not mv.active:  # a new version: its scores replace the old one's all at once
            _activate(ctx, mv)
        n_audit = _choose_audit(ctx, ctx.settings.audit_fraction)
        with ctx.sessions() as session:
            flagged = session.exec(select(func.count()).select_from(Record).where(
                col(Record.deleted).is_(False), col(Record.flagged).is_(True))).one()
        write_progress(ctx, "done", len(stale), len(stale))
    summary = ScreenSummary(model_version_id=int(mv.id or 0), model_name=mv.name,
                            trained=train, n_train=mv.n_train, n_positive=mv.n_positive,
                            scored=scored, flagged=int(flagged), audit_sample=n_audit,
                            threshold=mv.threshold)
    log.info("screen: %s", summary.describe())
    return summary


__all__ = ["ScreenSummary", "ScreeningError", "screen"]
