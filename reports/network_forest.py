"""The forest plot of a network meta-analysis (what R netmeta's ``forest.netmeta`` shows) as
standalone SVG: one row per treatment other than the reference, its network hazard ratio
against the reference with the 95% CI on a log axis, and the P-score beside it.

Why a drawing of its own: the league table gives every pair, but the question a reader asks
first is "how does each option compare with the reference, and how sure are we?"; a forest
plot answers it at a glance, and the P-score column next to it shows how the ranking follows
from (and is limited by) the intervals.

How it is drawn:

* rows by P-score, best first (``order="p_score"``, :meth:`NetworkResult.ranking`), or in the
  order of ``result.treatments`` (``order="given"``); long names are wrapped onto two lines
  (:func:`reports.network_plot.label_lines`) and a line beyond ``LABEL_MAX`` characters is cut
  with "…" (the row's tooltip and the description keep the full name);
* the square's *area* grows with the precision of the estimate (1/se²), relative to the most
  precise row: side ``MAX_SIDE`` for it, the others ``MAX_SIDE · se_min/se``, clamped below at
  ``MIN_SIDE`` so an imprecise estimate stays visible. A network estimate has no study
  weight; precision is what a bigger square should mean here;
* the x axis is logarithmic. It covers every CI and HR = 1, from and to a tick of the first
  tick ladder in ``LADDERS`` (densest first) whose labels do not collide, but never beyond
  ``AXIS_MIN``–``AXIS_MAX`` (0.1–10: maintenance HRs, even indirect ones, lie well inside,
  and a wider cap, such as the 0.02–50 of :mod:`reports.forest`, still squashes the other
  rows into a few pixels when one trial is tiny): a CI running further is cut at the edge and
  ends in an arrow; a CI lying wholly beyond an edge is that arrow alone, at the edge; an
  estimate beyond the edge has no square (its numbers are in the row);
* under the axis its caption "Hazard ratio vs <reference> (log scale)" and the directions,
  "favours treatment" left of HR = 1 and "favours <reference>" right of it; under those a key
  (the model, the reference's own P-score, what squares, P-scores and arrows mean).

House style of :mod:`reports.network_plot`, whose constants and helpers this module imports:
plain string building, every text through :func:`html.escape` (minus the characters XML 1.0
forbids), no XML declaration, no scripts, no styles (presentation attributes only: the app's
content security policy forbids inline styles), ``role="img"`` labelled by a ``<title>`` and a
``<desc>`` (every row in words), width and height plus a viewBox, text widths estimated with
``EM_RATIO`` and the canvas sized to the estimated bounds so no text is cut off. The same
result, title and order give the same string.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from reports.meta import hr_of
from reports.network import NetworkResult
from reports.network_plot import (
    ASCENT,
    BACKGROUND,
    DESCENT,
    EDGE_INK,
    FONT_SIZE,
    INK,
    LINE,
    MARGIN,
    MIN_WIDTH,
    NODE_STROKE,
    NOTE_INK,
    NOTE_LINE,
    NOTE_SIZE,
    TITLE_LINE,
    TITLE_SIZE,
    Box,
    SvgText,
    coord,
    label_lines,
    text_element,
    union_box,
    wrap_text,
)
from reports.svg_text import BOLD_RATIO, EM_RATIO, FONT_FAMILY, xml_text
from reports.words import hr_ci_text

log = logging.getLogger(__name__)

ORDERS: tuple[str, ...] = ("p_score", "given")
AXIS_MIN = 0.1  # HR; the axis never runs further (CIs beyond are clipped with an arrow)
AXIS_MAX = 10.0
#: Tick ladders (HR values, each with 1), densest first: the first whose labels fit is used;
#: the last spans ``AXIS_MIN``–``AXIS_MAX`` and always fits.
LADDERS: tuple[tuple[float, ...], ...] = (
    (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1, 1.25, 1.5, 2, 2.5, 3, 4, 5),
    (0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10),
    (0.125, 0.25, 0.5, 1, 2, 4, 8),
    (0.1, 0.2, 0.5, 1, 2, 5, 10),
)
PLOT_W = 320  # the axis, in px
TICK_GAP = 8  # at least this between neighbouring tick labels
TICK_LEN = 5
PAD = 6  # inside the table, left and right
COL_GAP = 18  # between columns
HEADER_H = 24
ROW_H = 26  # a row with a one-line name
ROW_PAD = 10  # above and below a two-line name
LABEL_MAX = 34  # characters on a line of a name, beyond which it is cut with "…"
MIN_SIDE = 6.0  # of the square, px
MAX_SIDE = 14.0
ARROW_LEN = 8.0
ARROW_HALF = 4.0
CI_WIDTH = 1.5
MIN_SIDE_W = 120  # px for the "favours ..." text on either side of HR = 1
ZEBRA = "#f2f5f8"  # every other row, so the eye can follow a row to its numbers
HR_HEADER = "HR (95% CI)"
P_HEADER = "P-score"
LABEL_HEADER = "Treatment"

_Item = tuple[Box | None, Callable[[float], str]]  # its bounds, and the markup shifted by dx


@dataclass(frozen=True)
class _Row:
    treatment: str
    log_hr: float
    se: float
    ci_low: float
    ci_high: float
    p_score: float

    @property
    def hr_text(self) -> str:
        # a figure: "0.54 [0.45, 0.65]", as the pairwise forest plots (reports.words)
        return hr_ci_text(hr_of(self.log_hr), hr_of(self.ci_low), hr_of(self.ci_high),
                          "bracket")

    @property
    def label(self) -> list[str]:
        return [_cut(line) for line in label_lines(self.treatment)]


def render_network_forest_svg(result: NetworkResult, *, title: str,
                              order: str = "p_score") -> str:
    """The forest plot of ``result`` (every treatment versus ``result.reference``) as SVG
    text. ``title`` is drawn above the plot and names it for assistive technology; ``order``
    is ``"p_score"`` (rows by P-score, best first) or ``"given"`` (the order of
    ``result.treatments``). Raises :class:`ValueError` for another ``order`` or a result with
    fewer than two treatments."""
    rows = forest_rows(result, order)
    ticks = axis_ticks(min(r.ci_low for r in rows), max(r.ci_high for r in rows))
    svg = _draw(result, rows, ticks, title=title, order=order)
    log.debug("network forest plot drawn: %d rows, %d characters", len(rows), len(svg))
    return svg


def forest_rows(result: NetworkResult, order: str) -> list[_Row]:
    """The rows to draw, in drawing order (see :func:`render_network_forest_svg`)."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}: use one of "
                         f"{', '.join(repr(o) for o in ORDERS)}")
    if len(result.treatments) < 2:
        raise ValueError("a network forest plot needs at least two treatments (the reference "
                         "and one to compare with it)")
    ref = result.reference
    names = (result.treatments[1:] if order == "given"
             else [t for t, _ in result.ranking() if t != ref])
    out = []
    for name in names:
        rel = result.relative(name, ref)
        out.append(_Row(name, rel.log_hr, rel.se, rel.ci_low, rel.ci_high,
                        result.p_scores.get(name, math.nan)))
    return out


