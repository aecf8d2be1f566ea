"""The network plot of a network meta-analysis (the graph every NMA paper shows) as standalone
SVG: one circle per treatment, one line per pair of treatments that trials compare directly.

Why a drawing of its own: the network's shape decides what an NMA can say (which comparisons
rest on direct evidence, which only on indirect, whether the network falls apart into pieces
that cannot be compared at all), and readers check it first.

How it is drawn:

* the treatments sit on a circle in the order given (the same input gives the same string);
  one treatment is centred, two sit left and right;
* a circle's area grows with the patients randomised to the treatment when every treatment
  has a patient count, otherwise with the trials that have an arm of it (mixing the two would
  draw unknown counts as small ones); radii are clamped to ``MIN_RADIUS``–``MAX_RADIUS`` so
  that a small arm stays visible and a large one does not swallow its neighbours;
* a line's width grows with the trials comparing its two treatments directly, and the number
  is written at (or, where labels would collide, near) its middle on a white patch;
* the reference treatment has a thick outline and says "(reference)"; a treatment no trial
  compares with another has a dashed outline (it is still drawn);
* labels sit outside the circles, placed radially, long names wrapped onto two lines and cut
  with "…" beyond ``LABEL_MAX`` characters a line (the circle's ``<title>`` and the
  description keep the whole name: one unbroken 100-character name drew a canvas over
  2,000 px wide, and the page scrolled sideways). Text
  widths are estimated (a sans-serif rarely averages more than ``EM_RATIO`` em per character,
  the approach of :mod:`reports.prisma_diagram`), the circle grows until no label overlaps
  another label or a circle, and the canvas is sized to the estimated bounds, so no text is
  cut off.

Plain string building, no plotting library, like :mod:`reports.prisma_diagram`: every text
goes through :func:`reports.svg_text.xml_text` (escaped, without the characters XML 1.0
forbids), so the result is well-formed XML whatever a treatment or trial is called. No XML
declaration, no scripts, no styles: presentation attributes only, which the app's content
security policy allows. The ``<title>`` and ``<desc>`` (the whole network in words) label the
image for assistive technology; each line and circle has a ``<title>`` the browser shows on
hover.
"""

from __future__ import annotations

import hashlib
import logging
import math
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from reports.network import connected_parts
from reports.svg_text import BOLD_RATIO, EM_RATIO, FONT_FAMILY, xml_text
from reports.words import plural
from store.text import shorten_to_width

log = logging.getLogger(__name__)

FONT_SIZE = 13  # treatment names
NOTE_SIZE = 11  # the line under a name, the edge counts, the key
TITLE_SIZE = 16
LINE = 16  # baseline to baseline at FONT_SIZE
NOTE_LINE = 14
TITLE_LINE = 21
# Estimated extent of a line of text around its baseline, in em: generous, so the canvas
# errs on the side of room.
ASCENT = 0.95
DESCENT = 0.25
LABEL_CHARS = 22  # a name longer than this is wrapped onto two lines
LABEL_MAX = 34  # characters on a line of a drawn name, beyond which it is cut with "…"
MIN_RADIUS = 8.0
MAX_RADIUS = 28.0
MIN_EDGE_WIDTH = 1.5
EDGE_WIDTH_STEP = 2.5  # per trial beyond the first
MAX_EDGE_WIDTH = 11.5  # reached at 5 trials; the number on the line tells them apart
LABEL_GAP = 6  # between a circle and its label
NODE_GAP = 48  # between neighbouring circles: room for the count on the line between them
MIN_RING = 110  # radius of the circle the treatments sit on
RING_GROWTH = 1.1  # per attempt, while labels overlap
MAX_ATTEMPTS = 40
MARGIN = 16
MIN_WIDTH = 360  # of the drawing area: the title and the key need some width
COUNT_PAD = 3  # around an edge count, inside its white patch
# Blues and greys only, told apart by lightness and line style, never by hue alone: safe for
# every kind of colour blindness, and dark text on light fills throughout.
INK = "#1d2327"
NOTE_INK = "#4a5560"
EDGE_INK = "#7d8a97"
NODE_FILL = "#bcd4ec"
NODE_STROKE = "#1f4e79"
NODE_STROKE_WIDTH = 1.5
REFERENCE_STROKE_WIDTH = 4.0
BACKGROUND = "#ffffff"

