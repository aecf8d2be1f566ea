"""Forest plots from a stored snapshot, a MetaResult and a CSV result: PNG at e-mail width,
SVG with real text, no pyplot state, and the elements a reader needs."""

from __future__ import annotations

import io
import math
import sys
from datetime import date
from pathlib import Path

import pytest
from PIL import Image

from reports.forest import _draw, forest_data, render_forest
from reports.meta import meta_analysis
from reports.meta_cli import meta_from_csv
from reports.pool import pool_all
from reports.selection import latest_results
from store.errors import PoolingError
from tests.test_pool import add_estimate, add_trial


@pytest.fixture
def snapshot(ctx):
    with ctx.sessions() as s:
        a = add_trial(s, "IFM <99-02> & co $x$")  # markup and mathtext must stay literal
        add_estimate(s, a, "0.60", "0.45", "0.80", endpoint="EFS", cut=date(2006, 1, 1))
        b = add_trial(s, "NCIC CTG MY.10")
        add_estimate(s, b, "0.56", "0.44", "0.71", cut=date(2013, 1, 1))
        c = add_trial(s, "CEMSG 01-002-0601", setting="non_transplant")
        add_estimate(s, c, "0.55", "0.36", "0.86", cut=date(2009, 1, 1), approximate=True)
        d = add_trial(s, "Tiny", setting="non_transplant")
        add_estimate(s, d, "0.30", "0.01", "9.00", cut=date(2011, 1, 1))  # beyond the axis
        s.commit()
    pool_all(ctx)
    with ctx.sessions() as s:
        return {p.analysis_key: p for p in latest_results(s)}["thalidomide/PFS/all"]


def test_png_is_email_width(snapshot) -> None:
    png = render_forest(snapshot, fmt="png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(png))
    assert image.size[0] == 640
    assert 300 < image.size[1] < 900


def test_svg_carries_every_element_as_text(snapshot) -> None:
    svg = render_forest(snapshot, fmt="svg").decode()
    for text in ("favours maintenance", "favours control", "Overall", "Post-ASCT",
                 "Non-transplant", "Subtotal (2 trials)", "95% prediction interval",
                 "Heterogeneity: τ² =", "Test for subgroup differences", "NCIC CTG MY.10",
                 "0.56 [0.44, 0.71]", "Weight", "EFS or TTP in place of PFS", "approximate",
                 "IFM &lt;99-02&gt; &amp; co $x$†"):
        assert text in svg, text
    assert "<script" not in svg


def test_same_input_same_bytes(snapshot) -> None:
    assert render_forest(snapshot, fmt="svg") == render_forest(snapshot, fmt="svg")
    assert render_forest(snapshot) == render_forest(snapshot)


def test_no_pyplot_state() -> None:
    res = meta_analysis([-0.5, -0.2, -0.4], [0.1, 0.2, 0.15], labels=["a", "b", "c"])
    render_forest(res)
    pyplot = sys.modules.get("matplotlib.pyplot")
    assert pyplot is None or pyplot.get_fignums() == []


def test_meta_result_and_csv_result(tmp_path: Path) -> None:
    res = meta_analysis([-0.5, -0.2, -0.4], [0.1, 0.2, 0.15], labels=["a", "b", "c"])
    data = forest_data(res)
    assert [r.label for r in data.rows] == ["a", "b", "c"]
    assert data.overall.pi is not None and data.subgroups == []
    fe = forest_data(meta_analysis([-0.5, -0.2], [0.1, 0.2], method="FE"))
    assert fe.overall.pi is None  # no prediction interval for a fixed-effect model
    path = tmp_path / "rows.csv"
    path.write_text("study,yi,sei,subgroup\na,-0.5,0.1,x\nb,-0.2,0.2,x\nc,-0.4,0.15,y\n")
    csv_data = forest_data(meta_from_csv(path))
    assert [d.label for d in csv_data.subgroups] == ["x", "y"]
    assert csv_data.subgroup_test and "df = 1" in csv_data.subgroup_test
    assert sum(r.weight for r in csv_data.rows) == pytest.approx(100.0)
    assert render_forest(meta_from_csv(path), fmt="svg").startswith(b"<?xml")


def test_a_long_trial_name_is_cut_between_words() -> None:
    """A label past 30 characters ends at a word with "…", never inside one."""
    name = "Myeloma IX thalidomide maintenance randomisation"
    res = meta_analysis([-0.5, -0.2], [0.1, 0.2], labels=[name, "b"])
    svg = render_forest(res, fmt="svg").decode()
    assert "Myeloma IX thalidomide…" in svg
    assert "Myeloma IX thalidomide mainte" not in svg  # the slice it used to be


# The machine's fonts may lack CJK glyphs: matplotlib says so while measuring the text, which
# the SVG keeps as text for the browser's fonts to draw.
@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")
def test_a_name_in_wide_characters_is_cut_to_the_column_not_to_30_characters() -> None:
    """30 CJK characters take the room of 60 Latin ones: the label ran into the CI and the
    RoB column. Cut to 30 columns, a wide character counting two."""
    from store.text import display_width

    name = "日本骨髄腫研究会維持療法ランダム化比較試験JMSG"  # 21 wide + 4 narrow: 46 columns
    res = meta_analysis([-0.5, -0.2], [0.1, 0.2], labels=[name, "b"])
    svg = render_forest(res, fmt="svg").decode()
    shown = next(t for t in svg.split(">") if t.startswith("日本"))
    shown = shown.split("<")[0]
    assert shown.endswith("…") and display_width(shown) <= 30
    assert display_width(name) == 46 and "日本骨髄腫研究会維持療法ランダム" not in svg


def test_an_interval_wholly_beyond_the_axis_stays_on_it() -> None:
    """HR 80 (54–118) lies beyond the axis's cap of 50: its line is clamped at both ends
    (only the far end was), so it is the arrow at the edge, as in the network forest."""
    res = meta_analysis([math.log(80), -0.2], [0.2, 0.2], labels=["far", "near"])
    fig = _draw(forest_data(res))
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    assert hi == 50.0
    for line in ax.get_lines():
        assert all(lo <= x <= hi for x in line.get_xdata()), line.get_xdata()


def test_errors(ctx) -> None:
    res = meta_analysis([-0.5], [0.1])
    with pytest.raises(PoolingError, match="format"):
        render_forest(res, fmt="gif")
    with pytest.raises(PoolingError, match="cannot draw"):
        render_forest(object())
    from store.models import PooledResult

    with pytest.raises(PoolingError, match="no pooled estimate"):
        render_forest(PooledResult(analysis_key="x/PFS/all", k=0))