# ----------------------------------------------------------------------------- numbers
def _p_text(p: float) -> str:
    return f"{p:.2f}" if math.isfinite(p) else "NA"


def _cut(line: str) -> str:
    return line if len(line) <= LABEL_MAX else line[:LABEL_MAX - 1].rstrip() + "…"


def _width(text: str, size: float, *, bold: bool = False) -> float:
    return len(text) * size * (BOLD_RATIO if bold else EM_RATIO)


# ----------------------------------------------------------------------------- the axis
def axis_ticks(log_low: float, log_high: float) -> tuple[float, ...]:
    """Tick HRs for CIs from ``log_low`` to ``log_high`` (log scale): from the tick at or
    below the lowest of them (and below 1) to the tick at or above the highest (and above 1),
    within ``AXIS_MIN``–``AXIS_MAX``, from the densest ladder whose labels do not collide on
    ``PLOT_W`` px. The axis runs from the first tick to the last."""
    low = max(min(math.exp(min(log_low, 0.0)), 0.999), AXIS_MIN)
    high = min(max(math.exp(min(max(log_high, 0.0), math.log(AXIS_MAX))), 1.001), AXIS_MAX)
    for ladder in LADDERS:
        below = [t for t in ladder if t <= low * (1 + 1e-9)]
        above = [t for t in ladder if t >= high * (1 - 1e-9)]
        if below and above:
            ticks = tuple(t for t in ladder if max(below) <= t <= min(above))
            if _ticks_fit(ticks):
                return ticks
    return LADDERS[-1]  # the whole capped range, with labels far apart