_SIDE = 0.38  # |cos| above which a label sits beside its circle rather than above/below it
# Characters XML 1.0 does not allow (escaping cannot save them), lone surrogates included.
Box = tuple[float, float, float, float]  # left, top, right, bottom


@dataclass(frozen=True)
class PlotNode:
    """A treatment of the network."""

    name: str  # e.g. "lenalidomide", "no maintenance"
    trials: int  # trials with an arm of this treatment
    patients: int | None  # randomised to it, when known (None: unknown)


@dataclass(frozen=True)
class PlotEdge:
    """A direct comparison: ``trials`` trials randomised between treatments ``a`` and ``b``."""

    a: str  # node names (must be among the nodes)
    b: str
    trials: int  # trials comparing a and b directly (>= 1)
    names: tuple[str, ...] = ()  # the trials' names, for the tooltip and the description


@dataclass(frozen=True)
class SvgText:
    text: str
    x: float
    y: float  # baseline
    size: float = FONT_SIZE
    anchor: str = "start"
    bold: bool = False
    italic: bool = False
    fill: str = ""

    def box(self) -> Box:
        return text_box(self.text, self.x, self.y, self.size, self.anchor, bold=self.bold)


@dataclass(frozen=True)
class _Node:
    node: PlotNode
    x: float
    y: float
    r: float
    reference: bool
    isolated: bool
    label: tuple[SvgText, ...]


@dataclass(frozen=True)
class _Count:
    x: float  # centre of the white patch
    y: float
    text: str

    @property
    def w(self) -> float:
        return len(self.text) * NOTE_SIZE * EM_RATIO + 2 * COUNT_PAD

    @property
    def h(self) -> float:
        return (ASCENT + DESCENT) * NOTE_SIZE + 2 * COUNT_PAD


def render_network_svg(nodes: Sequence[PlotNode], edges: Sequence[PlotEdge], *, title: str,
                       reference: str | None = None) -> str:
    """The network of ``nodes`` (treatments) and ``edges`` (direct comparisons) as SVG text.
    ``title`` is drawn above the graph and names it for assistive technology; ``reference``
    (a node's name) marks the reference treatment. Raises :class:`ValueError` when the
    network is not a valid one (no nodes, duplicate or unknown names, a loop, an edge without
    trials, a pair given twice)."""
    _validate(nodes, edges, reference)
    radii = node_radii(nodes)
    by_patients = _by_patients(nodes)
    linked = {e.a for e in edges} | {e.b for e in edges}
    ring = _min_ring(len(nodes))
    for _ in range(MAX_ATTEMPTS):
        placed = _place(nodes, radii, ring, reference, linked)
        if not _overlaps(placed):
            break
        ring *= RING_GROWTH
    else:  # names far beyond two lines; every label is still inside the canvas, if touching
        log.debug("network plot: labels still overlap after %d attempts", MAX_ATTEMPTS)
    centres = {p.node.name: p for p in placed}
    counts = _count_labels(edges, centres)
    svg = _draw(placed, edges, counts, title=title,
                desc=describe(nodes, edges, reference=reference),
                key=_key(by_patients, bool(edges), reference is not None,
                         len(linked) < len(nodes)),
                ident=_ident(nodes, edges, title, reference))
    log.debug("network plot drawn: %d treatments, %d comparisons, %d characters",
              len(nodes), len(edges), len(svg))
    return svg


