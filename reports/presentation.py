"""What a pooled analysis shows: the one-trial rule and the HR a reader is given.

Every reader of a snapshot (the digest, /estimates, /summary, ``mmlr export sof``, the forest
plot, the CLI table, the suggested certainty) asks the same two questions, answered here once:

* **Is there between-trial variation to speak of?** (:func:`has_heterogeneity`) From two
  trials. With one, the fit's prediction interval is its CI and its I², τ² and Q are 0 by
  construction: they would tell a panel more than one trial can, so every reader shows "—"
  (or "not applicable (one trial)").
* **Which HR and CI are shown?** (:func:`shown_hr`) From two trials, the pooled ones. With one
  trial, the pooled CI is rebuilt from the trial's SE on the log scale, and so can differ from
  the paper in the last digit (printed 0.36–0.86, rebuilt 0.36–0.85): a one-trial analysis
  shows the trial's HR and CI *as printed* (``Estimate.printed``, kept in the snapshot's input
  row) when the paper printed them maintenance vs control; a reported HR entered the other way
  round (or stored before 0012) shows the stored limits, rounded; a derived HR (from medians,
  O−E, a P value or KM curves) has no printed CI, so its CI is the one computed from its SE,
  and the note says so. The pooled numbers used for computation are not touched: this is what
  is *shown*.

The metafor export asks a third (:func:`ci_used`): which CI mmlr actually computed, which with
one trial is Wald whatever was asked for (metafor's ``test="z"``; Hartung–Knapp needs k ≥ 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from reports.words import IntervalStyle, estimate_text, hr_limit, hr_number, rounded_beside

#: Where a shown HR comes from.
Source = Literal["pooled", "printed", "trial", "derived"]

#: How a derived HR came about, in a few words (the note of a one-trial analysis).
_DERIVED_WORDS = {"p_value_events": "a P value and events",
                  "hr_p_value": "a printed HR and its P value", "o_minus_e": "O−E and its variance",
                  "medians": "median survival times", "km_curves": "Kaplan–Meier curves"}


#: I² at or above which the suggested certainty rates down for inconsistency (with Q's p <
#: 0.10; reports.certainty): the line every I² shown must not be rounded across.
I2_INCONSISTENT = 50.0


def i2_text(i2: float | None, *, missing: str = "—") -> str:
    """I² as every page, export, digest and figure writes it: a whole percent, half up ("72%"),
    or with a decimal where the whole percent would cross :data:`I2_INCONSISTENT` (49.7% is
    "49.7%", not "50%", since it is not rated down; 49.96% is "49.96%"). The rule decides on
    the unrounded value; the digits shown keep its side. ``missing`` for None."""
    if i2 is None or not math.isfinite(i2):
        return missing
    return f"{rounded_beside(i2, I2_INCONSISTENT, 0)}%"


def has_heterogeneity(k: int | None) -> bool:
    """Whether an analysis of ``k`` trials has between-trial variation to speak of (prediction
    interval, I², τ², Q): from two trials."""
    return k is not None and k > 1


def is_one_trial(k: int | None) -> bool:
    """Whether an analysis rests on exactly one trial (its HR is the trial's)."""
    return k == 1


def is_two_trials(k: int | None) -> bool:
    """Whether an analysis rests on exactly two trials: its τ² and prediction interval are
    computed (metafor's t with 1 df) but say little, which a reader is told."""
    return k == 2


def ci_used(k: int | None, requested: str, stored: str | None = None) -> str:
    """The CI method mmlr computed: Wald for one trial (t with 0 df does not exist, as in
    metafor), else the stored one (``PooledResult.ci_method``, what the fit reported) or the
    requested one."""
    if is_one_trial(k):
        return "wald"
    return stored or requested


@dataclass(frozen=True)
class ShownHR:
    """An analysis' HR and 95% CI as text, where they come from, and why (``note``)."""

    hr: str
    ci_low: str | None
    ci_high: str | None
    source: Source
    note: str | None = None

    def text(self, style: IntervalStyle = "dash") -> str:
        """"0.54 (0.36–0.86)" (``dash``) or "0.54 [0.36, 0.86]" (``bracket``, figures)."""
        return estimate_text(self.hr, self.ci_low, self.ci_high, style)

    @property
    def own_ci(self) -> tuple[str, str] | None:
        """The CI limits when they are one trial's own digits (printed or reported), else
        None: words that quote the CI shown above them (the certainty's imprecision reason)
        must quote these, not the limits rebuilt from the standard error."""
        if self.source in ("printed", "trial") and self.ci_low and self.ci_high:
            return self.ci_low, self.ci_high
        return None

    @property
    def ci_values(self) -> tuple[float, float] | None:
        """The CI limits as shown, as numbers ("1.00" is 1.0, "∞" is inf), or None without a
        CI: one trial's printed limits are its data, and decisions about its CI (does it
        include HR 1) are taken on them (a pooled CI's on its computed limits)."""
        low, high = shown_limit(self.ci_low), shown_limit(self.ci_high)
        return None if low is None or high is None else (low, high)

    @property
    def includes_one(self) -> bool | None:
        """Whether the CI as shown includes HR 1 (a limit shown as 1.00 does); None without
        a CI."""
        values = self.ci_values
        return None if values is None else values[0] <= 1.0 <= values[1]

    def to_json(self) -> dict[str, Any]:
        return {"hr": self.hr, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "text": self.text(), "source": self.source, "note": self.note}


def shown_limit(text: str | None) -> float | None:
    """A limit as written by ``reports.words.hr_number`` ("0.86", "0.0042", "1e-05", "∞")
    as a number; None for a missing one ("—") or text that is not a number."""
    if text is None:
        return None
    text = text.strip()
    if text in ("∞", "-∞"):
        return math.inf if text == "∞" else -math.inf
    try:
        value = float(text)
    except ValueError:
        return None
    return value if not math.isnan(value) else None


def _exp(log_value: float | None) -> float | None:
    if log_value is None or not math.isfinite(log_value):
        return None
    try:
        return math.exp(log_value)
    except OverflowError:
        return math.inf


def printed_of(row: dict[str, Any]) -> dict[str, str] | None:
    """The HR and CI of a snapshot input row as the paper printed them (maintenance vs
    control), or None: entered the other way round, derived, or stored before 0012."""
    printed = row.get("printed")
    if not isinstance(printed, dict):
        return None
    values = [printed.get(name) for name in ("hr", "ci_low", "ci_high")]
    if not all(isinstance(v, str) and v.strip() for v in values):
        return None
    return {"hr": str(values[0]).strip(), "ci_low": str(values[1]).strip(),
            "ci_high": str(values[2]).strip()}


def trial_hr(row: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """One pooled trial's HR and CI as a table row or a forest-plot row shows them: two
    decimals, rounded half-up from the printed digits when the snapshot kept them (1.025 →
    "1.03"), else from the stored numbers."""
    printed = printed_of(row)
    source: dict[str, Any] = printed if printed else row
    hr = source.get("hr")
    if hr is None and row.get("yi") is not None:
        hr = _exp(float(row["yi"]))
    low, high = source.get("ci_low"), source.get("ci_high")
    if low is None or high is None:
        return hr_number(hr), None, None
    return hr_number(hr), hr_number(low), hr_number(high)


def shown_hr(k: int | None, estimate: float | None, ci_low: float | None,
             ci_high: float | None, inputs: list[dict[str, Any]] | None) -> ShownHR:
    """The HR and CI an analysis shows (see the module docstring): ``estimate`` and the CI
    are the pooled log-scale values, ``inputs`` the snapshot's input rows."""
    rows = [r for r in inputs or [] if isinstance(r, dict)]
    if is_one_trial(k) and len(rows) == 1:
        row = rows[0]
        printed = printed_of(row)
        if printed:
            return ShownHR(printed["hr"], printed["ci_low"], printed["ci_high"], "printed",
                           "one trial: its HR and CI as printed in the paper")
        method = str(row.get("method") or "reported_ci")
        if method == "reported_ci" and row.get("ci_low") and row.get("ci_high") \
                and row.get("hr"):
            return ShownHR(hr_number(row["hr"]), hr_number(row["ci_low"]),
                           hr_number(row["ci_high"]), "trial",
                           "one trial: its reported HR and CI")
        how = _DERIVED_WORDS.get(method, method.replace("_", " "))
        return ShownHR(hr_number(_exp(estimate), missing="not estimable"),
                       hr_limit(_exp(ci_low), lower=True) if ci_low is not None else None,
                       hr_limit(_exp(ci_high), lower=False) if ci_high is not None else None,
                       "derived",
                       f"one trial, HR derived from {how}: the paper printed no CI for it, "
                       "so the 95% CI is computed from its standard error")
    if estimate is None or not math.isfinite(estimate):
        return ShownHR("not estimable", None, None, "pooled")
    has_ci = ci_low is not None and ci_high is not None
    # Limits computed, not printed: written so that they stay on their side of HR 1
    # (``hr_limit``), as the words that decide on them ("excludes 1") read them.
    return ShownHR(hr_number(_exp(estimate)),
                   hr_limit(_exp(ci_low), lower=True) if has_ci else None,
                   hr_limit(_exp(ci_high), lower=False) if has_ci else None, "pooled")


def t_with_one_df(k: int | None, ci_used: str | None) -> bool:
    """Whether an analysis' CI is Hartung–Knapp's with two trials: t with 1 degree of freedom
    (critical value 12.7), wide by construction whatever the trials show."""
    return k == 2 and ci_used in ("hksj", "hksj-adhoc")


def one_trial_numbers(row: Any) -> tuple[float, float, float] | None:
    """The HR and CI limits one trial's analysis shows (printed, or reported), as numbers, for
    what is computed from the shown values (the absolute effect); None for a pooled or a
    derived HR, whose shown values are the computed ones."""
    rows = [r for r in row.inputs or [] if isinstance(r, dict)]
    if not (is_one_trial(row.k) and len(rows) == 1):
        return None
    printed = printed_of(rows[0])
    source: dict[str, Any] | None = printed if printed else (
        rows[0] if str(rows[0].get("method") or "reported_ci") == "reported_ci" else None)
    try:
        numbers = tuple(float(source[name]) for name in ("hr", "ci_low", "ci_high")) \
            if source else None
    except (KeyError, TypeError, ValueError):
        return None
    if numbers is None or not all(math.isfinite(x) and x > 0 for x in numbers):
        return None
    return numbers[0], numbers[1], numbers[2]


def shown_hr_of(row: Any) -> ShownHR:
    """:func:`shown_hr` of a stored snapshot (``store.models.PooledResult``)."""
    return shown_hr(row.k, row.estimate, row.ci_low, row.ci_high, row.inputs)


def fit_notes(row: Any) -> list[str]:
    """What the fit said about itself (``reports.meta``: one trial's Wald interval, two trials'
    t with 1 df, an HKSJ interval narrower than Wald's, ...) as a stored snapshot
    (``store.models.PooledResult``) keeps it; empty for snapshots stored before it was kept."""
    result = row.result if isinstance(row.result, dict) else {}
    notes = result.get("notes")
    return [str(n) for n in notes] if isinstance(notes, list) else []


def shown_fit_notes(k: int | None, notes: list[Any] | None) -> list[str]:
    """The fit's notes a reader is shown beside the pooled HR (the digest, the summary of
    findings, ``mmlr pool``'s table, ``/estimates``): all of them from two trials; none for one
    trial, whose HR and CI are the paper's (its line says so) and whose Wald interval's note
    adds nothing a reader needs."""
    return [str(n) for n in notes or []] if has_heterogeneity(k) else []
