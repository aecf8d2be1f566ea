"""The contour-enhanced funnel plot of one analysis (matplotlib, Agg, Figure objects only).

``render_funnel(inputs, small_study, estimate=..., fmt="png"|"svg") -> bytes`` draws a
snapshot's pooled trials (``PooledResult.inputs``: ``trial``, ``yi`` = log HR, ``sei``) beside
its small-study view (``result["small_study"]``, :func:`reports.small_study.small_study_effects`);
``funnel_figure`` gives the Figure. Following Peters et al. (J Clin Epidemiol 2008;61:991–6):

* x is the hazard ratio on a log axis, y the standard error of the log HR with 0 at the top,
  so the large trials sit at the top and the small ones spread out below;
* the shaded contours are where a trial's own two-sided p against HR 1 would be 0.10–0.05,
  0.05–0.01 and < 0.01. Missing trials in the unshaded (non-significant) area point to
  publication bias; missing trials in shaded areas point to another cause of asymmetry;
* the observed trials are filled dots, the trials trim-and-fill imputes open circles;
* the vertical line is the pooled HR of the snapshot and the dashed lines the pseudo 95%
  limits around it (estimate ± 1.96 × SE), inside which about 95% of the trials would fall
  without heterogeneity or bias. Trials outside them are labelled with their names (metafor's
  ``funnel(label = "out")``), so the reader can find them in the trials table;
* the caption is the view's ``summary`` sentence.

PNGs are 640 px wide, like the forest plots. The tests' numbers are the view's, never
recomputed here: the plot and the page cannot disagree.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, NullLocator

from reports.figures import DPI, WIDTH_IN, figure_bytes
from reports.meta import Z95
from reports.monitoring_view import number
from store.errors import PoolingError
from store.text import shorten

#: The contour bands: (label, lower z, upper z, shade). The unshaded middle is p ≥ 0.10.
_Z90, _Z99 = NormalDist().inv_cdf(0.95), NormalDist().inv_cdf(0.995)
_BANDS = (("p 0.10–0.05", _Z90, Z95, "#e8e8e8"),
          ("p 0.05–0.01", Z95, _Z99, "#d0d0d0"),
          ("p < 0.01", _Z99, math.inf, "#b5b5b5"))
_TRIAL_COLOUR = "#1f4e79"
_FILLED_COLOUR = "#b22222"
# Inches of each part of the figure, top to bottom (the caption grows with its text).
_TITLE_IN, _AXES_IN, _XLABEL_IN, _LEGEND_IN, _CAPTION_LINE_IN = 0.38, 2.7, 0.5, 0.5, 0.15
_CAPTION_CHARS = 118  # what fits in 6.2 in at 6.8 pt
_LABEL_CHARS = 24


@dataclass(frozen=True)
class FunnelPoint:
    """One trial on the plot: its log HR, its SE and (observed trials only) its name."""

    yi: float
    sei: float
    label: str = ""


# ----------------------------------------------------------------------------- drawing
def render_funnel(inputs: Sequence[dict[str, Any]] | None, small_study: dict[str, Any] | None,
                  *, estimate: float | None, fmt: str = "png",
                  title: str | None = None) -> bytes:
    """The funnel plot as PNG (e-mail) or SVG (web) bytes; ``estimate`` is the snapshot's
    pooled log HR, the centre of the pseudo 95% limits."""
    if fmt not in ("png", "svg"):
        raise PoolingError(f"unknown funnel plot format {fmt!r}", hint="use png or svg")
    # Text stays text in the SVG (reports.figures), escaped by matplotlib: trial names come
    # from curators and PubMed.
    return figure_bytes(funnel_figure(inputs, small_study, estimate=estimate, title=title), fmt)


def funnel_figure(inputs: Sequence[dict[str, Any]] | None, small_study: dict[str, Any] | None,
                  *, estimate: float | None, title: str | None = None) -> Figure:
    """The funnel plot as a matplotlib Figure (not attached to pyplot).

    PoolingError when the snapshot has no small-study view (stored before it existed), when the
    view says a funnel plot is not available (fewer than 3 trials), or when there is no pooled
    estimate or no trial with a finite log HR and a positive SE.
    """
    if not isinstance(small_study, dict):
        raise PoolingError("there is no small-study view to plot",
                           hint="snapshots from before small-study effects existed have none; "
                           "run `mmlr pool` to compute it")
    if not small_study.get("available"):
        raise PoolingError("a funnel plot is not available for this analysis",
                           hint=str(small_study.get("reason") or "too few trials"))
    centre = number(estimate)
    if centre is None:
        raise PoolingError("the analysis has no pooled estimate to centre the funnel on")
    observed = observed_points(inputs)
    if not observed:
        raise PoolingError("the analysis has no trial with a log HR and a standard error to plot",
                           hint="run `mmlr pool` to store them")
    return _draw(observed, filled_points(small_study), small_study, centre,
                 title or "Funnel plot")


def observed_points(inputs: Sequence[dict[str, Any]] | None) -> list[FunnelPoint]:
    """The snapshot's trials that can be placed: finite log HR, positive finite SE."""
    points = []
    for row in inputs or []:
        if not isinstance(row, dict):
            continue
        yi, sei = number(row.get("yi")), number(row.get("sei"))
        if yi is not None and sei is not None and sei > 0:
            points.append(FunnelPoint(yi, sei, str(row.get("trial") or "")))
    return points


