"""Read-side helpers for pooled results and digests (shared by pages and the API)."""

from __future__ import annotations

import importlib
from typing import Any

from sqlmodel import Session, col, select

from reports.meta import hr_of
from reports.presentation import fit_notes, has_heterogeneity, shown_hr_of
from screening.web.absolute_effects import Baselines, absolute_json
from screening.web.risk_of_bias import risk_of_bias_json
from screening.web.trials import trial_fingerprint
from store.models import Estimate, PooledResult, Record, Trial, TrialReport


def latest_pooled(session: Session) -> list[PooledResult]:
    """Newest snapshot per analysis: ``reports.selection.latest_results`` when it exists."""
    try:
        module = importlib.import_module("reports.pool")
        latest = module.latest_results
    except (ImportError, AttributeError):
        latest = None
    if latest is not None:
        return list(latest(session))
    rows = session.exec(select(PooledResult).order_by(col(PooledResult.analysis_key),
                                                      col(PooledResult.id).desc())).all()
    seen: dict[str, PooledResult] = {}
    for row in rows:
        seen.setdefault(row.analysis_key, row)
    return list(seen.values())


def pooled_json(row: PooledResult, *, baselines: Baselines) -> dict[str, Any]:
    """One analysis' newest snapshot as the page and ``GET /api/estimates`` read it.

    ``baselines`` (``absolute_effects.load_baselines``, read once for all analyses) gives the
    assumed control risk the analysis uses: it is not part of the snapshot, so the absolute
    effect is computed here, from the snapshot's HR and the current entry."""
    monitoring = sequential_monitoring(row)
    small_study = small_study_view(row)
    several = has_heterogeneity(row.k)
    return {
        "id": row.id, "analysis": row.analysis_key, "label": row.analysis_label,
        "method": row.method, "ci_method": row.ci_method, "k": row.k,
        "estimate": row.estimate, "se": row.se, "ci_low": row.ci_low, "ci_high": row.ci_high,
        # One trial: its "prediction interval" is its CI, no statement about a new trial
        # (the summary of findings and the digest show "—" as well).
        "pi_low": row.pi_low if several else None, "pi_high": row.pi_high if several else None,
        "hr": hr_of(row.estimate), "hr_ci_low": hr_of(row.ci_low), "hr_ci_high": hr_of(row.ci_high),
        # What a reader is shown: the pooled HR, or with one trial the trial's as printed
        # (reports.presentation); the numbers above stay the computed ones.
        "shown": shown_hr_of(row).to_json(),
        "heterogeneity": several,
        "notes": fit_notes(row),
        "hr_pi_low": hr_of(row.pi_low) if several else None,
        "hr_pi_high": hr_of(row.pi_high) if several else None,
        "tau2": row.tau2, "i2": row.i2, "q": row.q, "q_p": row.q_p,
        "computed_at": row.computed_at.isoformat() if row.computed_at else None,
        "forest_svg": f"/estimates/{row.id}/forest.svg",
        "leave_one_out": leave_one_out(row),
        "cumulative": evidence_over_time(row),
        "monitoring": monitoring,
        "monitoring_svg": f"/estimates/{row.id}/monitoring.svg" if monitoring else None,
        "risk_of_bias": _result_dict(row, "risk_of_bias"),
        "certainty": _result_dict(row, "certainty"),
        "small_study": small_study,
        "funnel_svg": f"/estimates/{row.id}/funnel.svg" if funnel_available(small_study)
        else None,
        **absolute_json(row, baselines),
    }


def _result_dict(row: PooledResult, key: str) -> dict[str, Any] | None:
    """A view the snapshot stores as a dict (``reports.pool``: ``risk_of_bias`` — the weight
    at each RoB 2 judgment and the sensitivity analyses —, ``certainty`` — the suggested GRADE
    certainty); None for snapshots stored before it existed."""
    result = row.result if isinstance(row.result, dict) else {}
    view = result.get(key)
    return dict(view) if isinstance(view, dict) else None


def small_study_view(row: PooledResult) -> dict[str, Any] | None:
    """The snapshot's small-study view (``reports.small_study.small_study_effects``: Egger's
    test and trim-and-fill); None for snapshots stored before it existed."""
    return _result_dict(row, "small_study")


def funnel_available(view: dict[str, Any] | None) -> bool:
    """Whether the view has a funnel plot to draw: it exists and has enough trials (k ≥ 3)."""
    return view is not None and view.get("available") is True


