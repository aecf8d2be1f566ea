"""What the pool would choose, without pooling: the candidate estimates read from the store,
the analyses they form, where each estimate stands in them, what the next ``pool_all`` will
change, and the newest snapshot of each analysis.

Kept apart from :mod:`reports.pool` so that a command that only *shows* the choice (``mmlr
status``, also the worker container's health check) need not load the statistics
(``reports.meta``, ``reports.sequential``, ``reports.small_study``: ``scipy.stats``, about half
a second at every start); the pages and exports that show it read it from here too. Its code
is part of the pooling code's version (``reports.pool.code_version``): the candidates it loads
are the pooled inputs.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func
from sqlmodel import Session, select

from reports.analyses import (
    Analysis,
    Candidate,
    analysis_order,
    default_analyses,
    load_analyses,
    load_arm_overrides,
    select_inputs,
)
from reports.arms import ArmReading
from store.bias import assessor_agreement, current_assessments, history_by_endpoint
from store.models import Estimate, PooledResult, Trial, TrialReport


# ----------------------------------------------------------------------------- loading
def load_candidates(session: Session) -> list[Candidate]:
    """Every stored estimate joined with its trial, its report and the current RoB 2 judgment
    of the trial's result for the estimate's endpoint."""
    rows = session.exec(
        select(Estimate, Trial, TrialReport)
        .join(Trial, Trial.id == Estimate.trial_id)  # type: ignore[arg-type]
        .outerjoin(TrialReport, TrialReport.id == Estimate.report_id)  # type: ignore[arg-type]
        .order_by(Estimate.id)  # type: ignore[arg-type]
    ).all()
    # Each correction's chain back to the estimate first extracted (rule 4 ranks by it).
    supersedes = {est.id: est.supersedes_id for est, _, _ in rows}
    bias = current_assessments(session)
    disputed = {key for key, rows in history_by_endpoint(session).items()
                if assessor_agreement(rows).agree is False}
    # A correction is the same estimate as the one it corrects (one chain, entered when its
    # origin was), not an earlier one that a judgment was made on: keyed by the origin.
    first_entered = {est.id: est.created_at for est, _, _ in rows}
    entered: dict[tuple[int, str], list[tuple[int, datetime]]] = {}
    for est, _, _ in rows:
        assert est.id is not None
        if _origin(est.id, supersedes) == est.id:
            entered.setdefault((est.trial_id, est.endpoint), []).append((est.id, est.created_at))
    out = []
    for est, trial, report in rows:
        assert est.id is not None and trial.id is not None
        assessed = bias.get((trial.id, est.endpoint))
        origin = _origin(est.id, supersedes)
        carried = assessed is not None and _carried_over(
            origin, first_entered[origin], assessed.created_at,
            entered.get((trial.id, est.endpoint), []))
        out.append(Candidate(
            estimate_id=est.id, trial_id=trial.id, trial_name=trial.name, drug=trial.drug,
            is_strategy=trial.is_strategy, endpoint=est.endpoint, setting=est.setting,
            comparison=est.comparison, log_hr=est.log_hr, se=est.se, verified=est.verified,
            data_cut=est.data_cut, data_cut_label=est.data_cut_label,
            report_year=report.year if report else None,
            pmid=report.pmid if report else None,
            hr=est.hr, ci_low=est.ci_low, ci_high=est.ci_high, method=est.method,
            approximate=est.approximate, withdrawn=est.withdrawn_at is not None,
            risk_of_bias=assessed.overall if assessed else None,
            risk_of_bias_disputed=(trial.id, est.endpoint) in disputed,
            risk_of_bias_carried_over=carried,
            regimen=trial.regimen, comparator=trial.comparator,
            n_maintenance=est.n_maintenance, n_control=est.n_control,
            printed=_printed_maint_vs_control(est),
            origin_id=_origin(est.id, supersedes),
        ))
    return out


def _carried_over(estimate_id: int, entered_at: datetime, assessed_at: datetime,
                  siblings: list[tuple[int, datetime]]) -> bool:
    """Whether the current RoB 2 judgment of a trial's endpoint was made on an earlier
    estimate than this one: saved before this estimate was entered, while another estimate
    of the same trial and endpoint (an earlier data cut or report) already existed. An
    assessment saved before any estimate of the endpoint (a curator who judged the paper
    first) is not carried over: nothing else was there to judge."""
    if assessed_at >= entered_at:
        return False
    return any(other != estimate_id and at <= assessed_at for other, at in siblings)


def _origin(estimate_id: int, supersedes: dict[int | None, int | None]) -> int:
    """The root of ``estimate_id``'s supersedes chain: the estimate first extracted."""
    seen = {estimate_id}
    while (parent := supersedes.get(estimate_id)) is not None and parent not in seen:
        seen.add(parent)
        estimate_id = parent
    return estimate_id


