"""A suggested GRADE certainty of the evidence for each analysis: a starting point for a
guideline panel, computed from what mmlr knows, never a GRADE judgment itself.

GRADE rates the certainty of a body of randomised evidence "high" and rates it down for risk of
bias, inconsistency, indirectness, imprecision and publication bias (Guyatt et al., J Clin
Epidemiol 2011, GRADE guidelines 1–8). Those are judgments; what this module does is apply
fixed, written-down rules to the numbers mmlr has, so that the panel starts from the same place
every time and sees why. The rules are ours (chosen to follow the GRADE guidance they cite),
and every domain says what it looked at:

* **Risk of bias** — the pooled weight at each RoB 2 overall judgment (``store.bias``): rate
  down twice when results at high risk carry at least half the weight, once when results at
  high risk or with some concerns do. Results nobody assessed, or whose assessors disagree,
  make the suggestion *provisional* when together they carry half the weight or more. A
  judgment carried over from an earlier data cut of the trial (saved before the estimate now
  pooled was entered) counts as it is, and the reason says how much weight rests on it.
* **Inconsistency** — rate down once when I² ≥ 50% and Cochran's Q has p < 0.10 (one trial:
  not applicable).
* **Indirectness** — rate down once when strategy trials (the arms differ in induction too,
  so the contrast is not maintenance alone: the review keeps them out of its primary analyses
  for that reason) carry at least half the weight, as in the sensitivity analyses with them.
  Otherwise not by rule: the share of the weight from EFS or TTP in place of PFS is shown
  (pooling them is the field's practice, IMWG 2012 did), and that of strategy trials;
  population, intervention and comparator stay the panel's call.
* **Imprecision** — GRADE guidelines 6 (Guyatt 2011): rate down twice when the 95% CI includes
  both an appreciable benefit (HR ≤ 0.75) and an appreciable harm (HR ≥ 1.25), once when it
  includes no effect (HR 1), and once when it excludes HR 1 (no effect) but the optimal information
  size is not reached — taken as the heterogeneity-adjusted required information of the
  sequential monitoring (``reports.sequential``), unless the Z-curve has crossed its
  monitoring boundary (and is not back inside it), which is the stricter test the information
  size stands in for. One trial's CI is read as printed in the paper (a printed 1.00 includes
  HR 1, though rebuilt from its SE it may come back as 0.99999999); a pooled CI on its
  computed limits, quoted with the digits that keep each on its side (0.997, not 1.00).
  With two trials and a Hartung–Knapp interval (t with 1 degree of freedom) the reason says
  that the interval is wide by construction, whatever the trials show.
* **Publication bias** — never rated down by rule: with fewer than 10 trials a funnel plot or
  an asymmetry test cannot detect it (Sterne et al., BMJ 2011), and with more an asymmetric
  funnel has other causes too (heterogeneity, chance, small trials done differently). The
  reason quotes Egger's test and trim-and-fill (``reports.small_study``) for the panel, and
  says when they point to asymmetry.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

from reports.presentation import (
    I2_INCONSISTENT,
    has_heterogeneity,
    i2_text,
    shown_limit,
    t_with_one_df,
)
from reports.small_study import ASYMMETRY_P, p_text
from reports.words import hr_number, interval_text, plural, rounded_beside

LEVELS: tuple[str, ...] = ("very low", "low", "moderate", "high")
APPRECIABLE_BENEFIT = 0.75  # HR; GRADE's default 25% relative change
APPRECIABLE_HARM = 1.25


def _share(rows: Sequence[dict[str, Any]], test: Any) -> float:
    total = sum(r.get("weight") or 0.0 for r in rows) or 1.0
    return sum(r.get("weight") or 0.0 for r in rows if test(r)) / total


def _risk_of_bias(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    high = _share(rows, lambda r: r.get("risk_of_bias") == "high")
    concerns = _share(rows, lambda r: r.get("risk_of_bias") in ("high", "some_concerns"))
    unassessed = _share(rows, lambda r: not r.get("risk_of_bias"))
    # A judgment two assessors disagree on is not settled either (Cochrane: reconcile first).
    disputed = _share(rows, lambda r: r.get("risk_of_bias") and r.get("risk_of_bias_disputed"))
    if high >= 0.5:
        down, why = 2, f"results at high risk of bias carry {100 * high:.0f}% of the weight"
    elif concerns >= 0.5:
        down, why = 1, (f"results at high risk or with some concerns carry "
                        f"{100 * concerns:.0f}% of the weight")
    else:
        down, why = 0, (f"results at low risk carry "
                        f"{100 * (1 - concerns - unassessed):.0f}% of the weight")
    if unassessed > 0:
        why += f"; {100 * unassessed:.0f}% of the weight not assessed yet"
        if not down:
            # "not rated down" must not read as "judged fine": nothing rates down what
            # nobody assessed, and a reader of the reason alone must see that.
            why += ", which rates nothing down until it is assessed"
    if disputed > 0:
        why += f"; the assessors disagree on results carrying {100 * disputed:.0f}%"
    # A new data cut keeps the judgment of the one before until someone re-assesses it: it
    # still counts, but the panel is told which part of the weight rests on it.
    carried = _share(rows, lambda r: r.get("risk_of_bias") and r.get("risk_of_bias_carried_over"))
    if carried > 0:
        why += (f"; results carrying {100 * carried:.0f}% of the weight keep the judgment of an "
                "earlier data cut (not re-assessed yet)")
    return {"domain": "risk_of_bias", "label": "Risk of bias", "downgrade": down,
            "reason": why, "provisional": unassessed + disputed >= 0.5,
            "provisional_reason": "most of the weight has no agreed risk-of-bias assessment"}


def _inconsistency(k: int, i2: float | None, q_p: float | None) -> dict[str, Any]:
    base = {"domain": "inconsistency", "label": "Inconsistency", "provisional": False}
    if not has_heterogeneity(k) or i2 is None:
        return {**base, "downgrade": 0, "reason": "not applicable: one trial"}
    # below 0.001 in words, as every p value mmlr prints: "Q p = 0.00" read as a p of 0
    q_text = ("Q p n/a" if q_p is None else "Q p < 0.001" if q_p < 0.001
              else f"Q p = {rounded_beside(q_p, 0.10, 2 if q_p >= 0.01 else 3)}")
    reason = f"I² = {i2_text(i2)}, {q_text}"
    if i2 >= I2_INCONSISTENT and q_p is not None and q_p < 0.10:
        return {**base, "downgrade": 1, "reason": reason}
    return {**base, "downgrade": 0, "reason": reason}


def _indirectness(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    # EFS and TTP never rate down by rule: pooling them with PFS is the field's practice (IMWG
    # 2012 did), so a rule would rate down most maintenance analyses for a choice the review
    # made on purpose; the share is put in front of the panel instead. A strategy trial is
    # indirect by the review's own protocol (out of the primary analyses because its arms
    # differ in induction too): evidence mostly from such trials does not answer the question
    # of maintenance alone.
    surrogate = _share(rows, lambda r: r.get("efs_ttp"))
    strategy = _share(rows, lambda r: r.get("is_strategy"))
    notes = []
    if strategy:
        share = rounded_beside(100 * strategy, 50, 0)
        notes.append(f"strategy trials (induction differs too, so the contrast is not "
                     f"maintenance alone) carry {share}% of the weight")
    if surrogate:
        notes.append(f"EFS or TTP in place of PFS carry {100 * surrogate:.0f}% of the weight")
    down = 1 if strategy >= 0.5 else 0
    lead = "; ".join(notes) + "; " if notes else ""
    if lead and not down:
        lead = "for the panel: " + lead
    return {"domain": "indirectness", "label": "Indirectness", "provisional": False,
            "downgrade": down,
            "reason": lead + "population, drug and comparator are the panel's to judge"}


def _imprecision(shown: tuple[str, str], limits: tuple[float, float],
                 monitoring: dict[str, Any] | None) -> dict[str, Any]:
    """The imprecision domain on the CI of :func:`shown_limits` (``shown``, its digits;
    ``limits``, the numbers the rule compares)."""
    base = {"domain": "imprecision", "label": "Imprecision", "provisional": False}
    hr_low, hr_high = limits
    ci = f"95% CI {interval_text(*shown)}"
    if hr_low <= APPRECIABLE_BENEFIT and hr_high >= APPRECIABLE_HARM:
        return {**base, "downgrade": 2,
                "reason": f"{ci} includes appreciable benefit and appreciable harm"}
    if hr_low <= 1.0 <= hr_high:
        return {**base, "downgrade": 1, "reason": f"{ci} includes no effect"}
    if monitoring is None:
        return {**base, "downgrade": 0, "reason": f"{ci} excludes HR 1 (no effect)",
                "provisional": True,
                "provisional_reason": "no information size to compare with"}
    fraction = float(monitoring.get("fraction") or 0.0)
    firm = monitoring.get("status") == "firm_evidence"
    if firm and not _back_inside(monitoring):
        return {**base, "downgrade": 0,
                "reason": f"{ci} excludes HR 1 (no effect) and the Z-curve crossed its monitoring "
                          "boundary"}
    if fraction < 1.0:
        return {**base, "downgrade": 1,
                "reason": f"{ci} excludes HR 1 (no effect), but only {100 * fraction:.0f}% of the "
                          "optimal information size is reached (sequential monitoring)"
                          + ("; the Z-curve crossed its monitoring boundary earlier but is back "
                             "inside it" if firm else "")}
    return {**base, "downgrade": 0,
            "reason": f"{ci} excludes HR 1 (no effect); the optimal information size is reached"}


def shown_limits(hr_ci_low: float, hr_ci_high: float,
                 shown_ci: tuple[str, str] | None = None) -> tuple[tuple[str, str],
                                                                   tuple[float, float]]:
    """The CI the imprecision rule reads, as text and as numbers. One trial's printed digits
    (``shown_ci``) are its data: a printed 1.00 includes HR 1, whatever a CI rebuilt from
    its SE gives (0.99999999). A computed (pooled) CI is judged on the computed limits, each
    written with the digits that keep it on its side of the thresholds the rule compares it
    with — the lower one of HR ≤ 0.75 and HR ≤ 1, the upper one of HR ≥ 1 and HR ≥ 1.25 —
    so a pooled 0.997 that excludes 1 reads "0.997", never "1.00"."""
    if shown_ci is not None:
        low, high = shown_limit(shown_ci[0]), shown_limit(shown_ci[1])
        if low is not None and high is not None:
            return shown_ci, (low, high)
    low_text = max((rounded_beside(hr_ci_low, t, 2, at_or_below=True)
                    for t in (APPRECIABLE_BENEFIT, 1.0)), key=len)
    high_text = max((rounded_beside(hr_ci_high, t, 2) for t in (1.0, APPRECIABLE_HARM)),
                    key=len)
    return (low_text, high_text), (hr_ci_low, hr_ci_high)


def _back_inside(monitoring: dict[str, Any]) -> bool:
    """Whether a Z-curve that crossed its boundary has since fallen back inside it (the rule of
    ``reports.sequential``'s sentence: the boundary in force — that of the last look, also
    when the latest step added no information and so has none of its own — or the
    conventional limit where none applies). Later evidence that pulls the curve back undoes
    the firm evidence the crossing stood for, so it no longer stands in for the optimal
    information size. A view without a latest Z (stored before it had one) keeps its
    crossing."""
    z = monitoring.get("z")
    if z is None:
        return False
    looks = monitoring.get("looks") or []
    limit = next((lk["boundary"] for lk in reversed(looks) if lk.get("boundary") is not None),
                 monitoring.get("boundary"))
    if limit is None:
        alpha = float((monitoring.get("plan") or {}).get("alpha") or 0.05)
        limit = NormalDist().inv_cdf(1 - alpha / 2)
    return abs(float(z)) < float(limit)


def _publication_bias(k: int, small_study: dict[str, Any] | None) -> dict[str, Any]:
    if k < 10:
        reason = "not assessable by rule: fewer than 10 trials"
    else:
        reason = "for the panel: look at the funnel plot"
        egger = (small_study or {}).get("egger")
        fill = (small_study or {}).get("trim_fill")
        if egger:
            reason += (f"; Egger's test {p_text(egger['p'])}"
                       + (", the funnel is asymmetric" if egger["p"] < ASYMMETRY_P else ""))
        if fill and fill["k0"]:
            ci = interval_text(hr_number(fill["hr_ci_low"]), hr_number(fill["hr_ci_high"]))
            reason += (f"; trim-and-fill adds {plural(fill['k0'], 'trial')}"
                       f" (HR {hr_number(fill['hr'])}, {ci})")
    return {"domain": "publication_bias", "label": "Publication bias", "downgrade": 0,
            "reason": reason, "provisional": False}


def suggest_certainty(*, k: int, hr_ci_low: float, hr_ci_high: float, i2: float | None,
                      q_p: float | None, rows: Sequence[dict[str, Any]],
                      monitoring: dict[str, Any] | None,
                      small_study: dict[str, Any] | None = None,
                      shown_ci: tuple[str, str] | None = None,
                      ci_used: str | None = None) -> dict[str, Any]:
    """The suggested certainty of one pooled analysis.

    ``rows`` are the pooled inputs as ``reports.pool`` stores them (``weight`` in percent,
    ``risk_of_bias``, ``efs_ttp``); ``monitoring`` the sequential-monitoring view or None;
    ``small_study`` the funnel-plot view (``reports.small_study``) or None; ``shown_ci`` the
    CI limits as the analysis shows them when they are not the computed ones (one trial, as
    printed), which the imprecision rule then reads (:func:`shown_limits`); ``ci_used``
    the CI method the pooled result used (``MetaResult.ci``), for the imprecision reason of
    two trials.
    Returns ``level`` (one of ``LEVELS``), ``downgrades`` (the sum, the level never going
    below "very low"), ``provisional`` (a domain could not be judged on most of the
    evidence), ``domains`` (each with ``downgrade`` and a ``reason`` in words) and ``text``.
    """
    shown, (low, high) = shown_limits(hr_ci_low, hr_ci_high, shown_ci)
    imprecision = _imprecision(shown, (low, high), monitoring)
    if (t_with_one_df(k, ci_used) and imprecision["downgrade"]
            and low <= 1.0 <= high):  # rated down for the width, not the OIS
        # The rule reads the interval as computed; with two trials Hartung-Knapp's t has one
        # degree of freedom and the interval is wide whatever the trials say (two concordant
        # trials, I² 0%, were rated down twice): the panel must see why before it agrees.
        imprecision["reason"] += (
            "; with two trials the Hartung–Knapp interval uses t with 1 degree of freedom "
            "(critical value 12.7) and is wide by construction (Röver et al., BMC Med Res "
            "Methodol 2015;15:99): weigh the two trials' own CIs")
    domains = [_risk_of_bias(rows), _inconsistency(k, i2, q_p), _indirectness(rows),
               imprecision, _publication_bias(k, small_study)]
    total = sum(d["downgrade"] for d in domains)
    level = LEVELS[max(0, len(LEVELS) - 1 - total)]
    provisional = [d["provisional_reason"] for d in domains if d["provisional"]]
    reasons = [f"−{d['downgrade']} {d['label'].lower()}" for d in domains if d["downgrade"]]
    text = (f"Suggested certainty: {level}"
            + (f" ({', '.join(reasons)})" if reasons else " (no domain rated down)")
            + (f"; provisional: {'; '.join(provisional)}" if provisional else "")
            + ". A starting point for the panel, not a GRADE judgment.")
    return {"level": level, "downgrades": total, "provisional": bool(provisional),
            "domains": domains, "text": text}