def _ticks_fit(ticks: Sequence[float]) -> bool:
    per_log = PLOT_W / math.log(ticks[-1] / ticks[0])
    for a, b in itertools.pairwise(ticks):
        room = (_width(f"{a:g}", NOTE_SIZE) + _width(f"{b:g}", NOTE_SIZE)) / 2 + TICK_GAP
        if math.log(b / a) * per_log < room:
            return False
    return True


# ----------------------------------------------------------------------------- words
def _model(result: NetworkResult) -> str:
    if result.method == "FE":
        return "common-effect model"
    return f"random-effects model ({result.method}, τ² = {result.tau2:.3g})"


def _tooltip(row: _Row, reference: str) -> str:
    return f"{row.treatment} vs {reference}: HR {row.hr_text}, P-score {_p_text(row.p_score)}"


def describe(result: NetworkResult, order: str = "p_score") -> str:
    """Every row in words (the SVG's ``<desc>``)."""
    rows = forest_rows(result, order)
    ticks = axis_ticks(min(r.ci_low for r in rows), max(r.ci_high for r in rows))
    ref = result.reference
    how = "by P-score, best first" if order == "p_score" else "in the order given"
    parts = [f"Forest plot of a network meta-analysis ({_model(result)}): the hazard ratio "
             f"of each treatment versus {ref} with its 95% confidence interval, on a log "
             f"scale; a hazard ratio below 1 favours the treatment. Rows {how}."]
    lo, hi = math.log(ticks[0]), math.log(ticks[-1])
    for row in rows:
        clipped = (" (the interval lies beyond the axis)" if row.ci_low > hi or row.ci_high < lo
                   else " (the interval runs beyond the axis)"
                   if row.ci_low < lo or row.ci_high > hi else "")
        parts.append(f"{row.treatment}: HR {row.hr_text}{clipped}, P-score "
                     f"{_p_text(row.p_score)}.")
    parts.append(f"{ref} (reference): P-score {_p_text(result.p_scores.get(ref, math.nan))}.")
    parts.append(f"The axis runs from {ticks[0]:g} to {ticks[-1]:g}.")
    return " ".join(parts)


def _key(result: NetworkResult, clipped: bool) -> str:
    ref = result.reference
    model = _model(result)
    key = (f"{model[0].upper()}{model[1:]}. Reference: {ref} (P-score "
           f"{_p_text(result.p_scores.get(ref, math.nan))}). Square area grows with the "
           "precision of the estimate. P-score: the mean probability of a lower hazard ratio "
           "than each other treatment (higher ranks better).")
    if clipped:
        key += " Arrow: the interval runs beyond the axis."
    return key


def _ident(result: NetworkResult, title: str, order: str) -> str:
    # Ids derived from the input: deterministic, yet two plots inlined in one page do not
    # share the ids their aria-labelledby points at.
    key = repr((title, order, result.method, result.reference, tuple(result.treatments),
                result.basic.tolist(), result.cov.tolist(), sorted(result.p_scores.items())))
    return f"nmaf-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


# ----------------------------------------------------------------------------- drawing
def _baseline(top: float, line_h: float, size: float) -> float:
    """The baseline that centres the estimated text box of font ``size`` in a line."""
    return top + (line_h - (ASCENT + DESCENT) * size) / 2 + ASCENT * size


def _text_item(t: SvgText, cls: str = "") -> _Item:
    return t.box(), lambda dx: text_element(replace(t, x=t.x + dx), cls)