def _printed_maint_vs_control(est: Estimate) -> dict[str, str] | None:
    """The estimate's HR and CI as printed, when printed maintenance vs control: printed
    the other way round, the digits are those of the inverse, which nobody printed."""
    if est.method != "reported_ci" or est.orientation_entered != "maint_vs_control" \
            or not isinstance(est.printed, dict):
        return None
    return {name: str(est.printed[name]) for name in ("hr", "ci_low", "ci_high")
            if isinstance(est.printed.get(name), str)} or None


def all_analyses(candidates: list[Candidate], analyses_file: Path | None) -> list[Analysis]:
    """Every analysis to compute: the default ones and those of ``MMLR_ANALYSES_FILE``."""
    return default_analyses(candidates, load_analyses(analyses_file))


def analyses_naming_no_drug(session: Session, analyses_file: Path | None) -> list[str]:
    """One sentence per drug that an ``[[analysis]]`` entry of ``MMLR_ANALYSES_FILE`` names
    and no stored trial has (compared as the analyses compare them: without case or
    surrounding spaces), with the nearest trial drug or, without one, every trial drug. A
    misspelt drug ("lenalidomde") selects no trial, and its analysis is pooled without that
    drug's trials and without a word; said by ``mmlr pool``, the pool run's log and
    /estimates, as ``reports.network_inputs.arms_naming_no_trial`` says it of ``[[arms]]``.
    Nothing while no trial is stored (every name would be listed). A drug whose trials are
    still to come is listed too: the sentence says the entry selects nothing yet."""
    defined = load_analyses(analyses_file)
    if not defined:
        return []
    known = sorted({drug.strip().lower() for drug in session.exec(select(Trial.drug))})
    if not known:
        return []
    out: list[str] = []
    seen: set[tuple[str, str]] = set()
    for analysis in defined:
        for drug in analysis.members:
            if drug in known or (analysis.drug, drug) in seen:
                continue
            seen.add((analysis.drug, drug))
            # A typo, not another drug of the class ("pomalidomide" is not "lenalidomide").
            near = difflib.get_close_matches(drug, known, n=1, cutoff=0.8)
            hint = (f"did you mean {near[0]!r}?" if near
                    else f"the trials' drugs are {', '.join(map(repr, known))}")
            out.append(f"[[analysis]] {analysis.drug!r} names drug {drug!r}, which no stored "
                       f"trial has, so it selects none of its trials ({hint})")
    return out


# ----------------------------------------------------------------------------- per estimate
@dataclass(frozen=True)
class Use:
    """Where one estimate stands in one analysis: pooled (``reason`` None) or left out."""

    analysis_key: str
    label: str
    reason: str | None


def uses_of_estimates(session: Session, estimate_ids: set[int],
                      analyses_file: Path | None = None) -> dict[int, list[Use]]:
    """For each estimate of ``estimate_ids``, every analysis that accepts it and whether the
    selection rules pool it there or why not, computed from the database *now* (what the next
    ``pool_all`` will use; snapshots may be older). A curator sees at the estimate that a new
    data cut replaced it, or that it is left out (not verified, another comparison…), instead
    of finding a number missing from an analysis. Estimates no analysis accepts (an endpoint
    no analysis pools) get an empty list."""
    candidates = load_candidates(session)
    out: dict[int, list[Use]] = {i: [] for i in estimate_ids}
    if not estimate_ids:
        return out
    arms = ArmReading.of(candidates, load_arm_overrides(analyses_file))
    for analysis in all_analyses(candidates, analyses_file):
        if not any(c.estimate_id in estimate_ids and analysis.accepts(c) for c in candidates):
            continue
        selection = select_inputs(analysis, candidates, arms=arms)
        for c in selection.chosen:
            if c.estimate_id in estimate_ids:
                out[c.estimate_id].append(Use(analysis.key, analysis.short_label, None))
        for c, reason in selection.dropped:
            if c.estimate_id in estimate_ids:
                out[c.estimate_id].append(Use(analysis.key, analysis.short_label, reason))
    return out


