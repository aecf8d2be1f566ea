"""The contour-enhanced funnel plot: PNG at e-mail width, SVG with real (escaped) text, the
geometry a reader relies on (SE axis inverted from 0, HR on a log axis, the contours where a
trial's p against HR 1 would be 0.10–0.05, 0.05–0.01, < 0.01, the pseudo 95% limits), the
trim-and-fill trials as open circles, and clear errors for what cannot be drawn."""

from __future__ import annotations

import io
import math
import sys
from typing import Any

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from PIL import Image

from reports.funnel_plot import funnel_figure, render_funnel
from reports.meta import clean_json, meta_analysis
from reports.small_study import small_study_effects
from store.errors import PoolingError

Z95 = 1.959964
HOSTILE = "MM-<b>X</b> & $x$"

#: Small trials show more benefit than large ones: trim-and-fill fills trials on the right.
ASYMMETRIC = [("Big A", -0.10, 0.05), ("Big B", -0.15, 0.07), ("C", -0.20, 0.10),
              ("D", -0.35, 0.15), ("E", -0.50, 0.20), ("F", -0.60, 0.25), ("G", -0.90, 0.30),
              ("H", -0.80, 0.35), ("I", -1.10, 0.40), ("J", -0.05, 0.12), ("K", -0.40, 0.22)]
#: Mirror-image pairs about HR 0.8: nothing to fill.
SYMMETRIC = [("P", -0.223 - d, s) for d, s in ((0.1, 0.1), (0.2, 0.2), (0.3, 0.3))] + [
    ("Q", -0.223 + d, s) for d, s in ((0.1, 0.1), (0.2, 0.2), (0.3, 0.3))]


def snapshot(trials: list[tuple[str, float, float]]) -> tuple[list[dict[str, Any]],
                                                               dict[str, Any], float]:
    """Inputs, small-study view (as stored: clean_json) and pooled log HR, as pool_all keeps
    them."""
    yi, sei = [t[1] for t in trials], [t[2] for t in trials]
    view = dict(clean_json(small_study_effects(yi, sei, method="REML", ci="hksj")))
    inputs = [{"trial": name, "yi": y, "sei": s, "weight": 1.0} for name, y, s in trials]
    return inputs, view, meta_analysis(yi, sei, method="REML", ci="hksj").estimate


@pytest.fixture
def asymmetric() -> tuple[list[dict[str, Any]], dict[str, Any], float]:
    inputs, view, estimate = snapshot(ASYMMETRIC)
    assert view["trim_fill"]["k0"] >= 1 and view["k_sufficient"]
    return inputs, view, estimate


