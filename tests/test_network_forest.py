"""The forest plot of a network meta-analysis (``reports.network_forest``): well-formed, escaped
and deterministic SVG; the row order; positions on the log axis (squares either side of
HR = 1, CI ends proportional to log HR); clipping arrows; the axis ticks; square sizes; the
tooltips and the description; and every text inside the canvas."""

from __future__ import annotations

import dataclasses
import itertools
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence

import pytest
from test_network_plot import SVG, assert_accessible, parse, text_extents

from reports.network import Contrast, NetworkResult, network_meta_analysis
from reports.network_forest import (
    AXIS_MAX,
    AXIS_MIN,
    MAX_SIDE,
    MIN_SIDE,
    render_network_forest_svg,
)

LEN, THAL, IXA, NONE, WORSE = ("lenalidomide", "thalidomide", "ixazomib", "no maintenance",
                               "interferon")
BASE = [Contrast("CALGB", LEN, NONE, -0.63, 0.12), Contrast("IFM", LEN, NONE, -0.69, 0.11),
        Contrast("MY10", THAL, NONE, -0.2, 0.1), Contrast("XI", LEN, THAL, -0.35, 0.15),
        Contrast("MM3", IXA, NONE, -0.33, 0.12), Contrast("IFN", WORSE, NONE, 0.25, 0.1)]
WILD = "tiny trial drug"
HOSTILE = "<script>alert(1)</script>&\"'"


def fit(contrasts: Sequence[Contrast], reference: str = NONE) -> NetworkResult:
    return network_meta_analysis(contrasts, reference=reference, method="FE")


@pytest.fixture(scope="module")
def result() -> NetworkResult:
    return fit(BASE)


@pytest.fixture(scope="module")
def wild() -> NetworkResult:
    # one estimate so imprecise that its CI (HR ~0.00004 to ~23000) runs far beyond the cap
    return fit([*BASE, Contrast("PILOT", WILD, NONE, 0.1, 5.0)])


# ----------------------------------------------------------------------------- helpers
def by_class(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}{tag}") if cls in (e.get("class") or "").split()]


def rows(root: ET.Element) -> list[ET.Element]:
    return by_class(root, "g", "row")


def tooltip(row: ET.Element) -> str:
    title = row.find(f"{SVG}title")
    assert title is not None
    return title.text or ""


def row_name(row: ET.Element) -> str:
    """The treatment a row is for, from its tooltip ("<treatment> vs <reference>: ...")."""
    return tooltip(row).rsplit(f" vs {NONE}:", 1)[0]


def labels(root: ET.Element) -> list[str]:
    """The drawn treatment names, one per row, lines joined, in drawing order."""
    return [" ".join(t.text or "" for t in by_class(r, "text", "label")) for r in rows(root)]


def null_x(root: ET.Element) -> float:
    (line,) = by_class(root, "line", "null-line")
    assert line.get("x1") == line.get("x2")
    return float(line.get("x1", "nan"))


def square_centre(row: ET.Element) -> float:
    (rect,) = by_class(row, "rect", "estimate")
    return float(rect.get("x", "nan")) + float(rect.get("width", "nan")) / 2


def square_side(row: ET.Element) -> float:
    (rect,) = by_class(row, "rect", "estimate")
    assert rect.get("width") == rect.get("height")
    return float(rect.get("width", "nan"))


def ci_ends(row: ET.Element) -> tuple[float, float]:
    (line,) = by_class(row, "line", "ci")
    return float(line.get("x1", "nan")), float(line.get("x2", "nan"))


def ticks(root: ET.Element) -> list[tuple[float, float]]:
    """(HR, x) of every tick label."""
    return [(float(t.text or "nan"), float(t.get("x", "nan")))
            for t in by_class(root, "text", "tick")]


def assert_inside(svg: str) -> None:
    root = parse(svg)
    x0, y0, w, h = map(float, root.get("viewBox", "").split())
    assert (x0, y0) == (0, 0)
    assert root.get("width") == f"{w:g}" and root.get("height") == f"{h:g}"
    for d in text_extents(root):
        assert d.left >= 0 and d.right <= w, (d, w)
        assert d.top >= 0 and d.bottom <= h, (d, h)
    for rect in by_class(root, "rect", "estimate"):
        x, y = float(rect.get("x", 0)), float(rect.get("y", 0))
        assert x >= 0 and x + float(rect.get("width", 0)) <= w
        assert y >= 0 and y + float(rect.get("height", 0)) <= h


