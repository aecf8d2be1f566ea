"""``mmlr pool``: recompute every analysis and keep a snapshot of each changed result.

A :class:`store.models.PooledResult` row is written for an analysis only when the hash of its
inputs, the pooling settings or the code version differ from its newest snapshot, so running
``pool_all`` twice changes nothing. A snapshot is self-contained: ``inputs`` holds one row per
study (trial, estimate id, yi, sei, HR and CI, weight, flags, date) and ``result`` the extras
(p value, τ² CI, HR scale, subgroups and their test, leave-one-out, cumulative, dropped
candidates), so a forest plot or a digest can be rebuilt from the stored row alone.

Two sensitivity views are stored with every snapshot, both pooled with the analysis' own τ²
estimator and CI (``meta_analysis``, the code path of the main estimate):

* ``leave_one_out``: the pooled estimate without each study in turn (``omitted``);
* ``cumulative``: the evidence over time (:func:`cumulative_by_publication`): the pooled
  estimate as it stood on each date new evidence was published, each trial contributing its
  latest verified estimate published by then — earlier data cuts included, replaced by later
  cuts as they appear. Its last step is the main estimate. A change to an earlier cut changes
  this view but not the pooled inputs, so the snapshot also keeps ``cumulative_inputs_hash``
  and a new one is written when either hash changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import Any

from reports.analyses import (
    SETTING_LABELS,
    Analysis,
    Candidate,
    load_arm_overrides,
    select_inputs,
)
from reports.arms import ArmReading
from reports.certainty import suggest_certainty
from reports.meta import (
    Z95,
    MetaResult,
    SubgroupTest,
    clean_json,
    meta_analysis,
    subgroup_test,
    subgroup_test_undefined,
)
from reports.monitoring_view import status_label
from reports.presentation import has_heterogeneity, i2_text, shown_fit_notes, shown_hr
from reports.selection import (
    all_analyses,
    analyses_naming_no_drug,
    latest_results,
    load_candidates,
)
from reports.sequential import MonitoringPlan, monitor
from reports.small_study import p_text, short_text, small_study_effects
from reports.words import hr_number, interval_text, plural, rounded
from store.audit import audit
from store.bias import JUDGMENTS
from store.context import AppContext
from store.locks import job_lock
from store.models import PooledResult
from store.settings import monitoring_hrs

log = logging.getLogger(__name__)

_CODE_FILES = ("meta.py", "analyses.py", "arms.py", "pool.py", "selection.py", "sequential.py",
               "certainty.py", "small_study.py")


def code_version() -> str:
    """Package version + a hash of the pooling code: a snapshot says which code made it."""
    try:
        version = metadata.version("mmlr")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        version = "0"
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for name in _CODE_FILES:
        digest.update((here / name).read_bytes())
    return f"{version}+{digest.hexdigest()[:12]}"


# ----------------------------------------------------------------------------- results
@dataclass
class AnalysisOutcome:
    analysis: Analysis
    result: MetaResult | None
    inputs: list[dict[str, Any]]
    extras: dict[str, Any]
    subgroup_test: SubgroupTest | None = None
    snapshot_id: int | None = None
    changed: bool = False

    @property
    def k(self) -> int:
        return self.result.k if self.result else 0

    def to_json(self) -> dict[str, Any]:
        assert self.result is not None
        entry = self.result.to_json(self.analysis.key)
        entry.update({
            "label": self.analysis.label, "drug": self.analysis.drug,
            "drugs": list(self.analysis.members),
            "setting": self.analysis.setting, "endpoint": self.analysis.endpoint,
            "sensitivity": self.analysis.include_strategy,
            "trials": [row["trial"] for row in self.inputs],
            "snapshot_id": self.snapshot_id, "changed": self.changed,
        })
        entry.pop("weights", None)  # per-study weights live in "studies"
        entry["studies"] = [{k: row[k] for k in ("trial", "estimate_id", "yi", "sei", "hr",
                                                 "ci_low", "ci_high", "weight", "flags",
                                                 "risk_of_bias")}
                            for row in self.inputs]
        # The same entries as the snapshot stores and GET /api/estimates returns.
        entry["leave_one_out"] = self.extras.get("leave_one_out", [])
        entry["cumulative"] = self.extras.get("cumulative", [])
        entry["monitoring"] = self.extras.get("monitoring")
        entry["risk_of_bias"] = self.extras.get("risk_of_bias")
        entry["certainty"] = self.extras.get("certainty")
        entry["small_study"] = self.extras.get("small_study")
        return clean_json(entry)


@dataclass
class PoolRun:
    """What ``pool_all`` did: one outcome per analysis (k = 0 ones included)."""

    method: str
    ci: str
    code_version: str
    outcomes: list[AnalysisOutcome] = field(default_factory=list)
    # Drugs of MMLR_ANALYSES_FILE's [[analysis]] entries that no stored trial has, in words
    # (``reports.selection.analyses_naming_no_drug``): a misspelling selects nothing.
    unknown_drugs: list[str] = field(default_factory=list)

    @property
    def changed(self) -> list[AnalysisOutcome]:
        return [o for o in self.outcomes if o.changed]

    def to_json(self) -> dict[str, Any]:
        """The ``mmlr pool --json`` document (DESIGN §3)."""
        pooled = [o for o in self.outcomes if o.result is not None]
        return {
            "method": self.method,
            "ci": self.ci,
            "code_version": self.code_version,
            "analyses": [o.to_json() for o in pooled],
            "subgroup_test": {
                o.analysis.key: {**o.subgroup_test.to_json(), "by": "setting",
                                 "subgroups": o.subgroup_test.subgroups}
                for o in pooled if o.subgroup_test is not None
            },
            "no_data": [o.analysis.key for o in self.outcomes if o.result is None],
            "snapshots_written": len(self.changed),
            "analyses_naming_no_drug": self.unknown_drugs,
        }

    def describe(self) -> str:
        lines = [f"Pooled with {self.method} + {self.ci} (code {self.code_version}); "
                 f"{plural(len(self.changed), 'new snapshot')}."]
        header = (f"{'analysis':44} {'k':>2}  {'HR':>5} {'95% CI':>13} {'95% PI':>13} "
                  f"{'I²':>5} {'p(Q)':>7}")
        lines += [header, "-" * len(header)]
        for o in self.outcomes:
            if o.result is None:
                lines.append(f"{o.analysis.key:44} {0:>2}  no eligible verified estimates")
                continue
            r = o.result
            # One trial: no prediction interval, I² or Q to speak of (the summary of
            # findings and the digest show "—" too), whatever the fit returns for them; its
            # HR and CI are the trial's as printed (reports.presentation).
            several = has_heterogeneity(r.k)
            pi = (interval_text(hr_number(r.hr_pi_low), hr_number(r.hr_pi_high))
                  if several and math.isfinite(r.pi_low) else "—")
            heterogeneity = (f"{i2_text(r.i2):>5} {_p_cell(r.q_p):>7}" if several
                             else f"{'—':>5} {'—':>7}")
            mark = " *" if o.changed else ""
            shown = shown_hr(r.k, r.estimate, r.ci_low, r.ci_high, o.inputs)
            ci = (interval_text(shown.ci_low, shown.ci_high)
                  if shown.ci_low is not None and shown.ci_high is not None else "—")
            lines.append(
                f"{o.analysis.key:44} {r.k:>2}  {shown.hr:>5} {ci:>13} {pi:>13} "
                f"{heterogeneity}{mark}"
            )
            if o.subgroup_test is not None:
                t = o.subgroup_test
                lines.append(f"{'':46}subgroup difference (setting): Q = {rounded(t.q)}, "
                             f"df = {t.df}, {p_text(t.p)}")
            lines.append(f"{'':46}{_analysis_notes(o.extras)}")
            # What the fit says about its own CI (an HKSJ interval narrower than Wald's, t with
            # 1 df for two trials), under the number as /estimates and the digest have it.
            lines += [f"{'':46}note from the fit: {note}"
                      for note in shown_fit_notes(r.k, o.extras.get("notes"))]
        if self.changed:
            lines.append("* new snapshot stored")
        return "\n".join(lines)


def _p_cell(p: float | None) -> str:
    """A p value in the table's p(Q) column: "< 0.001" as elsewhere, never "0.000"."""
    return "< 0.001" if p is not None and p < 0.001 else rounded(p, 3)