def _line_item(x1: float, y1: float, x2: float, y2: float, attrs: str) -> _Item:
    box = (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
    return box, lambda dx: (f'<line x1="{coord(x1 + dx)}" y1="{coord(y1)}" x2="{coord(x2 + dx)}" '
                            f'y2="{coord(y2)}" {attrs}/>')


def _rect_item(x: float, y: float, w: float, h: float, attrs: str) -> _Item:
    return (x, y, x + w, y + h), lambda dx: (f'<rect x="{coord(x + dx)}" y="{coord(y)}" '
                                             f'width="{coord(w)}" height="{coord(h)}" {attrs}/>')


def _arrow_item(tip: float, y: float, direction: int, attrs: str) -> _Item:
    """An arrowhead with its tip at (``tip``, ``y``), pointing left (-1) or right (+1)."""
    back = tip - direction * ARROW_LEN
    box = (min(tip, back), y - ARROW_HALF, max(tip, back), y + ARROW_HALF)

    def draw(dx: float) -> str:
        points = " ".join(f"{coord(px + dx)},{coord(py)}" for px, py in
                          ((tip, y), (back, y - ARROW_HALF), (back, y + ARROW_HALF)))
        return f'<polygon class="ci-arrow" points="{points}" {attrs}/>'

    return box, draw


def _raw(markup: str) -> _Item:
    return None, lambda dx: markup


def _draw(result: NetworkResult, rows: list[_Row], ticks: tuple[float, ...], *, title: str,
          order: str) -> str:
    ref = result.reference
    labels = [r.label for r in rows]
    label_w = max([_width(LABEL_HEADER, FONT_SIZE, bold=True)]
                  + [_width(line, FONT_SIZE) for lines in labels for line in lines])
    hr_w = max([_width(HR_HEADER, FONT_SIZE, bold=True)]
               + [_width(r.hr_text, FONT_SIZE) for r in rows])
    p_w = max([_width(P_HEADER, FONT_SIZE, bold=True)]
              + [_width(_p_text(r.p_score), FONT_SIZE) for r in rows])
    plot_left = PAD + label_w + COL_GAP
    plot_right = plot_left + PLOT_W
    hr_right = plot_right + COL_GAP + hr_w
    p_right = hr_right + COL_GAP + p_w
    table_w = p_right + PAD
    inner = max(table_w, MIN_WIDTH)

    lo, hi = math.log(ticks[0]), math.log(ticks[-1])

    def x_of(log_value: float) -> float:
        return plot_left + (log_value - lo) / (hi - lo) * PLOT_W

    x_null = x_of(0.0)
    items: list[_Item] = []
    y = float(MARGIN)
    title_lines = wrap_text(title, inner, TITLE_SIZE, bold=True)
    for line in title_lines:
        items.append(_text_item(SvgText(line, 0, _baseline(y, TITLE_LINE, TITLE_SIZE),
                                      TITLE_SIZE, bold=True), "title"))
        y += TITLE_LINE
    y += 10
    head = _baseline(y, HEADER_H, FONT_SIZE)
    items += [_text_item(SvgText(LABEL_HEADER, PAD, head, bold=True), "header"),
              _text_item(SvgText(HR_HEADER, hr_right, head, anchor="end", bold=True), "header"),
              _text_item(SvgText(P_HEADER, p_right, head, anchor="end", bold=True), "header")]
    y += HEADER_H
    items.append(_line_item(0, y, table_w, y, f'stroke="{EDGE_INK}" stroke-width="1"'))
    rows_top = y

    se_min = min(r.se for r in rows)
    clipped_any = False
    items.append(_raw('<g class="rows">'))
    for i, (row, lines) in enumerate(zip(rows, labels, strict=True)):
        h = ROW_H if len(lines) == 1 else len(lines) * LINE + 2 * ROW_PAD
        cy = y + h / 2
        items.append(_raw(f'<g class="row"><title>{xml_text(_tooltip(row, ref))}</title>'))
        # the band takes the hover for the whole row (fill-opacity 0 still catches the pointer)
        band = (f'fill="{ZEBRA}"' if i % 2 == 0 else f'fill="{BACKGROUND}" fill-opacity="0"')
        items.append(_rect_item(0, y, table_w, h, f'class="band" {band}'))
        top = cy - len(lines) * LINE / 2
        for line in lines:
            items.append(_text_item(SvgText(line, PAD, _baseline(top, LINE, FONT_SIZE)), "label"))
            top += LINE
        base = _baseline(cy - LINE / 2, LINE, FONT_SIZE)
        items.append(_text_item(SvgText(row.hr_text, hr_right, base, anchor="end"), "hr"))
        items.append(_text_item(SvgText(_p_text(row.p_score), p_right, base, anchor="end"),
                                "p-score"))
        # Both ends inside the axis: an interval lying wholly beyond one edge would otherwise
        # run from the other end across the names or the HR column, its arrow pointing back.
        # Clamped, it is an arrow at the edge it lies beyond, as the pairwise forest draws it.
        x1 = x_of(min(max(row.ci_low, lo), hi))
        x2 = x_of(max(min(row.ci_high, hi), lo))
        ink = f'fill="{INK}"'
        items.append(_line_item(x1, cy, x2, cy, f'class="ci" stroke="{INK}" '
                                f'stroke-width="{coord(CI_WIDTH)}"'))
        if row.ci_low < lo:
            items.append(_arrow_item(x1, cy, -1, ink))
            clipped_any = True
        if row.ci_high > hi:
            items.append(_arrow_item(x2, cy, 1, ink))
            clipped_any = True
        if lo <= row.log_hr <= hi:
            side = min(MAX_SIDE, max(MIN_SIDE, MAX_SIDE * se_min / row.se)
                       if row.se > 0 else MAX_SIDE)
            items.append(_rect_item(x_of(row.log_hr) - side / 2, cy - side / 2, side, side,
                                    f'class="estimate" fill="{NODE_STROKE}"'))
        items.append(_raw("</g>"))
        y += h
    items.append(_raw("</g>"))

    # HR = 1, over the rows and down to the axis
    axis_y = y + 6
    items.append(_line_item(x_null, rows_top, x_null, axis_y,
                            f'class="null-line" stroke="{NOTE_INK}" stroke-width="1"'))
    items.append(_raw('<g class="axis">'))
    items.append(_line_item(plot_left, axis_y, plot_right, axis_y,
                            f'stroke="{INK}" stroke-width="1"'))
    tick_base = axis_y + TICK_LEN + 3 + ASCENT * NOTE_SIZE
    for t in ticks:
        x = x_of(math.log(t))
        items.append(_line_item(x, axis_y, x, axis_y + TICK_LEN,
                                f'stroke="{INK}" stroke-width="1"'))
        items.append(_text_item(SvgText(f"{t:g}", x, tick_base, NOTE_SIZE, "middle"), "tick"))
    items.append(_raw("</g>"))
    y = tick_base + DESCENT * NOTE_SIZE + 8
    centre = (plot_left + plot_right) / 2
    # centred under the axis, as wide as the table allows on both sides of its centre
    caption = wrap_text(f"Hazard ratio vs {ref} (log scale)",
                        2 * min(centre, table_w - centre) - 2 * PAD, FONT_SIZE)
    for line in caption:
        items.append(_text_item(SvgText(line, centre, _baseline(y, LINE, FONT_SIZE),
                                      anchor="middle"),
                                "caption"))
        y += LINE
    # each direction on its side of HR = 1, as wide as the table leaves it (at least MIN_SIDE_W)
    left_words = wrap_text("favours treatment", max(x_null - 8 - PAD, MIN_SIDE_W), NOTE_SIZE)
    right_words = wrap_text(f"favours {ref}", max(table_w - PAD - x_null - 8, MIN_SIDE_W),
                            NOTE_SIZE)
    for k, line in enumerate(left_words):
        items.append(_text_item(SvgText(line, x_null - 8, _baseline(y + k * NOTE_LINE, NOTE_LINE,
                                                                  NOTE_SIZE),
                                      NOTE_SIZE, "end", fill=NOTE_INK), "direction"))
    for k, line in enumerate(right_words):
        items.append(_text_item(SvgText(line, x_null + 8, _baseline(y + k * NOTE_LINE, NOTE_LINE,
                                                                  NOTE_SIZE),
                                      NOTE_SIZE, fill=NOTE_INK), "direction"))
    y += max(len(left_words), len(right_words)) * NOTE_LINE + 10
    for line in wrap_text(_key(result, clipped_any), inner, NOTE_SIZE):
        items.append(_text_item(SvgText(line, 0, _baseline(y, NOTE_LINE, NOTE_SIZE), NOTE_SIZE,
                                      fill=NOTE_INK), "key"))
        y += NOTE_LINE

    left, _, right, bottom = union_box(box for box, _ in items if box is not None)
    dx = MARGIN - min(left, 0.0)
    width = math.ceil(max(right, inner) + dx + MARGIN)
    height = math.ceil(max(bottom, y) + MARGIN)
    ident = _ident(result, title, order)
    head_tag = (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" '
                f'aria-labelledby="{ident}-title {ident}-desc" width="{width}" '
                f'height="{height}" viewBox="0 0 {width} {height}" '
                f'font-family="{FONT_FAMILY}" font-size="{FONT_SIZE}" fill="{INK}">')
    return "\n".join([
        head_tag,
        f'<title id="{ident}-title">{xml_text(title)}</title>',
        f'<desc id="{ident}-desc">{xml_text(describe(result, order))}</desc>',
        f'<rect width="{width}" height="{height}" fill="{BACKGROUND}"/>',
        *(draw(dx) for _, draw in items),
        "</svg>",
        "",
    ])