def hr(log_value: float) -> str:
    return f"{math.exp(log_value):.2f}"


def expected_row_text(res: NetworkResult, name: str) -> str:
    rel = res.relative(name, res.reference)
    # a figure: brackets, as the pairwise forest plots (reports.words)
    return (f"HR {hr(rel.log_hr)} [{hr(rel.ci_low)}, {hr(rel.ci_high)}], "
            f"P-score {res.p_scores[name]:.2f}")


# ----------------------------------------------------------------------------- the drawing
def test_well_formed_accessible_and_free_of_scripts_and_styles(result: NetworkResult) -> None:
    svg = render_network_forest_svg(result, title="PFS: network estimates")
    root = assert_accessible(svg, "PFS: network estimates")
    # one row per treatment besides the reference, with its numbers in the columns
    assert len(rows(root)) == len(result.treatments) - 1 == 4
    assert NONE not in labels(root)
    for row in rows(root):
        name = row_name(row)
        rel = result.relative(name, NONE)
        (hr_cell,) = by_class(row, "text", "hr")
        (p_cell,) = by_class(row, "text", "p-score")
        assert hr_cell.text == f"{hr(rel.log_hr)} [{hr(rel.ci_low)}, {hr(rel.ci_high)}]"
        assert p_cell.text == f"{result.p_scores[name]:.2f}"
    drawn = [t.text for t in root.iter(f"{SVG}text")]
    assert {"Treatment", "HR (95% CI)", "P-score"} <= set(drawn)
    assert "Hazard ratio vs no maintenance (log scale)" in drawn
    assert "favours treatment" in drawn and "favours no maintenance" in drawn


