"""The sequential-monitoring graph: PNG at e-mail width, SVG with real text, the elements a
reader needs, absurd early boundaries kept off the scale, and a clear error without looks."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest
from PIL import Image

from reports.meta import clean_json
from reports.monitoring_plot import BOUNDARY_CAP, monitoring_figure, render_monitoring
from reports.monitoring_view import plan_line, status_change, status_label
from reports.sequential import MonitoringPlan, monitor
from store.errors import PoolingError


def steps(trials: list[tuple[str, float, float, str]]) -> list[dict[str, Any]]:
    """Evidence over time as ``reports.pool`` gives it: one step per trial, each pooling all
    trials so far (name, log HR, SE, year)."""
    out: list[dict[str, Any]] = []
    studies: list[dict[str, Any]] = []
    for n, (name, yi, sei, year) in enumerate(trials, start=1):
        studies = [*studies, {"trial": name, "estimate_id": n, "yi": yi, "sei": sei}]
        out.append({"date": f"{year}-12-31", "date_label": year, "k": n, "studies": studies})
    return out


@pytest.fixture
def crossing() -> dict[str, Any]:
    """A tiny first trial (its boundary far off the scale), then trials that cross."""
    view = monitor(steps([("Tiny", -0.9, 0.6, "2005"), ("B", -0.3, 0.15, "2010"),
                          ("C", -0.4, 0.12, "2012"), ("D", -0.2, 0.1, "2015"),
                          ("E", -0.35, 0.08, "2019")]), MonitoringPlan(), method="REML")
    assert view is not None
    return dict(clean_json(view))  # as stored in the snapshot


def test_png_is_email_width(crossing: dict[str, Any]) -> None:
    png = render_monitoring(crossing, fmt="png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = Image.open(io.BytesIO(png)).size
    assert width == 640 and 300 < height < 500


def test_svg_carries_every_element_as_text(crossing: dict[str, Any]) -> None:
    svg = render_monitoring(crossing, fmt="svg", title="IMiD <script>x</script> & $x$").decode()
    required = f"{crossing['required_events']:.0f}"
    for text in ("Z (&lt; 0 favours maintenance)",
                 "Information accrued (events-equivalent",
                 "Information fraction (% of required)",
                 "Cumulative Z-curve",
                 "Monitoring boundary (O'Brien–Fleming α-spending)",
                 "Conventional ±1.96",
                 f"Required information ({required} events)",
                 "Plan: HR 0.80, two-sided α 0.05, power 80%; D² = ",
                 "Monitoring only",
                 "IMiD &lt;script&gt;x&lt;/script&gt; &amp; $x$"):
        assert text in svg, text
    assert "<script" not in svg


def test_upper_and_lower_boundaries_through_the_looks_that_have_one(
        crossing: dict[str, Any]) -> None:
    fig = monitoring_figure(crossing)
    ax = fig.axes[0]
    bounded = [(lk["events_equivalent"], lk["boundary"]) for lk in crossing["looks"]
               if lk["boundary"] is not None]
    assert 2 <= len(bounded) == len(crossing["looks"])
    assert bounded[-1][1] == bounded[-2][1]  # past the plan: held to its final boundary
    red = [line for line in ax.get_lines() if line.get_color() == "#b22222"
           and len(line.get_xdata()) == len(bounded)]
    assert sorted(round(float(line.get_ydata()[-1]), 6) for line in red) == [
        round(-bounded[-1][1], 6), round(bounded[-1][1], 6)]
    curve = next(line for line in ax.get_lines() if line.get_label() == "Cumulative Z-curve")
    assert list(curve.get_ydata()) == pytest.approx([lk["z"] for lk in crossing["looks"]])
    # the required information is a vertical line at its events-equivalent
    required = next(line for line in ax.get_lines()
                    if str(line.get_label()).startswith("Required information"))
    assert list(required.get_xdata()) == pytest.approx([crossing["required_events"]] * 2)


def test_absurd_early_boundary_is_off_the_scale_and_said(crossing: dict[str, Any]) -> None:
    first = crossing["looks"][0]["boundary"]
    assert first > 10  # ±14.8 at 4% of the information
    low, high = monitoring_figure(crossing).axes[0].get_ylim()
    assert high == -low
    assert max(abs(lk["z"]) for lk in crossing["looks"]) < high <= 1.12 * max(
        BOUNDARY_CAP, max(abs(lk["z"]) for lk in crossing["looks"]))
    svg = render_monitoring(crossing, fmt="svg").decode()
    assert svg.count(f"boundary ±{first:.1f}") == 2  # printed at the top and bottom edges
    # its white box lies beneath every boundary and Z point: it hid the next look's boundary
    ax = monitoring_figure(crossing).axes[0]
    labels = [t for t in ax.texts if t.get_text().startswith("boundary ±")]
    marks = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert labels and marks
    assert max(t.get_zorder() for t in labels) < min(m.get_zorder() for m in marks)


def test_missing_values_of_stored_json_are_skipped(crossing: dict[str, Any]) -> None:
    # PostgreSQL's JSON has no NaN: clean_json stored a Z that was NaN as null.
    view = {**crossing, "required_events": None, "diversity": None,
            "looks": [*crossing["looks"], {**crossing["looks"][-1], "z": None}]}
    svg = render_monitoring(view, fmt="svg").decode()
    assert "Required information" not in svg and "Cumulative Z-curve" in svg


def test_same_view_same_bytes_and_no_pyplot(crossing: dict[str, Any]) -> None:
    assert render_monitoring(crossing, fmt="svg") == render_monitoring(crossing, fmt="svg")
    assert render_monitoring(crossing) == render_monitoring(crossing)
    pyplot = sys.modules.get("matplotlib.pyplot")
    assert pyplot is None or pyplot.get_fignums() == []


@pytest.mark.parametrize("view", [None, {}, {"status": "open", "looks": []},
                                  {"looks": [{"events_equivalent": 10.0, "z": None}]}])
def test_a_view_without_looks_is_a_clear_error(view: Any) -> None:
    with pytest.raises(PoolingError, match="monitoring view") as err:
        render_monitoring(view, fmt="svg")
    assert "\n" not in err.value.one_line()


def test_unknown_format_is_refused(crossing: dict[str, Any]) -> None:
    with pytest.raises(PoolingError, match="format 'pdf'") as err:
        render_monitoring(crossing, fmt="pdf")
    assert "use png or svg" in err.value.one_line()


# ----------------------------------------------------------------------------- words
def test_status_words() -> None:
    assert status_label("firm_evidence") == "firm evidence (boundary crossed)"
    assert status_label(None) == "unknown"
    # nothing is claimed from or to an unknown status, nor when nothing changed
    assert status_change(None, "firm_evidence") is None
    assert status_change("open", None) is None
    assert status_change("open", "open") is None
    assert status_change("conventional_only", "firm_evidence") == (
        "the Z-curve now crosses the monitoring boundary")
    assert status_change("open", "conventional_only") == (
        "the Z-curve is now conventionally significant but inside the monitoring boundary")
    assert status_change("conventional_only", "open") == (
        "the Z-curve is no longer conventionally significant")
    assert status_change("firm_evidence", "open").startswith(  # type: ignore[union-attr]
        "the Z-curve no longer crosses the monitoring boundary")
    assert status_change("open", "required_information_reached") == (
        "the required information is now reached without a boundary crossing")


def test_plan_line() -> None:
    view = {"plan": {"anticipated_hr": 0.75, "alpha": 0.05, "power": 0.9}, "diversity": 0.25,
            "required_events": 1234.4}
    assert plan_line(view) == ("Plan: HR 0.75, two-sided α 0.05, power 90%; D² = 25%; "
                               "required information 1234 events")
    assert plan_line({}) == "Plan: not recorded"
