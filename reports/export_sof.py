"""``mmlr export sof``: a summary of findings — one row per pooled analysis — for guideline
panels: the pooled HR with its CI and prediction interval, heterogeneity, the weight at each
RoB 2 judgment and the low-risk-only estimate, the absolute effect per 1000 patients at the
time point of the analysis' assumed control risk (``store.baselines``, ``reports.absolute``;
empty until a curator enters one), Egger's test and trim-and-fill (from three
trials; flagged as not interpretable below ten), the sequential-monitoring status, and the
suggested certainty with the reason for every domain rated down.

Read from the newest snapshot of each analysis (``reports.selection.latest_results``), so every
number is one the estimates page and the digests show and can be audited (``snapshot_id``,
``code_version``). The absolute effect is the one exception: it combines the snapshot's HR with
the assumed control risk current at export time, named by ``baseline_id`` (entries are never
changed, only added). The Markdown table beside the CSV is the one a panel pastes into its
minutes; it says that the certainty is a suggestion.
"""

from __future__ import annotations

import csv
import html
import math
from collections.abc import Sequence
from typing import IO, Any

from sqlmodel import Session

from reports.absolute import absolute_or_reason, written_per_1000
from reports.meta import hr_of
from reports.monitoring_view import status_label
from reports.network_inputs import Fitted, node_sizes
from reports.presentation import (
    fit_notes,
    has_heterogeneity,
    i2_text,
    shown_fit_notes,
    shown_hr_of,
)
from reports.selection import latest_results
from reports.small_study import short_text
from reports.words import hr_ci_text, hr_number, interval_text, rounded
from store.baselines import baseline_for, current_baselines
from store.models import PooledResult
from store.spreadsheet import spreadsheet_safe

SOF_COLUMNS = (
    "analysis", "label", "k", "trials", "events_equivalent", "hr", "hr_ci_low", "hr_ci_high",
    "hr_shown", "hr_ci_low_shown", "hr_ci_high_shown", "hr_source", "fit_notes",
    "hr_pi_low", "hr_pi_high", "i2", "tau2", "method", "ci_method",
    "rob_low_pct", "rob_some_concerns_pct", "rob_high_pct", "rob_not_assessed_pct",
    "hr_low_rob_only", "hr_low_rob_only_ci_low", "hr_low_rob_only_ci_high",
    "egger_p", "trim_fill_k0", "hr_trim_fill", "hr_trim_fill_ci_low", "hr_trim_fill_ci_high",
    "small_study_interpretable",
    "baseline_months", "control_event_free_pct", "control_per_1000", "maintenance_per_1000",
    "maintenance_per_1000_ci_low", "maintenance_per_1000_ci_high", "difference_per_1000",
    "difference_per_1000_ci_low", "difference_per_1000_ci_high", "baseline_source",
    "baseline_id", "monitoring_status", "information_fraction", "required_events",
    "certainty", "certainty_provisional", "rated_down", "certainty_reasons",
    "snapshot_id", "computed_at", "code_version",
)


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return ""
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


#: A network prediction interval without τ² (no loop, too few trials): not a real interval.
NOT_ESTIMABLE = "not estimable (τ² cannot be estimated)"

#: Said beside an HR that is not a pooled one (one trial; reports.presentation).
_SOURCE_WORDS = {"printed": "one trial, as printed", "trial": "one trial, as reported",
                 "derived": "one trial, derived HR: no printed CI, CI from its SE"}

#: What an empty "low risk of bias only" cell means, on the page and in the Markdown.
LOW_ROB_ONLY_EMPTY = {
    "same_as_primary": "same as the HR (every trial at low risk)",
    "none_low": "— (no trial assessed at low risk)",
}


def sof_rows(session: Session) -> list[dict[str, Any]]:
    """One dict per analysis with a pooled estimate (k ≥ 1), in reading order."""
    baselines = current_baselines(session)
    return [_row(p, *absolute_or_reason(p, baseline_for(p.analysis_key, baselines)))
            for p in latest_results(session) if p.k > 0 and p.estimate is not None]