def _analysis_notes(extras: dict[str, Any]) -> str:
    """One line for the CLI table: the monitoring status, the suggested certainty and, from
    three trials, the small-study tests."""
    parts = []
    view = extras.get("monitoring")
    if view:
        parts.append(f"monitoring: {status_label(view['status'])}, "
                     f"{100 * view['fraction']:.0f}% of the required information")
    certainty = extras.get("certainty")
    if certainty:
        parts.append(f"suggested certainty: {certainty['level']}"
                     + (" (provisional)" if certainty["provisional"] else ""))
    funnel = short_text(extras.get("small_study"))
    if funnel:
        parts.append(f"small-study effects: {funnel}")
    return "; ".join(parts)


# ----------------------------------------------------------------------------- input rows
def _row_label(c: Candidate, analysis: Analysis, names: list[str]) -> str:
    # A trial entered per stratum appears twice in an "all" analysis: say which stratum.
    if analysis.setting == "all" and names.count(c.trial_name) > 1:
        return f"{c.trial_name} ({SETTING_LABELS.get(c.setting, c.setting)})"
    return c.trial_name


def _input_rows(analysis: Analysis, chosen: list[Candidate]) -> list[dict[str, Any]]:
    names = [c.trial_name for c in chosen]
    rows = []
    for c in chosen:
        flags = []
        if c.efs_ttp:
            flags.append(c.endpoint.upper())
        if c.approximate:
            flags.append("approximate")
        if c.is_strategy:
            flags.append("strategy")
        if c.method != "reported_ci":
            flags.append(c.method)
        cut = c.cut_date
        rows.append({
            "trial": _row_label(c, analysis, names), "trial_name": c.trial_name,
            "trial_id": c.trial_id, "estimate_id": c.estimate_id,
            "yi": c.log_hr, "sei": c.se,
            "hr": c.hr if c.hr else math.exp(c.log_hr),
            "ci_low": c.ci_low if c.ci_low else math.exp(c.log_hr - Z95 * c.se),
            "ci_high": c.ci_high if c.ci_high else math.exp(c.log_hr + Z95 * c.se),
            "endpoint": c.endpoint.upper(), "setting": c.setting, "subgroup": c.setting,
            "comparison": c.comparison, "method": c.method, "approximate": c.approximate,
            "efs_ttp": c.efs_ttp, "is_strategy": c.is_strategy, "flags": flags,
            "data_cut": c.data_cut.isoformat() if c.data_cut else None,
            "data_cut_label": c.data_cut_label,
            "date": cut.isoformat() if cut else None, "year": c.report_year, "pmid": c.pmid,
            "risk_of_bias": c.risk_of_bias, "risk_of_bias_disputed": c.risk_of_bias_disputed,
            "risk_of_bias_carried_over": c.risk_of_bias_carried_over,
            "printed": c.printed,
        })
    return rows


