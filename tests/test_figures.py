"""reports.figures: the one figure → bytes step of every plot. PNGs (for the e-mailed digest)
are palette images that look like the full-colour rendering and are far smaller."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from test_forest import snapshot  # noqa: F401  (the fixture)

from reports.figures import DPI, PNG_COLOURS, WIDTH_IN, figure_bytes
from reports.forest import _draw, forest_data


def _full_colour(fig: Figure) -> bytes:
    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def test_png_is_a_small_palette_image_that_looks_the_same(snapshot) -> None:  # noqa: F811
    fig = _draw(forest_data(snapshot, None))
    png = figure_bytes(fig, "png")
    full = _full_colour(fig)
    small, big = Image.open(io.BytesIO(png)), Image.open(io.BytesIO(full))
    assert small.mode == "P" and len(small.getcolors(256) or []) <= PNG_COLOURS
    assert small.size == big.size and small.size[0] == round(WIDTH_IN * DPI)
    assert len(png) < len(full) / 2
    # Pixel by pixel, the palette image stays within a few levels of the original.
    a = np.asarray(small.convert("RGB"), dtype=int)
    b = np.asarray(big.convert("RGB"), dtype=int)
    assert np.abs(a - b).mean() < 2.0
    assert figure_bytes(fig, "png") == png  # deterministic: digests are hashed


def test_svg_keeps_text_and_has_no_date(snapshot) -> None:  # noqa: F811
    svg = figure_bytes(_draw(forest_data(snapshot, None)), "svg").decode()
    assert "<dc:date>" not in svg and "NCIC CTG MY.10" in svg