def _row(p: PooledResult, absolute: dict[str, Any] | None,
         absolute_reason: str | None = None) -> dict[str, Any]:
    result = p.result if isinstance(p.result, dict) else {}
    rob = result.get("risk_of_bias") or {}
    weight = rob.get("weight_percent") or {}
    low_only: dict[str, Any] = next((e for e in rob.get("sensitivity") or []
                                     if e.get("name") == "low_only"), {})
    monitoring = result.get("monitoring") or {}
    funnel = result.get("small_study") or {}
    egger = funnel.get("egger") or {}
    fill = funnel.get("trim_fill") or {}
    certainty = result.get("certainty") or {}
    rated = [d for d in certainty.get("domains") or [] if d.get("downgrade")]
    info = sum(1.0 / r["sei"] ** 2 for r in p.inputs or [] if r.get("sei"))
    several = has_heterogeneity(p.k)
    shown = shown_hr_of(p)
    return {
        "analysis": p.analysis_key, "label": p.analysis_label, "k": p.k,
        "trials": "; ".join(str(r.get("trial")) for r in p.inputs or []),
        "events_equivalent": round(4 * info) if info else None,
        "hr": hr_of(p.estimate), "hr_ci_low": hr_of(p.ci_low), "hr_ci_high": hr_of(p.ci_high),
        # What the table shows (text): the pooled HR, or with one trial the trial's as
        # printed (reports.presentation); the three columns above stay the computed ones.
        "hr_shown": shown.hr, "hr_ci_low_shown": shown.ci_low,
        "hr_ci_high_shown": shown.ci_high, "hr_source": shown.source,
        "hr_text": shown.text(), "hr_note": _SOURCE_WORDS.get(shown.source),
        # What the fit says about its own CI (an HKSJ interval narrower than Wald's, t with
        # 1 df for two trials), beside the HR as /estimates has it: a panel must not take an
        # implausibly narrow CI at face value.
        "fit_notes": "; ".join(shown_fit_notes(p.k, fit_notes(p))) or None,
        "hr_pi_low": hr_of(p.pi_low) if several else None,
        "hr_pi_high": hr_of(p.pi_high) if several else None,
        # One trial: no I² (nor a prediction interval) to speak of, as sof.md's "—" says.
        "i2": p.i2 if several else None, "tau2": p.tau2, "method": p.method,
        "ci_method": p.ci_method,
        "rob_low_pct": weight.get("low"), "rob_some_concerns_pct": weight.get("some_concerns"),
        "rob_high_pct": weight.get("high"), "rob_not_assessed_pct": weight.get("not_assessed"),
        "hr_low_rob_only": low_only.get("hr"),
        "hr_low_rob_only_ci_low": low_only.get("hr_ci_low"),
        "hr_low_rob_only_ci_high": low_only.get("hr_ci_high"),
        # Why the low-risk-only cells are empty, for the page and the Markdown (not a CSV
        # column): every trial at low risk (the main HR is that estimate) and no trial at low
        # risk are opposite findings that an empty cell would make look alike.
        "low_rob_only_empty": (None if not low_only or low_only.get("hr") is not None
                               else "same_as_primary" if low_only.get("same_as_primary")
                               else "none_low"),
        "egger_p": egger.get("p"), "trim_fill_k0": fill.get("k0"),
        "hr_trim_fill": fill.get("hr"), "hr_trim_fill_ci_low": fill.get("hr_ci_low"),
        "hr_trim_fill_ci_high": fill.get("hr_ci_high"),
        # Empty for a snapshot from before the funnel view, or with fewer than 3 trials.
        "small_study_interpretable": (None if not funnel.get("available")
                                      else "true" if funnel.get("k_sufficient") else "false"),
        "small_study_text": short_text(funnel),
        **_absolute_cells(absolute),
        # Why an entered control risk gave no absolute effect (for the Markdown, not a CSV
        # column): "no assumed control risk entered" was said of an entry that exists.
        "absolute_reason": absolute_reason,
        "monitoring_status": monitoring.get("status"),
        "information_fraction": monitoring.get("fraction"),
        "required_events": monitoring.get("required_events"),
        "certainty": certainty.get("level"),
        "certainty_provisional": (None if not certainty
                                  else "true" if certainty.get("provisional") else "false"),
        # Why the suggestion is provisional, for the Markdown (not a CSV column): "high
        # (provisional)" alone hid that nobody had assessed the risk of bias.
        "certainty_provisional_reason": "; ".join(
            str(d.get("provisional_reason")) for d in certainty.get("domains") or []
            if d.get("provisional")),
        "rated_down": "; ".join(f"{d['label'].lower()} −{d['downgrade']}" for d in rated),
        "certainty_reasons": " | ".join(f"{d.get('label')}: {d.get('reason')}"
                                        for d in certainty.get("domains") or []),
        "snapshot_id": p.id, "computed_at": p.computed_at.isoformat() if p.computed_at else None,
        "code_version": p.code_version,
    }


