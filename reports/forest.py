"""Forest plots (matplotlib, Agg, Figure objects only: no pyplot state).

``render_forest(obj, fmt="png"|"svg") -> bytes`` draws a stored
:class:`store.models.PooledResult`, a :class:`reports.meta.MetaResult` or a
:class:`reports.meta_cli.MetaCsvResult`: one row per study (HR, 95% CI, weight, a square
whose area is proportional to the weight), subgroup diamonds when the rows have subgroups,
the overall diamond with its prediction interval, the heterogeneity line, the test for
subgroup differences, and "favours maintenance / favours control" under a log axis.
PNGs are 640 px wide, the width of an e-mail column.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import Polygon
from matplotlib.ticker import FixedLocator, NullLocator
from matplotlib.transforms import blended_transform_factory

from reports.figures import DPI, WIDTH_IN, figure_bytes
from reports.meta import Z95
from reports.presentation import has_heterogeneity, i2_text, is_one_trial, shown_hr_of, trial_hr
from reports.words import estimate_text, hr_ci_text, hr_number, interval_text, plural, rounded
from store.errors import PoolingError
from store.text import shorten_to_width

ROW_IN = 0.22
_MARK_EFS = "†"
_MARK_APPROX = "‡"
_LABELS = {"post_asct": "Post-ASCT", "non_transplant": "Non-transplant", "mixed": "Mixed"}
# RoB 2 overall judgment: a sign (readable in grey print and without colour vision) on a
# traffic-light disc, as RoB 2's own figures do.
_ROB = {"low": ("+", "#2e7d32"), "some_concerns": ("!", "#c79100"), "high": ("−", "#b22222"),
        None: ("?", "0.6")}


@dataclass
class ForestRow:
    label: str
    hr: float
    lo: float
    hi: float
    weight: float | None
    subgroup: str | None = None
    flags: Sequence[str] = ()
    risk_of_bias: str | None = None  # RoB 2 overall: low | some_concerns | high
    # "0.55 [0.36, 0.86]" as the label shows it, when it is not the numbers above rounded
    # (a trial's HR from its printed digits: reports.presentation.trial_hr)
    text: str | None = None


@dataclass
class Diamond:
    label: str
    hr: float
    lo: float
    hi: float
    k: int
    pi: tuple[float, float] | None = None
    note: str = ""
    text: str | None = None  # as ForestRow.text (one trial: its HR as printed)


@dataclass
class ForestData:
    title: str
    rows: list[ForestRow]
    overall: Diamond
    subgroups: list[Diamond] = field(default_factory=list)
    heterogeneity: str = ""
    subgroup_test: str | None = None
    method_line: str = ""


# ----------------------------------------------------------------------------- adapters
def _fmt_p(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "p = n/a"
    return "p < 0.001" if p < 0.001 else f"p = {rounded(p, 3)}"


def _het_line(tau2: float | None, i2: float | None, q: float | None, df: int,
              q_p: float | None) -> str:
    if not has_heterogeneity(df + 1) or q is None:  # df = k − 1
        return "Heterogeneity: not applicable (one study)"
    tau = f"τ² = {rounded(tau2, 3)}; " if tau2 is not None else ""
    return (f"Heterogeneity: {tau}I² = {i2_text(i2 or 0.0)}; Q = {rounded(q)}, df = {df}, "
            f"{_fmt_p(q_p)}")


def _method_line(method: str, ci: str) -> str:
    names = {"hksj": "HKSJ", "hksj-adhoc": "HKSJ (ad hoc)", "wald": "Wald"}
    model = "fixed effect" if method == "FE" else f"random effects ({method})"
    return f"Inverse variance, {model}, {names.get(ci, ci)} CI"


def _from_meta(res: Any, title: str, subgroup: str | None = None) -> list[ForestRow]:
    return [ForestRow(label, math.exp(y), math.exp(y - Z95 * s), math.exp(y + Z95 * s), w,
                      subgroup)
            for label, y, s, w in zip(res.labels, res.yi, res.sei, res.weights, strict=True)]


def _diamond_from_meta(res: Any, label: str) -> Diamond:
    pi = None
    if res.pi_low is not None and math.isfinite(res.pi_low) and has_heterogeneity(res.k):
        pi = (math.exp(res.pi_low), math.exp(res.pi_high))
    return Diamond(label, math.exp(res.estimate), math.exp(res.ci_low), math.exp(res.ci_high),
                   res.k, pi)


def _from_pooled(p: Any) -> ForestData:
    if p.k == 0 or p.estimate is None:
        raise PoolingError(f"analysis {p.analysis_key!r} has no pooled estimate to plot")
    extras = p.result or {}
    rows = [ForestRow(r["trial"], r["hr"], r["ci_low"], r["ci_high"], r.get("weight"),
                      r.get("subgroup"), r.get("flags") or (), r.get("risk_of_bias"),
                      text=estimate_text(*trial_hr(r), style="bracket"))
            for r in p.inputs]
    pi = ((math.exp(p.pi_low), math.exp(p.pi_high))
          if p.pi_low is not None and has_heterogeneity(p.k) else None)
    # One trial: the label is its HR and CI as printed (reports.presentation); the diamond
    # is drawn from the pooled numbers, which it matches to the printed precision.
    overall = Diamond("Overall", math.exp(p.estimate), math.exp(p.ci_low), math.exp(p.ci_high),
                      p.k, pi, text=shown_hr_of(p).text("bracket"))
    if is_one_trial(p.k) and len(rows) == 1:
        rows[0].text = overall.text  # the trial's row and the result say the same digits
    subgroups = [
        Diamond(_LABELS.get(s["name"], s["name"]), s["hr"], s["hr_ci_low"], s["hr_ci_high"],
                s["k"], note=f"I² = {i2_text(s['i2'])}" if has_heterogeneity(s["k"]) else "")
        for s in extras.get("subgroups") or []
    ]
    test = extras.get("subgroup_test")
    return ForestData(
        title=p.analysis_label or p.analysis_key, rows=rows, overall=overall,
        subgroups=subgroups,
        heterogeneity=_het_line(p.tau2, p.i2, p.q, p.k - 1, p.q_p),
        subgroup_test=(f"Test for subgroup differences: Q = {rounded(test['q'])}, "
                       f"df = {test['df']}, {_fmt_p(test['p'])}") if test else None,
        method_line=_method_line(p.method, extras.get("ci_used") or p.ci_method),
    )


def _from_csv_result(r: Any) -> ForestData:
    groups = [(name, res) for name, res in r.analyses if name != "all"]
    overall_res = dict(r.analyses)["all"]
    rows: list[ForestRow] = []
    if groups:
        for name, res in groups:
            rows += _from_meta(res, name, subgroup=name)
        # weights of the overall model, in the same study order as the subgroup rows
        overall_w = dict(zip(overall_res.labels, overall_res.weights, strict=True))
        for row in rows:
            row.weight = overall_w.get(row.label, row.weight)
    else:
        rows = _from_meta(overall_res, "all")
    test = r.subgroup_test
    return ForestData(
        title=r.title, rows=rows, overall=_diamond_from_meta(overall_res, "Overall"),
        subgroups=[_diamond_from_meta(res, name) for name, res in groups],
        heterogeneity=_het_line(overall_res.tau2 if r.method != "FE" else None,
                                overall_res.i2, overall_res.q, overall_res.q_df,
                                overall_res.q_p),
        subgroup_test=(f"Test for subgroup differences: Q = {rounded(test.q)}, df = {test.df}, "
                       f"{_fmt_p(test.p)}") if test else None,
        method_line=_method_line(r.method, overall_res.ci),
    )


def forest_data(obj: Any, title: str | None = None) -> ForestData:
    """Adapt a PooledResult, MetaResult or MetaCsvResult to what the plot draws."""
    if hasattr(obj, "analysis_key"):
        data = _from_pooled(obj)
    elif hasattr(obj, "analyses") and hasattr(obj, "subgroup_test"):
        data = _from_csv_result(obj)
    elif hasattr(obj, "yi") and hasattr(obj, "estimate"):
        data = ForestData(
            title="Meta-analysis", rows=_from_meta(obj, "all"),
            overall=_diamond_from_meta(obj, "Overall"),
            heterogeneity=_het_line(obj.tau2 if obj.method != "FE" else None, obj.i2, obj.q,
                                    obj.q_df, obj.q_p),
            method_line=_method_line(obj.method, obj.ci),
        )
    else:
        raise PoolingError(f"cannot draw a forest plot of a {type(obj).__name__}")
    if title:
        data.title = title
    return data


# ----------------------------------------------------------------------------- drawing
def render_forest(pooled: Any, *, fmt: str = "png", title: str | None = None) -> bytes:
    """The forest plot of ``pooled`` as PNG (e-mail) or SVG (web) bytes."""
    if fmt not in ("png", "svg"):
        raise PoolingError(f"unknown forest plot format {fmt!r}", hint="use png or svg")
    data = forest_data(pooled, title)
    fig = _draw(data)
    return figure_bytes(fig, fmt)


def _layout(data: ForestData) -> list[tuple[str, Any]]:
    """Top-to-bottom list of (kind, payload) lines."""
    lines: list[tuple[str, Any]] = []
    by_group: dict[str | None, list[ForestRow]] = {}
    if data.subgroups:
        for row in data.rows:
            by_group.setdefault(row.subgroup, []).append(row)
        for diamond in data.subgroups:
            key = next((g for g in by_group if _LABELS.get(g or "", g) == diamond.label
                        or g == diamond.label), None)
            lines.append(("heading", diamond.label))
            lines += [("study", r) for r in by_group.get(key, [])]
            lines.append(("subtotal", diamond))
            lines.append(("gap", None))
    else:
        lines += [("study", r) for r in data.rows]
        lines.append(("gap", None))
    lines.append(("overall", data.overall))
    if data.overall.pi:
        lines.append(("pi", data.overall))
    return lines


def _onto(value: float, lo: float, hi: float) -> float:
    """``value`` clamped onto the axis from ``lo`` to ``hi``."""
    return min(max(value, lo), hi)


def _draw(data: ForestData) -> Figure:
    lines = _layout(data)
    footer = [t for t in (data.heterogeneity, data.subgroup_test, data.method_line) if t]
    marks = {f for r in data.rows for f in r.flags}
    notes = []
    if marks & {"EFS", "TTP"}:
        notes.append(f"{_MARK_EFS} EFS or TTP in place of PFS")
    if "approximate" in marks:
        notes.append(f"{_MARK_APPROX} approximate (derived, not a reported CI)")
    if notes:
        footer.append("; ".join(notes))
    # The RoB column appears once any result of the analysis has been assessed.
    show_rob = any(r.risk_of_bias for r in data.rows)
    if show_rob:
        footer.append("Risk of bias (RoB 2, overall): + low, ! some concerns, − high, "
                      "? not assessed")
    n = len(lines)
    head_in, axis_in = 0.55, 0.62
    foot_in = 0.17 * len(footer) + 0.1
    height = head_in + n * ROW_IN + axis_in + foot_in
    fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI)
    bottom = (axis_in + foot_in) / height
    ax = fig.add_axes((0.37, bottom, 0.30, n * ROW_IN / height))
    ax.set_ylim(n - 0.5, -0.5)

    values = [v for r in data.rows for v in (r.lo, r.hi)] + [data.overall.lo, data.overall.hi]
    if data.overall.pi:
        values += list(data.overall.pi)
    lo = max(min([*values, 0.5]) / 1.15, 0.02)
    hi = min(max([*values, 2.0]) * 1.15, 50.0)
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    # Fewer ticks on a wide axis, so the labels never collide at 640 px.
    candidates = ((0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50)
                  if math.log10(hi / lo) <= 1.7 else (0.02, 0.1, 0.5, 1, 2, 10, 50))
    ticks = [t for t in candidates if lo <= t <= hi]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{t:g}" for t in ticks], fontsize=7)
    ax.axvline(1.0, color="0.25", lw=0.8, zorder=1)
    ax.axvline(data.overall.hr, color="0.55", lw=0.7, ls=(0, (3, 2)), zorder=1)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)

    text_tf = blended_transform_factory(fig.transFigure, ax.transData)
    max_w = max((r.weight or 0.0) for r in data.rows) or 1.0

    def put(x: float, y: float, s: str, **kw: Any) -> None:
        kw.setdefault("fontsize", 7.5)
        kw.setdefault("va", "center")
        ax.text(x, y, s, transform=text_tf, parse_math=False, clip_on=False, **kw)

    # Column headers, above the first row.
    head_y = -0.5 - 0.3 / ROW_IN * 0.5
    put(0.015, head_y, "Study", fontweight="bold")
    put(0.69, head_y, "HR [95% CI]", fontweight="bold")
    put(0.985, head_y, "Weight", fontweight="bold", ha="right")
    if show_rob:
        put(0.345, head_y, "RoB", fontweight="bold", ha="center")
    fig.text(0.015, 1 - 0.2 / height, data.title, fontsize=8.5, fontweight="bold", va="center",
             parse_math=False)

    for y, (kind, item) in enumerate(lines):
        if kind == "heading":
            put(0.015, y, item, fontweight="bold", style="italic")
        elif kind == "study":
            r: ForestRow = item
            mark = (_MARK_EFS if {"EFS", "TTP"} & set(r.flags) else "") + (
                _MARK_APPROX if "approximate" in r.flags else "")
            put(0.03 if data.subgroups else 0.015, y, shorten_to_width(r.label, 30) + mark)
            put(0.69, y, r.text or hr_ci_text(r.hr, r.lo, r.hi, "bracket"))
            if show_rob:
                rob_mark, colour = _ROB.get(r.risk_of_bias, _ROB[None])
                put(0.345, y, rob_mark, ha="center", color="white", fontweight="bold",
                    bbox={"boxstyle": "circle,pad=0.15", "fc": colour, "ec": "none"})
            if r.weight is not None:
                put(0.985, y, f"{rounded(r.weight, 1)}%", ha="right")
            # Both ends onto the axis: a CI wholly beyond an edge is then only its arrow
            # there (matplotlib clips to the axes, but the data should not rely on it).
            ax.plot([_onto(r.lo, lo, hi), _onto(r.hi, lo, hi)], [y, y], color="black",
                    lw=0.9, zorder=2, solid_capstyle="butt")
            for end, limit, sign in ((r.lo, lo, -1), (r.hi, hi, 1)):
                if (end < limit) if sign < 0 else (end > limit):  # clipped: draw an arrow
                    ax.annotate("", xy=(limit, y), xytext=(limit * (1.25 ** -sign), y),
                                arrowprops={"arrowstyle": "->", "lw": 0.9})
            size = 3.0 + 7.0 * math.sqrt((r.weight or max_w * 0.3) / max_w)
            if lo < r.hr < hi:
                ax.plot([r.hr], [y], marker="s", ms=size, color="#1f4e79", zorder=3, lw=0)
        elif kind in ("subtotal", "overall"):
            d: Diamond = item
            bold = kind == "overall"
            text = d.label if bold else f"Subtotal ({plural(d.k, 'trial')})"
            if d.note:
                text += f"; {d.note}"
            put(0.015 if bold else 0.03, y, text, fontweight="bold" if bold else "normal")
            put(0.69, y, d.text or hr_ci_text(d.hr, d.lo, d.hi, "bracket"),
                fontweight="bold" if bold else "normal")
            if bold:
                put(0.985, y, "100%", ha="right", fontweight="bold")
            colour = "#b22222" if bold else "#6b8fb3"
            ax.add_patch(Polygon([(max(d.lo, lo), y), (d.hr, y - 0.32), (min(d.hi, hi), y),
                                  (d.hr, y + 0.32)], closed=True, color=colour, zorder=3))
        elif kind == "pi":
            d = item
            put(0.03, y, f"95% prediction interval (k = {d.k})", style="italic")
            assert d.pi is not None
            put(0.69, y, interval_text(hr_number(d.pi[0]), hr_number(d.pi[1]), "bracket"),
                style="italic")
            ax.plot([_onto(d.pi[0], lo, hi), _onto(d.pi[1], lo, hi)], [y, y],
                    color="#b22222", lw=2.2, zorder=2, solid_capstyle="butt", alpha=0.55)

    # Favours labels under the tick labels, either side of HR = 1 (offsets in points, so
    # they sit at the same distance whatever the number of rows).
    for text, x, ha in (("← favours maintenance", 1.0 / 1.06, "right"),
                        ("favours control →", 1.06, "left")):
        ax.annotate(text, xy=(x, 0), xycoords=("data", "axes fraction"), xytext=(0, -15),
                    textcoords="offset points", ha=ha, va="top", fontsize=7,
                    annotation_clip=False)
    ax.annotate("Hazard ratio (log scale)", xy=(0.5, 0), xycoords="axes fraction",
                xytext=(0, -27), textcoords="offset points", ha="center", va="top",
                fontsize=6.5, color="0.3")
    for i, line in enumerate(footer):
        fig.text(0.015, (foot_in - 0.12 - 0.17 * i) / height, line, fontsize=7, va="center",
                 parse_math=False, color="0.15")
    return fig