@dataclass(frozen=True)
class PendingChange:
    """One analysis whose next pool run will pool other estimates than its newest snapshot
    holds: trial names that enter it, that enter with another estimate (a new data cut, a
    correction) and that leave it; ``new``: the analysis has no snapshot with data yet."""

    analysis_key: str
    label: str
    new: bool
    joins: list[str]
    replaced: list[str]
    leaves: list[str]

    def describe(self) -> str:
        """In words: "new analysis; SYN-MM31 joins", "CALGB 100104 with another estimate"."""
        def verb(names: list[str], one: str, many: str) -> str:
            return f"{', '.join(names)} {one if len(names) == 1 else many}"
        parts = ["new analysis"] if self.new else []
        if self.joins:
            parts.append(verb(self.joins, "joins", "join"))
        if self.replaced:
            parts.append(f"{', '.join(self.replaced)} with another estimate")
        if self.leaves:
            parts.append(verb(self.leaves, "leaves", "leave"))
        return "; ".join(parts)


def pending_changes(session: Session, analyses_file: Path | None = None) -> list[PendingChange]:
    """The analyses the next ``pool_all`` will change because their evidence changed: the
    estimates the selection rules choose *now* against those of the newest snapshot (by
    estimate id; numbers are never edited in place, a correction is a new estimate). A curator
    who has just verified an estimate sees on /estimates that it is not in the numbers yet,
    rather than wondering where it went. Only the choice of estimates is compared: a renamed
    trial or a new risk-of-bias judgment also makes a new snapshot, and is not listed here."""
    candidates = load_candidates(session)
    latest = {r.analysis_key: r for r in latest_results(session)}
    out: list[PendingChange] = []

    def then_of(key: str) -> dict[int, tuple[object, str]]:
        snap = latest.get(key)
        rows = (snap.inputs or []) if snap is not None and snap.k else []
        return {int(r["estimate_id"]): (r.get("trial_id") or r.get("trial_name") or r["trial"],
                                         str(r.get("trial_name") or r["trial"]))
                for r in rows if r.get("estimate_id") is not None}

    def change(key: str, label: str, now: dict[int, tuple[object, str]]) -> None:
        then = then_of(key)
        if set(now) == set(then):
            return
        trials_then = {t for t, _ in then.values()}
        trials_now = {t for t, _ in now.values()}
        new_ids = [i for i in now if i not in then]
        joins = [now[i][1] for i in new_ids if now[i][0] not in trials_then]
        replaced = [now[i][1] for i in new_ids if now[i][0] in trials_then]
        leaves = [name for t, name in then.values() if t not in trials_now]
        out.append(PendingChange(key, label, not then, joins, replaced, leaves))

    seen = set()
    arms = ArmReading.of(candidates, load_arm_overrides(analyses_file))
    for analysis in all_analyses(candidates, analyses_file):
        seen.add(analysis.key)
        chosen = select_inputs(analysis, candidates, arms=arms).chosen
        change(analysis.key, analysis.label,
               {c.estimate_id: (c.trial_id, c.trial_name) for c in chosen})
    # An analysis whose last estimate left is no longer among the analyses to compute: the
    # next run still stores it empty (pool_all keeps every analysis that had data).
    for key, snap in latest.items():
        if key not in seen:
            change(key, snap.analysis_label or key, {})
    return out


# ----------------------------------------------------------------------------- snapshots
def latest_results(session: Session) -> list[PooledResult]:
    """The newest snapshot of every analysis key (ids grow with time), in reading order
    (IMWG 2012 analyses first, sensitivity analyses last: ``analysis_order``)."""
    newest = (select(func.max(PooledResult.id)).group_by(PooledResult.analysis_key)
              .scalar_subquery())
    rows = session.exec(
        select(PooledResult).where(PooledResult.id.in_(newest))  # type: ignore[union-attr]
    ).all()
    return sorted(rows, key=lambda r: analysis_order(r.analysis_key))


__all__ = ["PendingChange", "Use", "all_analyses", "analyses_naming_no_drug", "latest_results",
           "load_candidates", "pending_changes", "uses_of_estimates"]