#: Input-row keys that change what is shown, never what is pooled: left out of the inputs
#: hash so that a snapshot stored before them is not "updated" by them alone (a new printed
#: text always comes with a new estimate id, which the hash does see).
_DISPLAY_ONLY = ("printed",)


#: Input-row keys added later whose usual value is left out of the hash, so that a snapshot
#: stored before them is not "updated" by them alone; any other value is hashed (a result
#: re-assessed on its new data cut, with the same judgment, is a new snapshot).
_HASHED_UNLESS = {"risk_of_bias_carried_over": False}


def _hash_inputs(analysis: Analysis, rows: list[dict[str, Any]]) -> str:
    payload = {"analysis": analysis.key,
               "rows": [{k: v for k, v in r.items() if k not in _DISPLAY_ONLY
                         and not (k in _HASHED_UNLESS and v == _HASHED_UNLESS[k])}
                        for r in rows]}
    text = json.dumps(clean_json(payload), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _summary(res: MetaResult) -> dict[str, Any]:
    return {"k": res.k, "estimate": res.estimate, "se": res.se, "ci_low": res.ci_low,
            "ci_high": res.ci_high, "pi_low": res.pi_low, "pi_high": res.pi_high,
            "hr": res.hr, "hr_ci_low": res.hr_ci_low, "hr_ci_high": res.hr_ci_high,
            "tau2": res.tau2, "i2": res.i2, "q": res.q, "q_df": res.q_df, "q_p": res.q_p,
            "pval": res.pval}


def _pool_rows(rows: list[dict[str, Any]], *, method: str, ci: str,
               tau2_ci: bool = True) -> MetaResult:
    # One call for the main estimate and every step of the cumulative view, so a step can
    # never be pooled differently from the estimate it leads to.
    return meta_analysis([r["yi"] for r in rows], [r["sei"] for r in rows], method=method,
                         ci=ci, labels=[r["trial"] for r in rows], tau2_ci=tau2_ci)


def compute_analysis(
    analysis: Analysis, candidates: list[Candidate], *, method: str, ci: str,
    plan: MonitoringPlan | None = None, arms: ArmReading | None = None,
) -> AnalysisOutcome:
    """Select the inputs of one analysis and pool them (no database access).

    With a monitoring ``plan`` the extras carry the sequential-monitoring view of the evidence
    over time (``monitoring``, :func:`reports.sequential.monitor`); without, it is None.
    ``arms`` reads the trials' control arms (``[[arms]]`` entries included), which leave
    head-to-head trials out; without, they are read from ``candidates`` alone.
    """
    arms = arms or ArmReading.of(candidates)
    selection = select_inputs(analysis, candidates, arms=arms)
    rows = _input_rows(analysis, selection.chosen)
    dropped = [{"estimate_id": c.estimate_id, "trial": c.trial_name, "reason": reason}
               for c, reason in selection.dropped]
    if not rows:
        return AnalysisOutcome(analysis, None, [], {"dropped": dropped})
    res = _pool_rows(rows, method=method, ci=ci)
    for row, weight in zip(rows, res.weights, strict=True):
        row["weight"] = weight
    subgroups: list[tuple[str, MetaResult]] = []
    test = None
    undefined: str | None = None
    if analysis.setting == "all":
        order = list(dict.fromkeys(r["subgroup"] for r in rows))
        if len(order) > 1:
            for name in order:
                part = [r for r in rows if r["subgroup"] == name]
                subgroups.append((name, meta_analysis(
                    [r["yi"] for r in part], [r["sei"] for r in part], method=method, ci=ci,
                    labels=[r["trial"] for r in part])))
            test = subgroup_test(subgroups)
            undefined = subgroup_test_undefined(subgroups)
    cumulative = cumulative_by_publication(analysis, candidates, method=method, ci=ci,
                                           arms=arms)
    monitoring = (monitor(cumulative, plan, method=method, primary_ci=(res.ci_low, res.ci_high))
                  if plan else None)
    small_study = small_study_effects([r["yi"] for r in rows], [r["sei"] for r in rows],
                                      method=method, ci=ci)
    extras: dict[str, Any] = {
        "label": analysis.label, "drug": analysis.drug, "drugs": list(analysis.members),
        "setting": analysis.setting,
        "endpoint": analysis.endpoint, "sensitivity": analysis.include_strategy,
        "pval": res.pval, "df": res.df, "h2": res.h2, "s2w": res.s2w,
        "tau2_ci": list(res.tau2_ci) if res.tau2_ci else None, "ci_used": res.ci,
        "notes": [*res.notes, *([undefined] if undefined else [])],
        "hr": res.hr, "hr_ci_low": res.hr_ci_low, "hr_ci_high": res.hr_ci_high,
        "hr_pi_low": res.hr_pi_low, "hr_pi_high": res.hr_pi_high,
        "flags": {"efs_ttp": [r["trial"] for r in rows if r["efs_ttp"]],
                  "approximate": [r["trial"] for r in rows if r["approximate"]],
                  "strategy": [r["trial"] for r in rows if r["is_strategy"]]},
        "subgroups": [{"name": name, **_summary(sub)} for name, sub in subgroups],
        "subgroup_test": test.to_json() if test else None,
        "leave_one_out": [{"omitted": name, **_summary(sub)}
                          for name, sub in res.leave_one_out()],
        "cumulative": cumulative,
        "cumulative_inputs_hash": _hash_cumulative(cumulative),
        "monitoring": monitoring,
        "risk_of_bias": _bias_view(rows, method=method, ci=ci),
        "small_study": small_study,
        "certainty": suggest_certainty(k=res.k, hr_ci_low=res.hr_ci_low,
                                       hr_ci_high=res.hr_ci_high,
                                       i2=res.i2 if has_heterogeneity(res.k) else None,
                                       q_p=res.q_p if has_heterogeneity(res.k) else None,
                                       rows=rows,
                                       monitoring=monitoring, small_study=small_study,
                                       shown_ci=shown_hr(res.k, res.estimate, res.ci_low,
                                                         res.ci_high, rows).own_ci,
                                       ci_used=res.ci),
        "dropped": dropped,
    }
    return AnalysisOutcome(analysis, res, rows, clean_json(extras), subgroup_test=test)


# ----------------------------------------------------------------------------- risk of bias
#: The sensitivity analyses by risk of bias: which inputs each keeps. Cochrane's usual one is
#: "low risk only"; "without high risk" keeps results nobody has assessed yet, and says so.
_BIAS_SUBSETS: tuple[tuple[str, str, Callable[[dict[str, Any]], bool]], ...] = (
    ("low_only", "low risk of bias only", lambda r: r["risk_of_bias"] == "low"),
    ("without_high", "without high risk of bias",
     lambda r: r["risk_of_bias"] != "high"),
)


def _bias_view(rows: list[dict[str, Any]], *, method: str, ci: str) -> dict[str, Any]:
    """The share of the pooled weight at each RoB 2 judgment, and the estimate re-pooled
    without the results at risk (each subset with the analysis' own estimator and CI).

    A subset equal to all inputs is not pooled again (``same_as_primary``); an empty one
    has no estimate. ``not_assessed`` counts the inputs nobody has judged: until they are,
    "low risk only" leaves them out and "without high risk" keeps them.
    """
    weight: dict[str, float] = {j: 0.0 for j in (*JUDGMENTS, "not_assessed")}
    count: dict[str, int] = dict.fromkeys(weight, 0)
    for r in rows:
        key = r["risk_of_bias"] or "not_assessed"
        weight[key] += r["weight"]
        count[key] += 1
    sensitivity = []
    for key, label, keep in _BIAS_SUBSETS:
        part = [r for r in rows if keep(r)]
        entry: dict[str, Any] = {"name": key, "label": label, "k": len(part),
                                 "trials": [r["trial"] for r in part],
                                 "left_out": [r["trial"] for r in rows if not keep(r)]}
        if part and len(part) < len(rows):
            entry.update(_summary(_pool_rows(part, method=method, ci=ci, tau2_ci=False)))
        entry["same_as_primary"] = len(part) == len(rows)
        sensitivity.append(entry)
    return {"weight_percent": weight, "count": count,
            "assessed": len(rows) - count["not_assessed"], "sensitivity": sensitivity}


# ----------------------------------------------------------------------------- evidence over time
def publication_date(c: Candidate) -> tuple[date | None, str]:
    """When the estimate ``c`` became public, and how to print that date.

    We take ``Candidate.cut_date`` — the date the selection already orders cuts by (the data
    cut, else 31 December of the report year) — unless the report's year is later than the
    cut's year, and then 31 December of the report year. Why: a data cut is not a
    publication (a 2012 cut printed in 2014 was not evidence anyone had in 2012), so a later
    report year must win; 31 December is the convention ``cut_date`` already uses for a year,
    so the view never shows evidence before it could have been read; and within the cut's own
    year the cut date is the more precise of the two (and the one the selection orders cuts
    by). The label is the year when the date stands for a report year (a day would be false
    precision), else the ISO date.
    ``(None, "undated")`` when neither is known: such estimates, which the selection treats
    as oldest, are available from the first step on.
    """
    cut = c.cut_date
    if c.report_year and (cut is None or c.report_year > cut.year):
        return date(c.report_year, 12, 31), str(c.report_year)
    if cut is None:
        return None, "undated"
    if c.data_cut is None:  # cut_date came from the report year
        return cut, str(cut.year)
    return cut, cut.isoformat()


def cumulative_by_publication(
    analysis: Analysis, candidates: list[Candidate], *, method: str, ci: str,
    arms: ArmReading | None = None,
) -> list[dict[str, Any]]:
    """The pooled estimate of ``analysis`` on each date on which new evidence was published.

    At date D the inputs are ``select_inputs(analysis, candidates published by D)``
    (:func:`publication_date`), so each trial contributes its latest verified estimate
    published by then: it enters at its first publication, and a later data cut replaces the
    earlier one when it appears. The selection rules are applied as they are, untouched; a
    date on which the selection does not change (an unverified estimate, another analysis'
    data) is not a step. The database is read as it is now: an estimate withdrawn or not yet
    verified today is absent from every date. Each step pools with ``method``/``ci`` like the
    main estimate, and says which trials entered, were updated or left (``changes``, and in
    words ``change``), and which estimates it pooled (``studies``). Every date reads the
    trials' arms as they read now (``arms``, of all ``candidates``).
    """
    arms = arms or ArmReading.of(candidates)
    published = [(publication_date(c), c) for c in candidates]
    # None (the undated estimates alone) comes first: the selection treats them as oldest.
    points: list[date | None] = [None] if any(w is None for (w, _), _ in published) else []
    points += sorted({when for (when, _), _ in published if when is not None})
    steps: list[dict[str, Any]] = []
    before: list[Candidate] = []
    for point in points:
        available = [c for (when, _), c in published
                     if when is None or (point is not None and when <= point)]
        chosen = select_inputs(analysis, available, arms=arms).chosen
        if {c.estimate_id for c in chosen} == {c.estimate_id for c in before}:
            continue
        changes = _changes(before, chosen)
        before = chosen
        if not chosen:
            continue
        rows = _input_rows(analysis, chosen)
        res = _pool_rows(rows, method=method, ci=ci, tau2_ci=False)
        # The label of what was published that day: an exact cut date rather than a year
        # when both fall on it.
        ids = {c.estimate_id for c in chosen}
        labels = [label for (when, label), c in published
                  if when == point and c.estimate_id in ids]
        steps.append({
            "date": point.isoformat() if point is not None else None,
            "date_label": max(labels, key=len) if labels else (
                point.isoformat() if point is not None else "undated"),
            "added": ", ".join(ch["trial"] for ch in changes if ch["change"] != "left"),
            "change": "; ".join(ch["text"] for ch in changes),
            "changes": changes,
            "studies": [{"trial": r["trial"], "estimate_id": r["estimate_id"], "yi": r["yi"],
                         "sei": r["sei"]} for r in rows],
            **_summary(res),
        })
    return steps


def _changes(before: list[Candidate], after: list[Candidate]) -> list[dict[str, Any]]:
    """What changed between two selections, per trial (a trial entered by stratum has several
    estimates), in the order of the new selection; trials that left come last."""
    old: dict[int, list[Candidate]] = {}
    new: dict[int, list[Candidate]] = {}
    for c in before:
        old.setdefault(c.trial_id, []).append(c)
    for c in after:
        new.setdefault(c.trial_id, []).append(c)
    out = []
    for trial_id in [*new, *(t for t in old if t not in new)]:
        now, then = new.get(trial_id, []), old.get(trial_id, [])
        now_ids, then_ids = {c.estimate_id for c in now}, {c.estimate_id for c in then}
        added = [c for c in now if c.estimate_id not in then_ids]
        removed = [c for c in then if c.estimate_id not in now_ids]
        if not added and not removed:
            continue
        name = (now or then)[0].trial_name
        new_cut, old_cut = _cut_names(added, removed)
        if not now:
            kind, text = "left", f"{name} leaves"
        elif not then:
            cut = "undated" if new_cut == "undated" else f"{new_cut} cut"
            kind, text = "entered", f"{name} enters ({cut})"
        elif removed:
            kind, text = "updated", f"{name} {new_cut} cut replaces {old_cut}"
        else:  # a stratum of a trial already in (an "all" analysis)
            kind, text = "updated", f"{name} adds its {new_cut} cut ({_strata(added)})"
        out.append({"trial": name, "trial_id": trial_id, "change": kind,
                    "estimate_ids": [c.estimate_id for c in added],
                    "replaced_estimate_ids": [c.estimate_id for c in removed], "text": text})
    return out


def _strata(cands: list[Candidate]) -> str:
    return " + ".join(dict.fromkeys(SETTING_LABELS.get(c.setting, c.setting) for c in cands))


def _cut_names(new: list[Candidate], old: list[Candidate]) -> tuple[str, str]:
    """Short names of two sets of cuts that tell them apart: the cut's year ("2017"), else its
    date, else date and endpoint, else the estimate ids."""
    def day(c: Candidate) -> str:
        return c.cut_date.isoformat() if c.cut_date else "undated"

    ways: tuple[Callable[[Candidate], str], ...] = (
        lambda c: str(c.cut_date.year) if c.cut_date else "undated",
        day,
        lambda c: f"{day(c)} {c.endpoint.upper()}",
        lambda c: f"estimate {c.estimate_id}",
    )
    for describe in ways:
        pair = (" + ".join(dict.fromkeys(describe(c) for c in new)),
                " + ".join(dict.fromkeys(describe(c) for c in old)))
        if not new or not old or pair[0] != pair[1]:
            break
    return pair


def _hash_cumulative(steps: list[dict[str, Any]]) -> str:
    payload = [{"date": s["date"], "studies": s["studies"]} for s in steps]
    text = json.dumps(clean_json(payload), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# ----------------------------------------------------------------------------- the run
def pool_all(ctx: AppContext) -> PoolRun:
    """Recompute every analysis with ``settings.pool_method``/``pool_ci``; store changes.

    Runs under the database lock "pool": two runs at once (`mmlr pool` while the worker's
    cycle pools, two workers' cycles) would each compare with the same previous snapshots and
    both store every change, doubling the evidence over time. The second gets ``LockedError``.
    """
    with job_lock(ctx.engine, "pool"):
        return _pool_all(ctx)


def _pool_all(ctx: AppContext) -> PoolRun:
    method, ci = ctx.settings.pool_method, ctx.settings.pool_ci
    version = code_version()
    run = PoolRun(method=method, ci=ci, code_version=version)
    hrs = monitoring_hrs(ctx.settings.monitoring_hr)

    def plan_of(analysis: Analysis) -> MonitoringPlan:
        # An analyses-file entry may set its own anticipated HR; else the endpoint's.
        return MonitoringPlan(anticipated_hr=analysis.monitoring_hr or hrs[analysis.endpoint],
                              power=ctx.settings.monitoring_power)

    with ctx.sessions() as session:
        candidates = load_candidates(session)
        previous = {p.analysis_key: p for p in latest_results(session)}
        analyses = all_analyses(candidates, ctx.settings.analyses_file)
        run.unknown_drugs = analyses_naming_no_drug(session, ctx.settings.analyses_file)
        for text in run.unknown_drugs:
            log.warning("MMLR_ANALYSES_FILE: %s", text)
        arms = ArmReading.of(candidates, load_arm_overrides(ctx.settings.analyses_file))
        known = {a.key for a in analyses}
        # A sensitivity twin whose strategy trials left is rebuilt from its primary analysis,
        # which carries a defined class's drugs and title: rebuilt from its key alone, "imid"
        # pooled no trial of its drugs and was labelled "Imid" without the title.
        primaries = {(a.drug, a.endpoint, a.setting): a for a in analyses
                     if not a.include_strategy}
        # An analysis that had data once stays listed even when its inputs vanish.
        for key, snap in previous.items():
            if key not in known:
                try:  # a key of another version, or of an analysis no longer in the file
                    drug, endpoint, setting, *rest = key.split("/")
                    primary = primaries.get((drug, endpoint, setting))
                    analyses.append(
                        replace(primary, include_strategy=bool(rest)) if primary is not None
                        else Analysis(drug, setting, endpoint, include_strategy=bool(rest)))
                except ValueError:
                    log.warning("ignoring snapshot %s with an unknown analysis key", snap.id)
        new_rows: list[tuple[AnalysisOutcome, PooledResult]] = []
        for analysis in analyses:
            plan = plan_of(analysis)
            # What a snapshot freezes: the estimator, the CI and this analysis' own plan.
            settings_doc = {"method": method, "ci": ci, "monitoring": plan.to_json()}
            outcome = compute_analysis(analysis, candidates, method=method, ci=ci, plan=plan,
                                       arms=arms)
            run.outcomes.append(outcome)
            prev = previous.get(analysis.key)
            inputs_hash = _hash_inputs(analysis, outcome.inputs)
            # The pooled inputs, or only the earlier cuts of the cumulative view, changed.
            prev_cumulative = (prev.result or {}).get("cumulative_inputs_hash") if prev else None
            if prev is not None and (prev.inputs_hash, prev.settings, prev.code_version,
                                     prev_cumulative) == (
                inputs_hash, settings_doc, version, outcome.extras.get("cumulative_inputs_hash")
            ):
                outcome.snapshot_id = prev.id
                continue
            if outcome.result is None and (prev is None or prev.k == 0):
                continue  # never had data: nothing to record
            new_rows.append((outcome, _snapshot(outcome, inputs_hash, settings_doc, version)))
        for _, row in new_rows:
            session.add(row)
        if new_rows:
            session.flush()
            for outcome, row in new_rows:
                outcome.snapshot_id, outcome.changed = row.id, True
            audit(session, "pool", object_type="pooled_results",
                  snapshots=[row.id for _, row in new_rows], method=method, ci=ci,
                  code_version=version)
        session.commit()
    log.info("pooled %d analyses, %d new snapshot(s)", len(run.outcomes), len(run.changed))
    return run


def _snapshot(outcome: AnalysisOutcome, inputs_hash: str, settings_doc: dict[str, Any],
              version: str) -> PooledResult:
    res = outcome.result

    def val(x: float | None) -> float | None:
        return x if x is not None and math.isfinite(x) else None

    return PooledResult(
        analysis_key=outcome.analysis.key, analysis_label=outcome.analysis.label,
        method=settings_doc["method"], ci_method=res.ci if res else settings_doc["ci"],
        k=outcome.k,
        estimate=val(res.estimate) if res else None, se=val(res.se) if res else None,
        ci_low=val(res.ci_low) if res else None, ci_high=val(res.ci_high) if res else None,
        pi_low=val(res.pi_low) if res else None, pi_high=val(res.pi_high) if res else None,
        tau2=val(res.tau2) if res else None, i2=val(res.i2) if res else None,
        q=val(res.q) if res else None, q_p=val(res.q_p) if res else None,
        result=outcome.extras, inputs=clean_json(outcome.inputs), inputs_hash=inputs_hash,
        settings=dict(settings_doc), code_version=version,
    )
