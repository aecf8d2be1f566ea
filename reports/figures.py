"""Figure → bytes for every plot mmlr draws (forest, monitoring, funnel): one place for the
choices they share.

* SVG (the web pages): text stays text (``svg.fonttype`` none: searchable, small, escaped by
  matplotlib) and no date is written, so the same snapshot gives the same bytes.
* PNG (the e-mailed digest, where SVG is not shown by most mail clients): drawn by Agg, then
  reduced to a 64-colour palette. The plots are flat colours and anti-aliased text; the
  palette version cannot be told apart by eye and is about a third of the size (measured on
  the demo's first digest: 14 forest plots, 409 KB → 121 KB), which is most of a digest's
  weight. Quantizing is deterministic, so digests stay hashable.
"""

from __future__ import annotations

import io

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

#: Every plot is 6.4 in wide at this resolution: 640 px, the width of the digest's column.
DPI = 100
WIDTH_IN = 6.4
#: Colours of a PNG's palette: enough for the plots' few flat colours and their text edges.
PNG_COLOURS = 64
FORMATS = ("png", "svg")


def figure_bytes(fig: Figure, fmt: str) -> bytes:
    """``fig`` as PNG or SVG bytes (the caller checks ``fmt`` against :data:`FORMATS`, so its
    error can name the plot)."""
    canvas = FigureCanvasAgg(fig)
    if fmt == "png":
        # Straight from Agg's pixels: no full-colour PNG is encoded only to be decoded again
        # (that made quantizing cost more than drawing). Figures are made at DPI already.
        canvas.draw()
        pixels = np.asarray(canvas.buffer_rgba())
        small = Image.fromarray(pixels).convert("RGB").quantize(
            colors=PNG_COLOURS, method=Image.Quantize.FASTOCTREE)
        out = io.BytesIO()
        small.save(out, format="PNG")
        return out.getvalue()
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "mmlr"}):
        fig.savefig(buf, format=fmt, dpi=DPI, metadata={"Date": None})
    return buf.getvalue()