def test_png_is_email_width(asymmetric: Any) -> None:
    inputs, view, estimate = asymmetric
    png = render_funnel(inputs, view, estimate=estimate, fmt="png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = Image.open(io.BytesIO(png)).size
    assert width == 640 and 350 < height < 600


def test_svg_carries_every_element_as_escaped_text(asymmetric: Any) -> None:
    inputs, view, estimate = asymmetric
    # The most precise trial, far from the pooled HR, is outside the pseudo limits: labelled.
    inputs[0]["trial"] = HOSTILE
    svg = render_funnel(inputs, view, estimate=estimate, fmt="svg",
                        title="Thal <script>x</script>").decode()
    k0 = view["trim_fill"]["k0"]
    for text in ("Hazard ratio (maintenance vs control, log scale)",
                 "Standard error of log HR",
                 "p 0.10–0.05", "p 0.05–0.01", "p &lt; 0.01",
                 f"trials (k = {len(inputs)})",
                 f"filled by trim-and-fill (k0 = {k0})",
                 f"pooled HR {math.exp(estimate):.2f}",
                 "pseudo 95% limits",
                 f"HR with the filled trials {view['trim_fill']['hr']:.2f}",
                 "Egger's test p ",  # the caption is the view's summary
                 "Thal &lt;script&gt;x&lt;/script&gt;",
                 "MM-&lt;b&gt;X&lt;/b&gt; &amp; $x$"):
        assert text in svg, text
    assert "<script" not in svg and "<b>" not in svg


def test_caption_is_the_summary_wrapped(asymmetric: Any) -> None:
    inputs, view, estimate = asymmetric
    view["summary"] = "word " * 60 + "END."
    texts = [t.get_text() for t in funnel_figure(inputs, view, estimate=estimate).texts]
    caption = [t for t in texts if t.startswith("word") or t.endswith("END.")]
    assert len(caption) >= 2 and " ".join(caption) == " ".join(view["summary"].split())
    assert all(len(line) <= 118 for line in caption)


def test_axes_are_se_from_zero_down_and_hr_on_a_log_scale(asymmetric: Any) -> None:
    inputs, view, estimate = asymmetric
    ax = funnel_figure(inputs, view, estimate=estimate).axes[0]
    bottom, top = ax.get_ylim()
    largest = max(r["sei"] for r in inputs)
    assert top == 0 and largest < bottom <= 1.1 * largest  # inverted, a little above
    assert ax.get_xscale() == "log"
    lo, hi = ax.get_xlim()
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == [f"{t:g}" for t in ax.get_xticks()] and "1" in labels
    hrs = [math.exp(r["yi"]) for r in inputs]
    assert lo < min(hrs) and max(hrs) < hi


def _line(ax: Any, label: str) -> Any:
    return next(line for line in ax.get_lines() if str(line.get_label()).startswith(label))


def test_trials_filled_trials_and_reference_lines(asymmetric: Any) -> None:
    inputs, view, estimate = asymmetric
    ax = funnel_figure(inputs, view, estimate=estimate).axes[0]
    dots = _line(ax, "trials")
    assert list(dots.get_xdata()) == pytest.approx([math.exp(r["yi"]) for r in inputs])
    assert list(dots.get_ydata()) == pytest.approx([r["sei"] for r in inputs])
    assert dots.get_markerfacecolor() != "white"  # observed: filled dots
    circles = _line(ax, "filled by trim-and-fill")
    filled = view["trim_fill"]["filled"]
    assert list(circles.get_xdata()) == pytest.approx([math.exp(f["yi"]) for f in filled])
    assert list(circles.get_ydata()) == pytest.approx([f["sei"] for f in filled])
    assert circles.get_markerfacecolor() == "white"  # imputed: open circles
    pooled = _line(ax, "pooled HR")
    assert list(pooled.get_xdata()) == pytest.approx([math.exp(estimate)] * 2)
    # the pseudo 95% limits: from estimate ± 1.96 SE at the bottom to the pooled HR at SE 0
    se_max = ax.get_ylim()[0]
    pseudo = _line(ax, "pseudo 95% limits")
    assert list(pseudo.get_xdata()) == pytest.approx([math.exp(estimate - Z95 * se_max),
                                                      math.exp(estimate),
                                                      math.exp(estimate + Z95 * se_max)])
    assert list(pseudo.get_ydata()) == pytest.approx([se_max, 0, se_max])
    adjusted = _line(ax, "HR with the filled trials")
    assert list(adjusted.get_xdata()) == pytest.approx([view["trim_fill"]["hr"]] * 2)


def test_contours_are_where_a_trials_p_against_hr_1_falls_in_each_band(
        asymmetric: Any) -> None:
    inputs, view, estimate = asymmetric
    ax = funnel_figure(inputs, view, estimate=estimate).axes[0]
    lo, hi = ax.get_xlim()
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 6  # three bands, each side of HR 1
    expected = ((1.644854, 1.959964), (1.959964, 2.575829), (2.575829, math.inf))
    for i, (z_low, z_high) in enumerate(expected):
        for band in bands[2 * i: 2 * i + 2]:
            xy = np.concatenate([p.vertices for p in band.get_paths()])
            xy = xy[xy[:, 1] > 1e-9]  # z is undefined at SE 0
            z = np.abs(np.log(xy[:, 0])) / xy[:, 1]
            # the outermost band runs to the edge of the axis, where z is whatever it is
            at_edge = np.isclose(xy[:, 0], lo) | np.isclose(xy[:, 0], hi)
            inside = (z >= z_low - 1e-6) & (z <= z_high + 1e-6)
            assert np.all(inside | at_edge), i
            assert np.count_nonzero(inside & ~at_edge) >= 50, i  # the band's own boundary
    # shaded darker as p gets smaller
    shades = [float(np.asarray(bands[2 * i].get_facecolor())[0, 0]) for i in range(3)]
    assert shades == sorted(shades, reverse=True)


def test_nothing_filled_means_no_open_circles() -> None:
    inputs, view, estimate = snapshot(SYMMETRIC)
    assert view["trim_fill"]["k0"] == 0
    svg = render_funnel(inputs, view, estimate=estimate, fmt="svg").decode()
    assert "filled by trim-and-fill" not in svg and "HR with the filled trials" not in svg
    assert "trials (k = 6)" in svg


def test_stored_nulls_are_skipped(asymmetric: Any) -> None:
    # PostgreSQL's JSON has no NaN: clean_json stores a NaN as null.
    inputs, view, estimate = asymmetric
    inputs = [*inputs, {"trial": "Null", "yi": None, "sei": 0.2},
              {"trial": "Zero SE", "yi": -0.2, "sei": 0.0}]
    ax = funnel_figure(inputs, view, estimate=estimate).axes[0]
    assert len(_line(ax, "trials").get_xdata()) == len(ASYMMETRIC)


def test_same_snapshot_same_bytes_and_no_pyplot(asymmetric: Any) -> None:
    inputs, view, estimate = asymmetric
    first = render_funnel(inputs, view, estimate=estimate, fmt="svg")
    assert first == render_funnel(inputs, view, estimate=estimate, fmt="svg")
    pyplot = sys.modules.get("matplotlib.pyplot")
    assert pyplot is None or pyplot.get_fignums() == []


def test_what_cannot_be_drawn_is_a_clear_error(asymmetric: Any) -> None:
    inputs, view, estimate = asymmetric
    cases: list[tuple[Any, Any, Any, str, str]] = [
        (inputs, None, estimate, "no small-study view", "run `mmlr pool`"),
        (inputs[:2], snapshot(ASYMMETRIC[:2])[1], estimate, "not available",
         "2 trials: a funnel plot needs at least 3"),
        (inputs, view, None, "no pooled estimate", ""),
        ([{"trial": "A", "yi": None, "sei": None}], view, estimate, "no trial with a log HR",
         ""),
    ]
    for rows, small_study, centre, message, hint in cases:
        with pytest.raises(PoolingError, match=message) as err:
            render_funnel(rows, small_study, estimate=centre, fmt="svg")
        assert hint in err.value.one_line() and "\n" not in err.value.one_line()
    with pytest.raises(PoolingError, match="format 'pdf'"):
        render_funnel(inputs, view, estimate=estimate, fmt="pdf")