# ----------------------------------------------------------------------------- checks
def _validate(nodes: Sequence[PlotNode], edges: Sequence[PlotEdge],
              reference: str | None) -> None:
    if not nodes:
        raise ValueError("a network plot needs at least one node")
    names: set[str] = set()
    for node in nodes:
        if not node.name.strip():
            raise ValueError("a node needs a name")
        if node.name in names:
            raise ValueError(f"duplicate node name {node.name!r}")
        if node.trials < 0 or (node.patients is not None and node.patients < 0):
            raise ValueError(f"node {node.name!r} has a negative count")
        names.add(node.name)
    if reference is not None and reference not in names:
        raise ValueError(f"reference {reference!r} is not among the nodes")
    pairs: set[frozenset[str]] = set()
    for edge in edges:
        for end in (edge.a, edge.b):
            if end not in names:
                raise ValueError(f"edge {edge.a!r} vs {edge.b!r} names an unknown node "
                                 f"{end!r}")
        if edge.a == edge.b:
            raise ValueError(f"edge from {edge.a!r} to itself")
        if edge.trials < 1:
            raise ValueError(f"edge {edge.a!r} vs {edge.b!r} has {edge.trials} trials; a "
                             "direct comparison needs at least 1")
        pair = frozenset((edge.a, edge.b))
        if pair in pairs:
            raise ValueError(f"the pair {edge.a!r} vs {edge.b!r} is given twice")
        pairs.add(pair)


# ----------------------------------------------------------------------------- sizes
def _by_patients(nodes: Sequence[PlotNode]) -> bool:
    return all(n.patients is not None for n in nodes)


def node_radii(nodes: Sequence[PlotNode]) -> list[float]:
    """Circle radii, in the nodes' order: area proportional to the patients (when every node
    has a count) or else the trials, the largest at ``MAX_RADIUS``, clamped below at
    ``MIN_RADIUS``."""
    values = [float((n.patients or 0) if _by_patients(nodes) else n.trials) for n in nodes]
    top = max(values)
    if top <= 0:
        return [MIN_RADIUS] * len(values)
    return [max(MIN_RADIUS, MAX_RADIUS * math.sqrt(v / top)) for v in values]


def edge_width(trials: int) -> float:
    """Stroke width of a line for ``trials`` direct trials."""
    return min(MAX_EDGE_WIDTH, MIN_EDGE_WIDTH + EDGE_WIDTH_STEP * (trials - 1))


# ----------------------------------------------------------------------------- text
def text_box(text: str, x: float, y: float, size: float, anchor: str, *,
             bold: bool = False) -> Box:
    """Estimated bounds (left, top, right, bottom) of ``text`` drawn at ``x``, baseline
    ``y``."""
    width = len(text) * size * (BOLD_RATIO if bold else EM_RATIO)
    left = x - width if anchor == "end" else x - width / 2 if anchor == "middle" else x
    return left, y - ASCENT * size, left + width, y + DESCENT * size


def label_lines(name: str) -> list[str]:
    """A treatment's name on one line, or on two when longer than ``LABEL_CHARS``: broken at
    the space, hyphen or slash that makes the longer line shortest (a name without one stays
    on one line)."""
    if len(name) <= LABEL_CHARS:
        return [name]
    best: tuple[int, list[str]] | None = None
    for i, char in enumerate(name):
        if char == " ":
            left, right = name[:i].rstrip(), name[i + 1:].lstrip()
        elif char in "-/" and 0 < i < len(name) - 1:
            left, right = name[:i + 1], name[i + 1:]
        else:
            continue
        if left and right and (best is None or max(len(left), len(right)) < best[0]):
            best = (max(len(left), len(right)), [left, right])
    return best[1] if best is not None else [name]


