"""Text in our hand-built SVG drawings (``reports.prisma_diagram``, ``reports.network_plot``,
``reports.network_forest``): the font, how wide its characters are estimated to be, and how
any text is made safe to write into the XML.

No drawing library measures text for us, so widths are estimated: a sans-serif at a given
size rarely averages more than ``EM_RATIO`` em per character (``BOLD_RATIO`` bold), which is
generous enough that no label runs out of its box or off the canvas.
"""

from __future__ import annotations

import re
from html import escape

FONT_FAMILY = "Helvetica, Arial, sans-serif"
EM_RATIO = 0.6  # estimated average character width, in em (bold: BOLD_RATIO)
BOLD_RATIO = 0.66

# Characters XML 1.0 forbids even when escaped (control characters, lone surrogates, the two
# non-characters): a title or name carrying one would make the whole drawing malformed.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    """``text`` escaped for an SVG element or attribute, without XML-forbidden characters."""
    return escape(_NOT_XML.sub("", text))