def _absolute_cells(view: dict[str, Any] | None) -> dict[str, Any]:
    """The absolute-effect columns: empty until an assumed control risk is entered."""
    v = view or {}
    rounded: dict[str, int | None] = dict.fromkeys((
        "control_per_1000", "maintenance_per_1000", "maintenance_per_1000_ci_low",
        "maintenance_per_1000_ci_high", "difference_per_1000", "difference_per_1000_ci_low",
        "difference_per_1000_ci_high"))
    if view:  # as the sentence writes them: the differences those of the rounded risks
        rounded.update(written_per_1000(view))
    return {"baseline_months": v.get("months"),
            "control_event_free_pct": (100 * v["event_free_control"] if view else None),
            **rounded, "baseline_source": v.get("source"), "baseline_id": v.get("baseline_id"),
            "absolute_text": v.get("text")}


def write_sof_csv(session: Session, fh: IO[str]) -> None:
    writer = csv.writer(fh)
    writer.writerow(SOF_COLUMNS)
    for row in sof_rows(session):
        # Every cell, not a list of "text" columns: the analysis key carries the drug a
        # curator typed, and numbers pass through unchanged (store.spreadsheet).
        writer.writerow([spreadsheet_safe(_fmt(row[c])) for c in SOF_COLUMNS])


def _cell(text: Any) -> str:
    # A trial name or a reason with "|" would split a Markdown cell; "<" would open raw HTML,
    # which Markdown renders as it is; "[...](...)" would be a link, "javascript:" ones
    # included where a renderer does not filter them (a curator-typed name is text, never
    # markup). The backslash is escaped first, so that one typed before "[" stays a backslash.
    escaped = html.escape(" ".join(str(text).split()), quote=False)
    for char in ("\\", "[", "]", "|"):
        escaped = escaped.replace(char, "\\" + char)
    return escaped


def network_rows(networks: Sequence[Fitted]) -> list[dict[str, Any]]:
    """One row per treatment of each fitted primary network (all trials, no strategy
    trials): its HR against the reference with CI and prediction interval, P-score, and the
    trials with an arm of it. The sensitivity networks stay on the network page."""
    out: list[dict[str, Any]] = []
    for net, res, _ in networks:
        if res is None or net.include_strategy or net.without_high_rob:
            continue
        trials = {t: n for t, (n, _) in node_sizes(res).items()}
        for t, p_score in res.ranking():
            if t == res.reference:
                continue
            rel = res.relative(t, res.reference)
            # Without τ² (too few contrasts, no loop) the "prediction interval" is the CI:
            # no interval is given, and the table says "not estimable" rather than "—",
            # which means a common-effect network (no PI by design).
            pi = rel.pi_low is not None and rel.pi_high is not None and res.tau2_estimable
            out.append({"network": net.key, "label": net.label, "reference": res.reference,
                        "treatment": t, "trials": trials[t], "hr": hr_of(rel.log_hr),
                        "hr_ci_low": hr_of(rel.ci_low), "hr_ci_high": hr_of(rel.ci_high),
                        "hr_pi_low": hr_of(rel.pi_low) if pi else None,
                        "hr_pi_high": hr_of(rel.pi_high) if pi else None,
                        "pi_not_estimable": res.method == "REML" and not res.tau2_estimable,
                        "p_score": p_score})
    return out


def network_notes(networks: Sequence[Fitted]) -> list[dict[str, Any]]:
    """What the rows of :func:`network_rows` leave out, per primary network: treatments whose
    trials are not connected to the reference (without this they just vanished from the
    summary)."""
    out: list[dict[str, Any]] = []
    for net, res, _ in networks:
        if res is None or net.include_strategy or net.without_high_rob:
            continue
        note = res.disconnection_note
        if note is not None:
            out.append({"network": net.key, "label": net.label, "note": note})
    return out