def _result_list(row: PooledResult, key: str) -> list[dict[str, Any]]:
    result = row.result if isinstance(row.result, dict) else {}
    entries = result.get(key)
    return [dict(e) for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def leave_one_out(row: PooledResult) -> list[dict[str, Any]]:
    """The snapshot's leave-one-out fits, one per omitted study (none for one trial)."""
    return _result_list(row, "leave_one_out")


def evidence_over_time(row: PooledResult) -> list[dict[str, Any]]:
    """The snapshot's cumulative analysis by publication date (``reports.pool``), one entry
    per date on which the pooled estimate changed.

    Snapshots stored before that view existed ordered trials by their latest data cut and
    never used earlier cuts, which is not what the page and the API call evidence over
    time: their steps (without ``change``) are left out until ``mmlr pool`` replaces them.
    """
    steps = _result_list(row, "cumulative")
    return steps if all("change" in step for step in steps) else []


def sequential_monitoring(row: PooledResult) -> dict[str, Any] | None:
    """The snapshot's sequential-monitoring view (``reports.sequential.monitor``), as stored.

    None when the snapshot has none: computed before monitoring existed, or without a plan,
    or with nothing pooled. A view without looks is treated the same (nothing to show).
    """
    result = row.result if isinstance(row.result, dict) else {}
    view = result.get("monitoring")
    if not isinstance(view, dict) or not isinstance(view.get("looks"), list) \
            or not view["looks"]:
        return None
    return dict(view)


def estimate_json(e: Estimate) -> dict[str, Any]:
    return {
        "id": e.id, "trial_id": e.trial_id, "report_id": e.report_id, "endpoint": e.endpoint,
        "setting": e.setting, "comparison": e.comparison, "hr": e.hr, "ci_low": e.ci_low,
        "ci_high": e.ci_high, "log_hr": e.log_hr, "se": e.se, "method": e.method,
        "approximate": e.approximate, "orientation_entered": e.orientation_entered,
        "data_cut": e.data_cut.isoformat() if e.data_cut else None,
        "data_cut_label": e.data_cut_label, "n_maintenance": e.n_maintenance,
        "n_control": e.n_control, "events": e.events, "verified": e.verified,
        "withdrawn_at": e.withdrawn_at.isoformat() if e.withdrawn_at else None,
        "withdrawn_by": e.withdrawn_by, "withdrawn_reason": e.withdrawn_reason,
        "supersedes_id": e.supersedes_id, "derivation_inputs": e.derivation_inputs,
        # The stored notes, its "Check at entry" warnings and derivation lines among them,
        # for whoever verifies it (they were on the Correct form only). Read only, under a
        # name of its own: sent back as "notes" they would add the generated lines again.
        "entry_notes": e.notes,
        # user ids (not e-mail addresses): who entered and who verified, for double extraction
        "created_by": e.created_by, "verified_by": e.verified_by,
    }


def trials_json(session: Session, trial_id: int | None = None) -> list[dict[str, Any]]:
    """Every trial (or the one of ``trial_id``) with its reports, estimates, current risk
    of bias and ``version`` (the ETag an edit may send back: ``screening.web.preconditions``).
    """
    query = select(Trial).order_by(col(Trial.name))
    if trial_id is not None:
        query = query.where(Trial.id == trial_id)
    trials = session.exec(query).all()
    reports: dict[int, list[dict[str, Any]]] = {}
    # PubMed's retraction flag of the stored records among the reports (a report whose PMID
    # is not stored, or that has none, is not known to be retracted: false).
    retracted = set(session.exec(select(Record.pmid).join(
        TrialReport, col(TrialReport.pmid) == col(Record.pmid)).where(
        col(Record.retracted).is_(True))).all())
    for rep in session.exec(select(TrialReport).order_by(col(TrialReport.id))).all():
        reports.setdefault(rep.trial_id, []).append(
            {"id": rep.id, "pmid": rep.pmid, "citation": rep.citation, "year": rep.year,
             "kind": rep.kind, "retracted": rep.pmid in retracted})
    estimates: dict[int, list[dict[str, Any]]] = {}
    for est in session.exec(select(Estimate).order_by(col(Estimate.id))).all():
        estimates.setdefault(est.trial_id, []).append(estimate_json(est))
    bias = risk_of_bias_json(session)  # current RoB 2 assessments per trial
    return [
        {"id": t.id, "name": t.name, "drug": t.drug, "regimen": t.regimen,
         "comparator": t.comparator, "setting": t.setting, "is_strategy": t.is_strategy,
         "registry_ids": list(t.registry_ids or []),
         # notes too: the version covers every editable field, so an editor must see them all
         "notes": t.notes,
         "reports": reports.get(t.id or 0, []), "estimates": estimates.get(t.id or 0, []),
         "risk_of_bias": bias.get(t.id or 0, {}), "version": trial_fingerprint(t)}
        for t in trials
    ]