def filled_points(small_study: dict[str, Any]) -> list[FunnelPoint]:
    """The trials trim-and-fill imputed (none when it filled none or could not run)."""
    tf = small_study.get("trim_fill")
    filled = tf.get("filled") if isinstance(tf, dict) else None
    points = []
    for row in filled if isinstance(filled, list) else []:
        yi = number(row.get("yi")) if isinstance(row, dict) else None
        sei = number(row.get("sei")) if isinstance(row, dict) else None
        if yi is not None and sei is not None and sei > 0:
            points.append(FunnelPoint(yi, sei))
    return points


def _draw(observed: list[FunnelPoint], filled: list[FunnelPoint], view: dict[str, Any],
          centre: float, title: str) -> Figure:
    caption = _caption(view)
    caption_in = _CAPTION_LINE_IN * len(caption) + 0.08
    height = _TITLE_IN + _AXES_IN + _XLABEL_IN + _LEGEND_IN + caption_in
    fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI)
    bottom = (_XLABEL_IN + _LEGEND_IN + caption_in) / height
    ax = fig.add_axes((0.1, bottom, 0.87, _AXES_IN / height))

    points = observed + filled
    se_max = max(p.sei for p in points) * 1.08
    lo, hi = _x_limits(points, centre, se_max)
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(se_max, 0)  # inverted: precise trials at the top
    _set_hr_ticks(ax, lo, hi)
    ax.tick_params(labelsize=7)
    for side in ("right", "top"):
        ax.spines[side].set_visible(False)

    handles: list[Any] = _contours(ax, se_max, lo, hi)
    handles += _trials(ax, observed, filled, view)
    handles += _reference_lines(ax, centre, se_max, view)
    _label_outliers(ax, observed, centre)

    ax.set_xlabel("Hazard ratio (maintenance vs control, log scale)", fontsize=7.5)
    ax.set_ylabel("Standard error of log HR", fontsize=7.5)
    fig.text(0.015, 1 - _TITLE_IN / 2 / height, title, fontsize=8.5, fontweight="bold",
             va="center", parse_math=False)
    legend = fig.legend(handles=handles, loc="upper left",
                        bbox_to_anchor=(0.09, (_LEGEND_IN + caption_in) / height), ncols=3,
                        fontsize=6.5, frameon=False, handlelength=2.0, columnspacing=1.2)
    for text in legend.get_texts():
        text.set_parse_math(False)
    for i, line in enumerate(caption):
        fig.text(0.015, (caption_in - 0.1 - _CAPTION_LINE_IN * i) / height, line, fontsize=6.8,
                 va="center", color="0.15", parse_math=False)
    return fig


def _caption(view: dict[str, Any]) -> list[str]:
    """The view's summary, wrapped to the figure's width, then how to read the plot."""
    summary = str(view.get("summary") or "No test could be computed.")
    return [*textwrap.wrap(summary, _CAPTION_CHARS),
            "Shading: a trial's two-sided p against HR 1. Dashed: pseudo 95% limits around the "
            "pooled HR; trials outside them are named."]


def _x_limits(points: list[FunnelPoint], centre: float, se_max: float) -> tuple[float, float]:
    """HR limits holding every trial, HR 1 and the pseudo 95% limits at the largest SE,
    padded; kept within 0.02–50 like the forest plot (a wider axis would hide the trials)."""
    logs = [p.yi for p in points] + [0.0, centre - Z95 * se_max, centre + Z95 * se_max]
    lo = max(math.exp(min(logs)) / 1.15, 0.02)
    hi = min(math.exp(max(logs)) * 1.15, 50.0)
    return lo, hi


