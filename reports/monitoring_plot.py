"""The sequential-monitoring graph of one analysis (matplotlib, Agg, Figure objects only).

``render_monitoring(monitoring, fmt="png"|"svg") -> bytes`` draws the ``monitoring`` view
that :func:`reports.sequential.monitor` stores in a snapshot's result (``monitoring_figure``
gives the Figure): the cumulative Z-curve (one point per look, joined), the two-sided
monitoring boundaries ±b through the looks that have one, the conventional ±z₁₋α/₂ lines
(dashed), a vertical line at the required information, a legend and a caption with the plan.
The x axis is the accrued information in events-equivalent (4 × Σ 1/SEᵢ²), with the
information fraction on the top axis. Boundaries at tiny first looks can be far outside any
useful range (±13.9 at 2% of the information): the y range follows the Z-curve and the
boundaries up to :data:`BOUNDARY_CAP`, and a boundary beyond it leaves the plot, its value
printed at the edge. PNGs are 640 px wide, like the forest plots.

Monitoring only: the graph sits beside the primary (conventional) analysis, never instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from statistics import NormalDist
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reports.figures import DPI, WIDTH_IN, figure_bytes
from reports.monitoring_view import number, plan_line
from store.errors import PoolingError

#: Boundaries above this |Z| do not widen the y axis (they are printed at its edge instead).
BOUNDARY_CAP = 6.0
HEIGHT_IN = 4.0

_Z_COLOUR = "#1f4e79"
_BOUND_COLOUR = "#b22222"
_REQUIRED_COLOUR = "#2e7d32"


# ----------------------------------------------------------------------------- drawing
def render_monitoring(monitoring: dict[str, Any] | None, *, fmt: str = "png",
                      title: str | None = None) -> bytes:
    """The monitoring graph of ``monitoring`` as PNG (e-mail) or SVG (web) bytes."""
    if fmt not in ("png", "svg"):
        raise PoolingError(f"unknown monitoring plot format {fmt!r}", hint="use png or svg")
    return figure_bytes(monitoring_figure(monitoring, title=title), fmt)


def monitoring_figure(monitoring: dict[str, Any] | None, *, title: str | None = None) -> Figure:
    """The graph as a matplotlib Figure (not attached to pyplot); PoolingError when the view
    has no look with both its information and its Z."""
    if not isinstance(monitoring, dict):
        raise PoolingError("there is no monitoring view to plot",
                           hint="snapshots from before monitoring existed have none; "
                           "run `mmlr pool` to compute it")
    points = [lk for lk in monitoring.get("looks") or [] if isinstance(lk, dict)
              and number(lk.get("events_equivalent")) is not None
              and number(lk.get("z")) is not None]
    if not points:
        raise PoolingError("this monitoring view has no looks to plot",
                           hint="a look needs its information and its Z; run `mmlr pool`")
    return _draw(monitoring, points, title or "Sequential monitoring")


def _conventional_z(monitoring: dict[str, Any]) -> float:
    plan = monitoring.get("plan")
    alpha = number(plan.get("alpha")) if isinstance(plan, dict) else None
    return NormalDist().inv_cdf(1 - (alpha if alpha and 0 < alpha < 1 else 0.05) / 2)


def _draw(monitoring: dict[str, Any], points: list[dict[str, Any]], title: str) -> Figure:
    xs = [float(lk["events_equivalent"]) for lk in points]
    zs = [float(lk["z"]) for lk in points]
    bounded = [(float(lk["events_equivalent"]), float(lk["boundary"])) for lk in points
               if number(lk.get("boundary")) is not None and lk["boundary"] > 0]
    required = number(monitoring.get("required_events"))
    z_conv = _conventional_z(monitoring)

    visible = [abs(z) for z in zs] + [b for _, b in bounded if b <= BOUNDARY_CAP]
    top = max([z_conv + 0.5, *visible]) * 1.12
    right = max([*xs, required or 0.0]) * 1.08 or 1.0

    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    ax = fig.add_axes((0.11, 0.31, 0.86, 0.50))
    ax.set_xlim(0, right)
    ax.set_ylim(-top, top)
    ax.axhline(0, color="0.6", lw=0.6, zorder=1)
    for side in ("right", "top"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=7)

    handles = []
    for sign in (1, -1):
        (conv,) = ax.plot([0, right], [sign * z_conv] * 2, color="0.35", lw=0.9,
                          ls=(0, (4, 3)), zorder=2)
    conv.set_label(f"Conventional ±{z_conv:.2f}")
    handles.append(conv)
    if bounded:
        bx = [x for x, _ in bounded]
        for sign in (1, -1):
            (line,) = ax.plot(bx, [sign * b for _, b in bounded], color=_BOUND_COLOUR, lw=1.3,
                              marker="o", ms=3, zorder=3)
        line.set_label("Monitoring boundary (O'Brien–Fleming α-spending)")
        handles.append(line)
        _mark_off_scale(ax, bounded, top)
    if required is not None:
        req = ax.axvline(required, color=_REQUIRED_COLOUR, lw=1.1, ls=(0, (1, 2)), zorder=2,
                         label=f"Required information ({required:.0f} events)")
        handles.append(req)
        _fraction_axis(ax, required)
    # As in TSA graphs the curve starts at no information, Z = 0 (thin: it is not a look).
    ax.plot([0, xs[0]], [0, zs[0]], color=_Z_COLOUR, lw=0.8, ls=(0, (2, 2)), zorder=4)
    (curve,) = ax.plot(xs, zs, color=_Z_COLOUR, lw=1.8, marker="o", ms=4.5, zorder=4,
                       label="Cumulative Z-curve")
    handles.insert(0, curve)

    ax.set_xlabel("Information accrued (events-equivalent, 4 × Σ 1/SE²)", fontsize=7.5)
    ax.set_ylabel("Z (< 0 favours maintenance)", fontsize=7.5)
    fig.text(0.015, 1 - 0.2 / HEIGHT_IN, title, fontsize=8.5, fontweight="bold", va="center",
             parse_math=False)
    legend = fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.1, 0.095),
                        ncols=2, fontsize=6.5, frameon=False, handlelength=2.4,
                        columnspacing=1.2)
    for text in legend.get_texts():
        text.set_parse_math(False)
    caption = (plan_line(monitoring) + ".",
               "Monitoring only: the pooled estimate (forest plot) is the primary analysis; "
               "Z and boundaries use Wald statistics.")
    for i, sentence in enumerate(caption):
        fig.text(0.015, (0.26 - 0.16 * i) / HEIGHT_IN, sentence, fontsize=6.8, va="center",
                 color="0.15", parse_math=False)
    return fig


def _mark_off_scale(ax: Axes, bounded: Iterable[tuple[float, float]], top: float) -> None:
    """Print the value of each boundary above the y range at the edge it leaves through."""
    for x, b in bounded:
        if b <= top:
            continue
        for sign, va, marker in ((1, "top", "^"), (-1, "bottom", "v")):
            ax.plot([x], [sign * top], marker=marker, ms=4, color=_BOUND_COLOUR, lw=0,
                    clip_on=False, zorder=5)
            # Beneath the boundary and the Z-curve (zorder 3 and 4): its white box hid the
            # next look's boundary point when that look came soon after.
            ax.annotate(f"boundary ±{b:.1f}", xy=(x, sign * top), xytext=(5, -4 * sign),
                        textcoords="offset points", ha="left", va=va, fontsize=6,
                        color=_BOUND_COLOUR, annotation_clip=False, zorder=1.5,
                        bbox={"boxstyle": "square,pad=0.15", "fc": "white", "ec": "none"})


def _fraction_axis(ax: Axes, required: float) -> None:
    def to_fraction(x: Any) -> Any:
        return x / required * 100

    def from_fraction(t: Any) -> Any:
        return t * required / 100

    top_axis = ax.secondary_xaxis("top", functions=(to_fraction, from_fraction))
    top_axis.set_xlabel("Information fraction (% of required)", fontsize=7)
    top_axis.tick_params(labelsize=6.5)