def node_label_lines(name: str) -> list[str]:
    """A treatment's name as drawn beside its circle: ``label_lines`` of the name cut to what
    two lines hold, each line at most ``LABEL_MAX`` characters (a word longer than that, as
    an unbroken name, is cut inside it), cuts marked with "…" (``store.text.shorten``); a
    wide (CJK) character counts two, as it takes the room of two."""
    return [shorten_to_width(line, LABEL_MAX)
            for line in label_lines(shorten_to_width(name, 2 * LABEL_MAX))]


def wrap_text(text: str, width: float, size: float, *, bold: bool = False) -> list[str]:
    """``text`` in lines no wider than ``width`` pixels at font ``size`` (estimated; a single
    word longer than that keeps its own line)."""
    chars = max(1, int(width // (size * (BOLD_RATIO if bold else EM_RATIO))))
    return textwrap.wrap(text, width=chars, break_long_words=False,
                         break_on_hyphens=False) or [""]


def _node_detail(node: PlotNode) -> str:
    patients = (f", {plural(node.patients, 'patient')}" if node.patients is not None
                else ", patients not known")
    return f"{plural(node.trials, 'trial')}{patients}"


def _edge_text(edge: PlotEdge) -> str:
    names = f": {', '.join(edge.names)}" if edge.names else ""
    return f"{edge.a} vs {edge.b}: {plural(edge.trials, 'trial')}{names}"


def describe(nodes: Sequence[PlotNode], edges: Sequence[PlotEdge], *,
             reference: str | None = None) -> str:
    """The whole network in words (the SVG's ``<desc>``).

    A trial with three arms compares three pairs, so the edges' trials add up to *trial
    comparisons*, not trials; the number of distinct trials is given only when every edge
    names all its trials."""
    summed = sum(e.trials for e in edges)
    head = (f"Network of {plural(len(nodes), 'treatment')} and "
            f"{plural(len(edges), 'direct comparison')}")
    if edges and all(len(e.names) == e.trials for e in edges):
        distinct = len({name for e in edges for name in e.names})
        head += f" from {plural(distinct, 'trial')}"
        if distinct != summed:
            head += (f" ({plural(summed, 'trial comparison')}: a multi-arm trial counts "
                     "once for each pair of its arms)")
    else:
        head += (f" with {plural(summed, 'trial comparison')} (a multi-arm trial counts once "
                 "for each pair of its arms)")
    parts = [head + "."]
    treatments = []
    for node in nodes:
        ref = "reference; " if node.name == reference else ""
        treatments.append(f"{node.name} ({ref}{_node_detail(node)})")
    parts.append(f"Treatments: {'; '.join(treatments)}.")
    for edge in edges:
        names = f" ({', '.join(edge.names)})" if edge.names else ""
        parts.append(f"{edge.a} vs {edge.b}: {plural(edge.trials, 'trial')}{names}.")
    linked = {e.a for e in edges} | {e.b for e in edges}
    alone = [n.name for n in nodes if n.name not in linked]
    if alone:
        parts.append(f"No direct comparison with another treatment: {', '.join(alone)}.")
    pieces = _components(nodes, edges)
    if pieces > 1:
        parts.append(f"The network falls into {pieces} separate parts: treatments in "
                     "different parts cannot be compared, not even indirectly.")
    return " ".join(parts)


def _components(nodes: Sequence[PlotNode], edges: Sequence[PlotEdge]) -> int:
    parts = connected_parts((n.name for n in nodes), ((e.a, e.b) for e in edges))
    return len(set(parts.values()))


def _key(by_patients: bool, has_edges: bool, has_reference: bool, has_isolated: bool) -> str:
    size = ("patients randomised to the treatment" if by_patients else
            "trials with an arm of the treatment (patients are not known for every treatment)")
    key = f"Circle area grows with the {size}"
    key += ("; line width and number: trials comparing the two treatments directly."
            if has_edges else ".")
    if has_reference:
        key += " Thick outline: the reference treatment."
    if has_isolated:
        key += " Dashed outline: no direct comparison with another treatment."
    return key


def _ident(nodes: Sequence[PlotNode], edges: Sequence[PlotEdge], title: str,
           reference: str | None) -> str:
    # Ids derived from the input: deterministic, yet two different networks inlined in one
    # page do not share the ids their aria-labelledby points at.
    digest = hashlib.sha256(repr((title, reference, tuple(nodes), tuple(edges))).encode())
    return f"nma-{digest.hexdigest()[:10]}"


# ----------------------------------------------------------------------------- layout
def _min_ring(n: int) -> float:
    if n < 2:
        return float(MIN_RING)
    # neighbouring circles (chord 2·ring·sin(π/n)) at least NODE_GAP apart at full size
    return max(float(MIN_RING), (2 * MAX_RADIUS + NODE_GAP) / (2 * math.sin(math.pi / n)))


def _angles(n: int) -> list[float]:
    if n == 1:
        return [math.pi / 2]  # centred; the label goes below
    if n == 2:
        return [math.pi, 0.0]  # left, right
    # from the top, clockwise (SVG's y points down)
    return [-math.pi / 2 + 2 * math.pi * i / n for i in range(n)]


def _place(nodes: Sequence[PlotNode], radii: Sequence[float], ring: float,
           reference: str | None, linked: set[str]) -> list[_Node]:
    out = []
    for node, r, angle in zip(nodes, radii, _angles(len(nodes)), strict=True):
        cos, sin = math.cos(angle), math.sin(angle)
        x, y = (0.0, 0.0) if len(nodes) == 1 else (ring * cos, ring * sin)
        is_ref = node.name == reference
        out.append(_Node(node, x, y, r, is_ref, node.name not in linked,
                         _label(node, is_ref, x, y, r, cos, sin)))
    return out


def _label(node: PlotNode, is_ref: bool, x: float, y: float, r: float, cos: float,
           sin: float) -> tuple[SvgText, ...]:
    """The name (one or two lines), "(reference)", and the trials and patients, outside the
    circle in the direction pointing away from the centre of the network."""
    lines: list[tuple[str, float, float, bool, str]] = [
        (line, FONT_SIZE, LINE, False, "") for line in node_label_lines(node.name)]
    if is_ref:
        lines.append(("(reference)", NOTE_SIZE, NOTE_LINE, True, ""))
    lines.append((_node_detail(node), NOTE_SIZE, NOTE_LINE, False, NOTE_INK))
    ax, ay = x + (r + LABEL_GAP) * cos, y + (r + LABEL_GAP) * sin
    anchor = "start" if cos > _SIDE else "end" if cos < -_SIDE else "middle"
    height = sum(line[2] for line in lines)
    top = ay - height if sin < -_SIDE else ay if sin > _SIDE else ay - height / 2
    texts = []
    for text, size, line_h, italic, fill in lines:
        # the estimated text box centred in its line
        baseline = top + (line_h - (ASCENT + DESCENT) * size) / 2 + ASCENT * size
        texts.append(SvgText(text, ax, baseline, size, anchor, italic=italic, fill=fill))
        top += line_h
    return tuple(texts)


def _overlaps(placed: Sequence[_Node]) -> bool:
    """Whether any label overlaps another node's label or circle."""
    boxes = [(i, union_box(t.box() for t in p.label)) for i, p in enumerate(placed)]
    for i, box in boxes:
        for j, other in boxes:
            if j > i and _meet(box, other, 2):
                return True
        for j, p in enumerate(placed):
            if j != i and _meet(box, (p.x - p.r, p.y - p.r, p.x + p.r, p.y + p.r), 2):
                return True
    return False


def union_box(boxes: Iterable[Box]) -> Box:
    items = list(boxes)
    return (min(b[0] for b in items), min(b[1] for b in items),
            max(b[2] for b in items), max(b[3] for b in items))


def _meet(a: Box, b: Box, pad: float) -> bool:
    return not (a[2] + pad <= b[0] or b[2] + pad <= a[0] or a[3] + pad <= b[1]
                or b[3] + pad <= a[1])


def _count_labels(edges: Sequence[PlotEdge], centres: dict[str, _Node]) -> list[_Count]:
    """Where each edge's number goes: its middle, or a little along the line from it when
    the middle would sit on another line (where two lines cross, a number could be read as
    either's), on another number (the diagonals of a square cross at their middles) or too
    close to a circle."""
    out: list[_Count] = []
    for edge in edges:
        a, b = centres[edge.a], centres[edge.b]
        options = [_Count(a.x + t * (b.x - a.x), a.y + t * (b.y - a.y), str(edge.trials))
                   for t in (0.5, 0.4, 0.6, 0.3, 0.7, 0.22, 0.78)]
        clear = [c for c in options
                 if all(math.hypot(c.x - p.x, c.y - p.y) > p.r + max(c.w, c.h) / 2 + 2
                        for p in (a, b))
                 and all(not _meet(_count_box(c), _count_box(o), 2) for o in out)]
        off_lines = [c for c in clear if all(
            _to_segment(c.x, c.y, centres[o.a], centres[o.b])
            > math.hypot(c.w, c.h) / 2 + edge_width(o.trials) / 2
            for o in edges if o is not edge)]
        out.append((off_lines or clear or options)[0])
    return out


def _to_segment(x: float, y: float, a: _Node, b: _Node) -> float:
    """Distance from (x, y) to the line segment between the centres of ``a`` and ``b``."""
    vx, vy = b.x - a.x, b.y - a.y
    t = max(0.0, min(1.0, ((x - a.x) * vx + (y - a.y) * vy) / (vx * vx + vy * vy)))
    return math.hypot(x - a.x - t * vx, y - a.y - t * vy)


def _count_box(c: _Count) -> Box:
    return c.x - c.w / 2, c.y - c.h / 2, c.x + c.w / 2, c.y + c.h / 2


# ----------------------------------------------------------------------------- drawing
def _draw(placed: list[_Node], edges: Sequence[PlotEdge], counts: list[_Count], *, title: str,
          desc: str, key: str, ident: str) -> str:
    boxes = [t.box() for p in placed for t in p.label]
    boxes += [(p.x - p.r, p.y - p.r, p.x + p.r, p.y + p.r) for p in placed]
    boxes += [_count_box(c) for c in counts]
    left, top, right, bottom = union_box(boxes)
    inner = max(right - left, MIN_WIDTH)
    title_lines = wrap_text(title, inner, TITLE_SIZE, bold=True)
    # a word longer than the drawing widens the canvas rather than running off it
    inner = max([inner] + [len(line) * TITLE_SIZE * BOLD_RATIO for line in title_lines])
    key_lines = wrap_text(key, inner, NOTE_SIZE)
    width = math.ceil(inner + 2 * MARGIN)

    body: list[str] = []
    y = float(MARGIN)
    for line in title_lines:
        baseline = y + (TITLE_LINE - (ASCENT + DESCENT) * TITLE_SIZE) / 2 + ASCENT * TITLE_SIZE
        body.append(text_element(SvgText(line, MARGIN, baseline, TITLE_SIZE, bold=True), "title"))
        y += TITLE_LINE
    y += 14
    dx = MARGIN + (inner - (right - left)) / 2 - left
    dy = y - top
    y += bottom - top + 14
    centres = {p.node.name: p for p in placed}

    body.append('<g class="edges">')
    for edge in edges:
        a, b = centres[edge.a], centres[edge.b]
        body.append(f'<g class="edge"><title>{xml_text(_edge_text(edge))}</title>'
                    f'<line x1="{coord(a.x + dx)}" y1="{coord(a.y + dy)}" x2="{coord(b.x + dx)}" '
                    f'y2="{coord(b.y + dy)}" stroke="{EDGE_INK}" '
                    f'stroke-width="{coord(edge_width(edge.trials))}" stroke-linecap="round"/>'
                    "</g>")
    body.append("</g>")
    body.append('<g class="nodes">')
    for p in placed:
        body.append(_node(p, dx, dy))
    body.append("</g>")
    # the numbers last, so no line runs over them
    body.append('<g class="edge-counts">')
    for edge, c in zip(edges, counts, strict=True):
        x0, y0, _, _ = _count_box(c)
        baseline = c.y + (ASCENT - DESCENT) * NOTE_SIZE / 2
        body.append(f'<g class="edge-count"><title>{xml_text(_edge_text(edge))}</title>'
                    f'<rect x="{coord(x0 + dx)}" y="{coord(y0 + dy)}" width="{coord(c.w)}" '
                    f'height="{coord(c.h)}" rx="3" fill="{BACKGROUND}" stroke="{EDGE_INK}" '
                    f'stroke-width="0.8"/>'
                    + text_element(SvgText(c.text, c.x + dx, baseline + dy, NOTE_SIZE, "middle"))
                    + "</g>")
    body.append("</g>")
    for line in key_lines:
        baseline = y + (NOTE_LINE - (ASCENT + DESCENT) * NOTE_SIZE) / 2 + ASCENT * NOTE_SIZE
        body.append(text_element(SvgText(line, MARGIN, baseline, NOTE_SIZE, fill=NOTE_INK), "key"))
        y += NOTE_LINE
    height = math.ceil(y + MARGIN)
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" '
            f'aria-labelledby="{ident}-title {ident}-desc" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="{FONT_FAMILY}" '
            f'font-size="{FONT_SIZE}" fill="{INK}">')
    return "\n".join([
        head,
        f'<title id="{ident}-title">{xml_text(title)}</title>',
        f'<desc id="{ident}-desc">{xml_text(desc)}</desc>',
        f'<rect width="{width}" height="{height}" fill="{BACKGROUND}"/>',
        *body,
        "</svg>",
        "",
    ])


def _node(p: _Node, dx: float, dy: float) -> str:
    classes = "node" + (" node-reference" if p.reference else "") + (
        " node-isolated" if p.isolated else "")
    ref = " (reference)" if p.reference else ""
    stroke = REFERENCE_STROKE_WIDTH if p.reference else NODE_STROKE_WIDTH
    dash = ' stroke-dasharray="4 3"' if p.isolated else ""
    parts = [f'<g class="{classes}"><title>{xml_text(p.node.name + ref)}: '
             f'{xml_text(_node_detail(p.node))}</title>',
             f'<circle cx="{coord(p.x + dx)}" cy="{coord(p.y + dy)}" r="{coord(p.r)}" '
             f'fill="{NODE_FILL}" stroke="{NODE_STROKE}" stroke-width="{coord(stroke)}"{dash}/>']
    parts += [text_element(SvgText(t.text, t.x + dx, t.y + dy, t.size, t.anchor, t.bold,
                                   t.italic, t.fill)) for t in p.label]
    parts.append("</g>")
    return "".join(parts)


def text_element(t: SvgText, cls: str = "") -> str:
    attrs = [f'x="{coord(t.x)}"', f'y="{coord(t.y)}"']
    if t.size != FONT_SIZE:
        attrs.append(f'font-size="{coord(t.size)}"')
    if t.bold:
        attrs.append('font-weight="bold"')
    if t.italic:
        attrs.append('font-style="italic"')
    if t.anchor != "start":
        attrs.append(f'text-anchor="{t.anchor}"')
    if t.fill:
        attrs.append(f'fill="{t.fill}"')
    if cls:
        attrs.append(f'class="{cls}"')
    return f'<text {" ".join(attrs)}>{xml_text(t.text)}</text>'


def coord(value: float) -> str:
    """A coordinate to 0.1 px (``-0`` avoided): short, and stable across platforms."""
    rounded = round(value, 1)
    return f"{rounded + 0.0:g}"