def _set_hr_ticks(ax: Axes, lo: float, hi: float) -> None:
    """Ticks labelled as HRs, denser on a narrow axis so that there are always a few."""
    span = math.log10(hi / lo)
    if span <= 0.9:
        candidates: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1, 1.25, 1.5, 2, 3)
    elif span <= 1.3:
        candidates = (0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10)
    elif span <= 1.7:
        candidates = (0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50)
    else:
        candidates = (0.02, 0.1, 0.5, 1, 2, 10, 50)
    ticks = [t for t in candidates if lo <= t <= hi]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{t:g}" for t in ticks])


def _contours(ax: Axes, se_max: float, lo: float, hi: float) -> list[Any]:
    """Shade, on both sides of HR 1, where |log HR| / SE falls in each band; the outermost
    band runs to the edge of the axis."""
    se = np.linspace(0.0, se_max, 60)
    handles = []
    for label, z_low, z_high, shade in _BANDS:
        inner = np.exp(z_low * se)
        outer = np.full_like(se, hi) if math.isinf(z_high) else np.exp(z_high * se)
        ax.fill_betweenx(se, inner, np.minimum(outer, hi), color=shade, lw=0, zorder=0)
        inner_left = np.exp(-z_low * se)
        outer_left = np.full_like(se, lo) if math.isinf(z_high) else np.exp(-z_high * se)
        ax.fill_betweenx(se, np.maximum(outer_left, lo), inner_left, color=shade, lw=0,
                         zorder=0)
        handles.append(Patch(facecolor=shade, edgecolor="none", label=label))
    return handles


def _trials(ax: Axes, observed: list[FunnelPoint], filled: list[FunnelPoint],
            view: dict[str, Any]) -> list[Any]:
    (dots,) = ax.plot([math.exp(p.yi) for p in observed], [p.sei for p in observed], lw=0,
                      marker="o", ms=5, color=_TRIAL_COLOUR, mec="white", mew=0.5, zorder=4,
                      label=f"trials (k = {len(observed)})")
    handles: list[Any] = [dots]
    if filled:
        tf = view.get("trim_fill") or {}
        k0 = tf.get("k0") if isinstance(tf.get("k0"), int) else len(filled)
        (circles,) = ax.plot([math.exp(p.yi) for p in filled], [p.sei for p in filled], lw=0,
                             marker="o", ms=5, mfc="white", mec=_FILLED_COLOUR, mew=1.1,
                             zorder=4, label=f"filled by trim-and-fill (k0 = {k0})")
        handles.append(circles)
    return handles


def _reference_lines(ax: Axes, centre: float, se_max: float,
                     view: dict[str, Any]) -> list[Any]:
    """HR 1 (thin, where the contours meet), the pooled HR, the pseudo 95% limits and, when
    trim-and-fill added trials, its adjusted HR."""
    ax.axvline(1.0, color="0.45", lw=0.6, zorder=1)
    pooled = ax.axvline(math.exp(centre), color="black", lw=1.1, zorder=3,
                        label=f"pooled HR {math.exp(centre):.2f}")
    # One inverted V: both limits meet at the pooled HR at SE 0.
    (pseudo,) = ax.plot([math.exp(centre - Z95 * se_max), math.exp(centre),
                         math.exp(centre + Z95 * se_max)], [se_max, 0.0, se_max], color="0.15",
                        lw=0.9, ls=(0, (4, 3)), zorder=3, label="pseudo 95% limits")
    handles: list[Any] = [pooled, pseudo]
    tf = view.get("trim_fill")
    adjusted = number(tf.get("estimate")) if isinstance(tf, dict) and tf.get("k0") else None
    if adjusted is not None:
        handles.append(ax.axvline(math.exp(adjusted), color=_FILLED_COLOUR, lw=0.9,
                                  ls=(0, (1, 1.5)), zorder=3,
                                  label=f"HR with the filled trials {math.exp(adjusted):.2f}"))
    return handles


def _label_outliers(ax: Axes, observed: list[FunnelPoint], centre: float) -> None:
    for p in observed:
        if abs(p.yi - centre) > Z95 * p.sei and p.label:
            ax.annotate(shorten(p.label, _LABEL_CHARS), xy=(math.exp(p.yi), p.sei), xytext=(4, 2),
                        textcoords="offset points", fontsize=6, color="0.1", zorder=5,
                        parse_math=False)