def _network_markdown(networks: Sequence[Fitted]) -> list[str]:
    rows = network_rows(networks)
    if not rows:
        return []
    lines = ["", "## Network meta-analysis", "",
             "Each treatment against no maintenance, direct and indirect evidence combined "
             "(the network page has the league table, inconsistency checks and the "
             "sensitivity networks). Rankings exaggerate small, uncertain differences: read "
             "P-scores with the CIs.", "",
             "| network | treatment | trials | HR (95% CI) | 95% PI | P-score |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        pi = (interval_text(hr_number(r["hr_pi_low"]), hr_number(r["hr_pi_high"]))
              if r["hr_pi_low"] is not None
              else NOT_ESTIMABLE if r["pi_not_estimable"] else "—")
        lines.append("| " + " | ".join(_cell(x) for x in (
            r["label"], f"{r['treatment']} vs {r['reference']}", r["trials"],
            hr_ci_text(r["hr"], r["hr_ci_low"], r["hr_ci_high"]), pi,
            rounded(r["p_score"]))) + " |")
    notes = network_notes(networks)
    if notes:
        lines.append("")
        lines.extend(f"- {_cell(n['label'])}: {_cell(n['note'])}" for n in notes)
    return lines


def sof_markdown(session: Session, networks: Sequence[Fitted] = ()) -> str:
    """The summary of findings as a Markdown table, with what each column means, and the
    network meta-analysis' estimates of ``networks`` (``reports.network_inputs``) after it."""
    rows = sof_rows(session)
    lines = ["# Summary of findings", "",
             "Hazard ratios of maintenance vs control (HR < 1 favours maintenance), pooled "
             "with the analysis' method; certainty is **suggested by fixed rules** as a "
             "starting point for the panel, not a GRADE judgment (see docs/curation.md); "
             "*provisional* means most of the pooled weight has no agreed risk-of-bias "
             "assessment yet, or there is no information size to judge imprecision against. "
             "With one trial there is no prediction interval or I² to speak of, and with fewer "
             "than three no small-study assessment (—); its HR and CI are the trial's as "
             "printed in the paper (a derived HR has no printed CI: its CI is computed from its "
             "standard error). An absolute effect is per 1000 patients at the time point of "
             "the assumed control risk a curator entered (its source is named in the cell), "
             "not estimated from the pooled trials: with maintenance the event-free "
             "proportion is the control's raised to the HR, which assumes proportional "
             "hazards up to that time, and its 95% CI carries the HR's uncertainty only, not "
             "the control risk's. The "
             "monitoring column is sequential monitoring, for monitoring only: the primary "
             "result is the pooled HR and its 95% CI.", "",
             "| analysis | trials (k) | HR (95% CI) | absolute effect | 95% PI | I² "
             "| low RoB only | small-study effects | monitoring | suggested certainty |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    if not rows:
        lines.append("| no pooled analysis yet | | | | | | | | | |")
    for r in rows:
        hr = r["hr_text"] + (f" ({r['hr_note']})" if r["hr_note"] else "") + (
            f" (note from the fit: {r['fit_notes']})" if r["fit_notes"] else "")
        pi = (interval_text(hr_number(r["hr_pi_low"]), hr_number(r["hr_pi_high"]))
              if r["hr_pi_low"] is not None else "—")
        i2 = i2_text(r["i2"]) if has_heterogeneity(r["k"]) else "—"
        low = (hr_ci_text(r["hr_low_rob_only"], r["hr_low_rob_only_ci_low"],
                          r["hr_low_rob_only_ci_high"]) if r["hr_low_rob_only"] is not None
               else LOW_ROB_ONLY_EMPTY.get(r["low_rob_only_empty"] or "", "—"))
        # In the words of the digest and the pages, and marked as monitoring only: a reader
        # of this table alone must not take "firm evidence" for the primary result.
        monitoring = (f"{status_label(r['monitoring_status'])}, "
                      f"{rounded(100 * r['information_fraction'], 0)}% of required information "
                      "(monitoring only)"
                      if r["monitoring_status"] else "—")
        certainty = (r["certainty"] or "—") + (
            f" (provisional: {r['certainty_provisional_reason']})"
            if r["certainty_provisional"] == "true" else "") + (
            f"; {r['rated_down']}" if r["rated_down"] else "")
        lines.append("| " + " | ".join(_cell(x) for x in (
            r["label"] or r["analysis"], f"{r['trials']} ({r['k']})", hr,
            (f"{r['absolute_text']} Assumed control risk: {r['baseline_source']}"
             if r["absolute_text"] else f"— (not computed: {r['absolute_reason']})"
             if r["absolute_reason"] else "— (no assumed control risk entered)"), pi, i2, low,
            r["small_study_text"] or "—", monitoring, certainty)) + " |")
    lines += _network_markdown(networks)
    return "\n".join(lines) + "\n"