def test_hostile_names_are_escaped() -> None:
    res = fit([Contrast("T1", HOSTILE, NONE, -0.3, 0.1), Contrast("T2", LEN, NONE, -0.5, 0.1)])
    svg = render_network_forest_svg(res, title=f"Title {HOSTILE}\x00\x1b")
    root = parse(svg)
    assert "<script" not in svg and not list(root.iter(f"{SVG}script"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#x27;" in svg
    assert "\x00" not in svg and "\x1b" not in svg
    # the text survives, as text
    assert root.find(f"{SVG}title").text == f"Title {HOSTILE}"  # type: ignore[union-attr]
    hostile_row = next(r for r in rows(root) if row_name(r) == HOSTILE)
    assert tooltip(hostile_row) == f"{HOSTILE} vs {NONE}: {expected_row_text(res, HOSTILE)}"
    assert "".join(t.text or "" for t in by_class(hostile_row, "text", "label")) == HOSTILE
    assert f"{HOSTILE}: HR" in (root.find(f"{SVG}desc").text or "")  # type: ignore[union-attr]
    assert_inside(svg)


def test_same_input_same_string(result: NetworkResult) -> None:
    first = render_network_forest_svg(result, title="Network")
    assert render_network_forest_svg(fit(BASE), title="Network") == first
    # another network or title gets other ids: two plots in one page stay labelled apart
    other = render_network_forest_svg(fit(BASE[:3]), title="Network")
    assert parse(other).get("aria-labelledby") != parse(first).get("aria-labelledby")
    retitled = render_network_forest_svg(result, title="Other")
    assert parse(retitled).get("aria-labelledby") != parse(first).get("aria-labelledby")


# ----------------------------------------------------------------------------- row order
def test_rows_by_p_score_best_first(result: NetworkResult) -> None:
    root = parse(render_network_forest_svg(result, title="t"))
    expected = [t for t, _ in result.ranking() if t != NONE]
    assert labels(root) == expected == [row_name(r) for r in rows(root)]
    scores = [float(by_class(r, "text", "p-score")[0].text or "nan") for r in rows(root)]
    assert scores == sorted(scores, reverse=True)
    explicit = render_network_forest_svg(result, title="t", order="p_score")
    assert explicit == render_network_forest_svg(result, title="t")  # the default


def test_rows_in_the_given_order(result: NetworkResult) -> None:
    root = parse(render_network_forest_svg(result, title="t", order="given"))
    assert labels(root) == result.treatments[1:] == [LEN, THAL, IXA, WORSE]
    # the fixture is chosen so that the two orders differ
    assert labels(root) != [t for t, _ in result.ranking() if t != NONE]


@pytest.mark.parametrize("order", ["P-score", "rank", "", "GIVEN"])
def test_unknown_order_is_refused(result: NetworkResult, order: str) -> None:
    with pytest.raises(ValueError, match="'p_score', 'given'"):
        render_network_forest_svg(result, title="t", order=order)


def test_a_result_without_a_treatment_to_compare_is_refused(result: NetworkResult) -> None:
    lone = dataclasses.replace(result, treatments=[NONE])
    with pytest.raises(ValueError, match="at least two treatments"):
        render_network_forest_svg(lone, title="t")


# ----------------------------------------------------------------------------- the log axis
def test_square_left_of_hr_one_exactly_when_hr_below_one(result: NetworkResult) -> None:
    root = parse(render_network_forest_svg(result, title="t"))
    x1 = null_x(root)
    sides = []
    for row in rows(root):
        below = result.relative(row_name(row), NONE).log_hr < 0
        assert (square_centre(row) < x1) == below
        assert (square_centre(row) > x1) == (not below)
        sides.append(below)
    assert True in sides and False in sides  # both sides are exercised


def test_positions_are_proportional_to_log_hr(result: NetworkResult) -> None:
    root = parse(render_network_forest_svg(result, title="t"))
    x1 = null_x(root)
    # the tick labelled 1 sits on the HR = 1 line
    assert dict(ticks(root))[1.0] == pytest.approx(x1, abs=0.06)
    scale = []
    for row in rows(root):
        rel = result.relative(row_name(row), NONE)
        lo, hi = ci_ends(row)
        assert lo < square_centre(row) < hi
        scale.append((hi - lo) / (rel.ci_high - rel.ci_low))  # px per log unit
        # each end at its log value's distance from the HR = 1 line
        assert (lo - x1) / rel.ci_low == pytest.approx(scale[-1], rel=0.01)
        assert (hi - x1) / rel.ci_high == pytest.approx(scale[-1], rel=0.01)
        assert (square_centre(row) - x1) / rel.log_hr == pytest.approx(scale[-1], rel=0.01)
    assert max(scale) == pytest.approx(min(scale), rel=0.005)  # one scale for every row
    # a known pair: lenalidomide's and thalidomide's lower CI limits, distances from HR = 1
    found = {row_name(r): ci_ends(r) for r in rows(root)}
    ratio = (x1 - found[LEN][0]) / (x1 - found[THAL][0])
    assert ratio == pytest.approx(result.relative(LEN, NONE).ci_low
                                  / result.relative(THAL, NONE).ci_low, rel=0.005)
    # monotone: ordering the rows by a CI limit orders their x positions the same way
    rels = {r: result.relative(r, NONE) for r in found}
    assert sorted(found, key=lambda r: rels[r].ci_low) == sorted(found, key=lambda r: found[r][0])
    assert sorted(found, key=lambda r: rels[r].ci_high) == sorted(found,
                                                                  key=lambda r: found[r][1])


def test_ticks_cover_every_interval_and_include_one(result: NetworkResult) -> None:
    root = parse(render_network_forest_svg(result, title="t"))
    marks = ticks(root)
    values = [v for v, _ in marks]
    assert 1.0 in values
    assert values == sorted(values) and [x for _, x in marks] == sorted(x for _, x in marks)
    lows = [result.relative(t, NONE).ci_low for t in result.treatments[1:]]
    highs = [result.relative(t, NONE).ci_high for t in result.treatments[1:]]
    assert math.log(values[0]) <= min(lows) and math.log(values[-1]) >= max(highs)
    # the axis runs from the first tick to the last
    (axis,) = [ln for g in by_class(root, "g", "axis") for ln in g.iter(f"{SVG}line")
               if ln.get("y1") == ln.get("y2")]
    assert float(axis.get("x1", "nan")) == pytest.approx(marks[0][1])
    assert float(axis.get("x2", "nan")) == pytest.approx(marks[-1][1])
    # no two tick labels collide
    boxes = sorted((d.left, d.right) for d in text_extents(root)
                   if d.text in {f"{v:g}" for v in values})
    assert all(a[1] < b[0] for a, b in itertools.pairwise(boxes))
    assert not by_class(root, "polygon", "ci-arrow")  # nothing clipped here


def test_huge_interval_is_clipped_with_arrows(wild: NetworkResult) -> None:
    svg = render_network_forest_svg(wild, title="t")
    root = parse(svg)
    marks = ticks(root)
    assert marks[0][0] >= AXIS_MIN and marks[-1][0] <= AXIS_MAX  # the cap holds
    for row in rows(root):
        arrows = by_class(row, "polygon", "ci-arrow")
        if row_name(row) != WILD:
            assert not arrows
            continue
        assert len(arrows) == 2
        lo, hi = ci_ends(row)
        assert lo == pytest.approx(marks[0][1]) and hi == pytest.approx(marks[-1][1])
        tips = sorted(float(a.get("points", "").split()[0].split(",")[0]) for a in arrows)
        assert tips == pytest.approx([lo, hi])
    # the precise estimates keep a usable scale: the ticks still stop at the cap
    others = [t for t in wild.treatments[1:] if t != WILD]
    assert all(math.log(marks[0][0]) <= wild.relative(t, NONE).ci_low for t in others)
    desc = root.find(f"{SVG}desc").text or ""  # type: ignore[union-attr]
    assert f"{WILD}: HR" in desc and "(the interval runs beyond the axis)" in desc
    assert "Arrow: the interval runs beyond the axis." in " ".join(
        t.text or "" for t in by_class(root, "text", "key"))
    assert_inside(svg)


def test_only_the_clipped_end_gets_an_arrow() -> None:
    # CI from about HR 0.5 to HR 200: clipped on the right only
    res = fit([*BASE, Contrast("ONE", "wide-right", NONE, math.log(10), 1.4)])
    root = parse(render_network_forest_svg(res, title="t"))
    row = next(r for r in rows(root) if row_name(r) == "wide-right")
    (arrow,) = by_class(row, "polygon", "ci-arrow")
    _, hi = ci_ends(row)
    assert float(arrow.get("points", "").split()[0].split(",")[0]) == pytest.approx(hi)
    assert hi == pytest.approx(ticks(root)[-1][1])


def test_an_interval_wholly_beyond_the_axis_is_an_arrow_at_its_edge() -> None:
    """HR 50 (20–120) and HR 0.02 (0.01–0.05) lie wholly beyond 0.1–10: each is an arrow at
    the edge it lies beyond, inside the plot; no line runs across the names or the HR
    column (only the far end used to be clamped)."""
    res = fit([*BASE, Contrast("HUGE", "huge", NONE, math.log(50), 0.45),
               Contrast("TINY", "tiny", NONE, math.log(0.02), 0.42)])
    svg = render_network_forest_svg(res, title="t")
    root = parse(svg)
    left, right = ticks(root)[0][1], ticks(root)[-1][1]
    assert (ticks(root)[0][0], ticks(root)[-1][0]) == (AXIS_MIN, AXIS_MAX)
    for name, edge, direction in (("huge", right, 1), ("tiny", left, -1)):
        row = next(r for r in rows(root) if row_name(r) == name)
        x1, x2 = ci_ends(row)
        assert x1 == pytest.approx(edge) and x2 == pytest.approx(edge)
        (arrow,) = by_class(row, "polygon", "ci-arrow")
        xs = [float(p.split(",")[0]) for p in arrow.get("points", "").split()]
        assert xs[0] == pytest.approx(edge)  # the tip, pointing away from the plot
        assert all(left - 0.05 <= x <= right + 0.05 for x in xs)
        assert (xs[0] - xs[1]) * direction > 0
        assert not by_class(row, "rect", "estimate")
    desc = root.find(f"{SVG}desc").text or ""  # type: ignore[union-attr]
    assert "(the interval lies beyond the axis), P-score" in desc
    assert_inside(svg)


def test_estimate_beyond_the_axis_has_no_square() -> None:
    # HR 40 (CI about 5.5 to 290): beyond the cap of the axis; the row keeps its numbers
    res = fit([*BASE, Contrast("FAR", "far-right", NONE, math.log(40), 1.0)])
    root = parse(render_network_forest_svg(res, title="t"))
    assert ticks(root)[-1][0] == AXIS_MAX
    row = next(r for r in rows(root) if row_name(r) == "far-right")
    assert not by_class(row, "rect", "estimate")
    assert len(by_class(row, "polygon", "ci-arrow")) == 1
    (hr_cell,) = by_class(row, "text", "hr")
    assert (hr_cell.text or "").startswith("40.00 [")
    assert all(len(by_class(r, "rect", "estimate")) == 1 for r in rows(root) if r is not row)


def test_square_area_grows_with_precision(wild: NetworkResult) -> None:
    root = parse(render_network_forest_svg(wild, title="t"))
    sides = {row_name(r): square_side(r) for r in rows(root)}
    se = {t: wild.relative(t, NONE).se for t in sides}
    assert max(sides.values()) == MAX_SIDE
    assert sides[WILD] == MIN_SIDE  # clamped: still visible
    by_se = sorted(sides, key=lambda t: se[t])
    assert [sides[t] for t in by_se] == sorted(sides.values(), reverse=True)
    best = by_se[0]
    for t in by_se[1:]:
        if sides[t] > MIN_SIDE:  # side ∝ 1/se, so area ∝ 1/se²
            assert sides[t] == pytest.approx(MAX_SIDE * se[best] / se[t], abs=0.06)


# ----------------------------------------------------------------------------- words
def test_tooltips_and_description(result: NetworkResult) -> None:
    root = parse(render_network_forest_svg(result, title="t"))
    for row in rows(root):
        name = row_name(row)
        assert tooltip(row) == f"{name} vs {NONE}: {expected_row_text(result, name)}"
    desc = root.find(f"{SVG}desc").text or ""  # type: ignore[union-attr]
    assert "hazard ratio of each treatment versus no maintenance" in desc
    assert "Rows by P-score, best first." in desc
    # every row in words, in the order drawn, and the reference's own P-score
    positions = []
    for name in labels(root):
        sentence = f"{name}: {expected_row_text(result, name)}."
        assert sentence in desc
        positions.append(desc.index(sentence))
    assert positions == sorted(positions)
    assert f"{NONE} (reference): P-score {result.p_scores[NONE]:.2f}." in desc
    assert "runs beyond the axis" not in desc
    given = parse(render_network_forest_svg(result, title="t", order="given"))
    assert "Rows in the order given." in (given.find(f"{SVG}desc").text or "")  # type: ignore[union-attr]


def test_every_text_inside_the_canvas() -> None:
    long_ref = "observation after autologous stem-cell transplantation, no maintenance at all"
    nospace = "Averyveryveryverylongtreatmentnamewithoutanyspacesatallwhatsoever"
    long_name = "bortezomib plus thalidomide and dexamethasone consolidation then maintenance"
    res = fit([Contrast("A", LEN, long_ref, 0.3, 0.12),
               Contrast("B", THAL, long_ref, 0.5, 0.1),
               Contrast("C", nospace, THAL, 0.1, 0.2),
               Contrast("D", long_name, long_ref, 0.9, 0.3)], reference=long_ref)
    for order in ("p_score", "given"):
        svg = render_network_forest_svg(res, title="A title " * 30, order=order)
        assert_inside(svg)
        root = parse(svg)
        drawn = [" ".join(t.text or "" for t in by_class(r, "text", "label"))
                 for r in rows(root)]
        # a name without a break is cut with "…"; its tooltip keeps it whole
        cut = next(d for d in drawn if d.startswith("Avery"))
        assert cut.endswith("…") and len(cut) < len(nospace)
        assert any(tooltip(r).startswith(f"{nospace} vs {long_ref}:") for r in rows(root))
        assert long_name.split()[0] in " ".join(drawn)
    # and the plain networks
    assert_inside(render_network_forest_svg(fit(BASE), title="t"))
    assert_inside(render_network_forest_svg(fit(BASE[:1]), title="One comparison"))
