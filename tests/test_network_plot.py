"""The network plot of a network meta-analysis (``reports.network_plot``): well-formed, escaped
and deterministic SVG; circle and line sizes; the reference marker; the checks on the input;
the description; and every label inside the canvas, whatever the layout."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import pytest

from reports.network_plot import (
    ASCENT,
    BOLD_RATIO,
    DESCENT,
    EM_RATIO,
    FONT_SIZE,
    LABEL_MAX,
    MAX_EDGE_WIDTH,
    MAX_RADIUS,
    MIN_RADIUS,
    PlotEdge,
    PlotNode,
    label_lines,
    node_label_lines,
    render_network_svg,
)

SVG = "{http://www.w3.org/2000/svg}"
LEN, THAL, NONE, IXA = "lenalidomide", "thalidomide", "no maintenance", "ixazomib"
NODES = [PlotNode(LEN, 4, 2500), PlotNode(NONE, 5, 1800), PlotNode(THAL, 2, 900),
         PlotNode(IXA, 1, 650)]
EDGES = [PlotEdge(LEN, NONE, 3, ("CALGB 100104", "IFM 2005-02", "GIMEMA")),
         PlotEdge(THAL, NONE, 1, ("NCIC MY.10",)),
         PlotEdge(LEN, THAL, 1, ("Myeloma XI",)),
         PlotEdge(IXA, NONE, 1, ("TOURMALINE-MM3",))]
LONG = ["bortezomib, lenalidomide and dexamethasone", "interferon alfa-2b with dexamethasone",
        "carfilzomib-lenalidomide-dexamethasone", "no maintenance", "lenalidomide",
        "elotuzumab plus lenalidomide and dexamethasone", "daratumumab", "placebo",
        "thalidomide plus prednisolone", "ixazomib"]


# ----------------------------------------------------------------------------- helpers
def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # raises on anything that is not well-formed XML
    assert root.tag == f"{SVG}svg"
    return root


def groups(root: ET.Element, cls: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if cls in (g.get("class") or "").split()]


def viewbox(root: ET.Element) -> tuple[float, float, float, float]:
    x, y, w, h = map(float, root.get("viewBox", "").split())
    return x, y, w, h


@dataclass(frozen=True)
class Drawn:
    text: str
    left: float
    top: float
    right: float
    bottom: float


def text_extents(root: ET.Element) -> list[Drawn]:
    """Every ``<text>`` with its estimated bounds, computed here from the module's published
    ratios (not with its own helper), from the attributes actually written."""
    base = float(root.get("font-size", FONT_SIZE))
    out = []
    for t in root.iter(f"{SVG}text"):
        size = float(t.get("font-size", base))
        ratio = BOLD_RATIO if t.get("font-weight") == "bold" else EM_RATIO
        width = len(t.text or "") * size * ratio
        x, y = float(t.get("x", 0)), float(t.get("y", 0))
        anchor = t.get("text-anchor", "start")
        left = {"start": x, "middle": x - width / 2, "end": x - width}[anchor]
        out.append(Drawn(t.text or "", left, y - ASCENT * size, left + width,
                         y + DESCENT * size))
    return out


def assert_inside(svg: str) -> None:
    root = parse(svg)
    x0, y0, w, h = viewbox(root)
    assert (x0, y0) == (0, 0)
    assert root.get("width") == f"{w:g}" and root.get("height") == f"{h:g}"
    for d in text_extents(root):
        assert d.left >= 0 and d.right <= w, (d, w)
        assert d.top >= 0 and d.bottom <= h, (d, h)
    for c in root.iter(f"{SVG}circle"):
        cx, cy, r = float(c.get("cx", 0)), float(c.get("cy", 0)), float(c.get("r", 0))
        assert r <= cx <= w - r and r <= cy <= h - r


def assert_accessible(svg: str, title: str) -> ET.Element:
    """Well-formed standalone SVG labelled for assistive technology (``role="img"``, a title
    and a description), with ``title`` drawn too, and nothing a content security policy would
    block or that could run (scripts, styles, event handlers). Returns the parsed root.
    Shared with the forest plot's tests."""
    root = parse(svg)
    assert svg.startswith("<svg ") and "<?xml" not in svg
    assert root.get("role") == "img"
    ids = (root.get("aria-labelledby") or "").split()
    assert len(ids) == 2
    title_el, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title_el is not None and desc is not None
    assert [title_el.get("id"), desc.get("id")] == ids
    assert title_el.text == title
    assert title in [t.text for t in root.iter(f"{SVG}text")]
    for el in root.iter():
        assert el.tag not in (f"{SVG}script", f"{SVG}style", f"{SVG}foreignObject")
        assert "style" not in el.attrib
        assert not any(a.startswith("on") for a in el.attrib)
    return root


def circles(root: ET.Element) -> list[ET.Element]:
    """The nodes' circles, in the order drawn (the nodes' order)."""
    return [g.find(f"{SVG}circle") for g in groups(root, "node")]  # type: ignore[misc]


def radii(svg: str) -> list[float]:
    return [float(c.get("r", 0)) for c in circles(parse(svg))]


def widths(svg: str) -> list[float]:
    return [float(g.find(f"{SVG}line").get("stroke-width", 0))  # type: ignore[union-attr]
            for g in groups(parse(svg), "edge")]


def node_label(g: ET.Element) -> list[str]:
    return [t.text or "" for t in g.iter(f"{SVG}text")]


def box_of(texts: list[Drawn]) -> tuple[float, float, float, float]:
    return (min(d.left for d in texts), min(d.top for d in texts),
            max(d.right for d in texts), max(d.bottom for d in texts))


def overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return not (a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1])


def long_network() -> tuple[list[PlotNode], list[PlotEdge]]:
    nodes = [PlotNode(name, i + 1, None) for i, name in enumerate(LONG)]
    edges = [PlotEdge(LONG[i], LONG[j], (i * j) % 5 + 1) for i in range(len(LONG))
             for j in range(i + 1, len(LONG)) if (i + j) % 3 == 0]
    return nodes, edges


# ----------------------------------------------------------------------------- the drawing
def test_well_formed_accessible_and_free_of_scripts_and_styles() -> None:
    svg = render_network_svg(NODES, EDGES, title="Maintenance network", reference=NONE)
    root = assert_accessible(svg, "Maintenance network")
    # one circle per node, one line per edge, one count per edge
    assert len(circles(root)) == 4
    assert len(groups(root, "edge")) == 4
    counts = groups(root, "edge-count")
    assert [node_label(g) for g in counts] == [["3"], ["1"], ["1"], ["1"]]


def test_hostile_names_are_escaped() -> None:
    bad = 'R <script>alert("x")</script> & \'q\''
    nodes = [PlotNode(bad, 2, 100), PlotNode(NONE, 2, 90)]
    edges = [PlotEdge(bad, NONE, 2, ('Trial <script>&"\'', "CTRL\x00\x1bchar"))]
    svg = render_network_svg(nodes, edges, title=f"Title {bad}", reference=bad)
    root = parse(svg)
    assert "<script" not in svg and not list(root.iter(f"{SVG}script"))
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;q&#x27;" in svg
    # the text survives, as text
    assert root.find(f"{SVG}title").text == f"Title {bad}"  # type: ignore[union-attr]
    node = groups(root, "node")[0]
    assert node.find(f"{SVG}title").text == (  # type: ignore[union-attr]
        f"{bad} (reference): 2 trials, 100 patients")
    edge = groups(root, "edge")[0]
    assert edge.find(f"{SVG}title").text == (  # type: ignore[union-attr]
        f"{bad} vs {NONE}: 2 trials: Trial <script>&\"', CTRLchar")
    assert "Trial <script>&\"'" in (root.find(f"{SVG}desc").text or "")  # type: ignore[union-attr]
    assert "\x00" not in svg and "\x1b" not in svg


def test_same_input_same_string() -> None:
    first = render_network_svg(NODES, EDGES, title="Network", reference=NONE)
    again = render_network_svg(list(NODES), tuple(EDGES), title="Network", reference=NONE)
    assert first == again
    # another network gets other ids: two plots inlined in one page stay labelled apart
    other = render_network_svg(NODES[:2], EDGES[:1], title="Network", reference=NONE)
    assert parse(other).get("aria-labelledby") != parse(first).get("aria-labelledby")
    # and the order given is the order drawn
    flipped = render_network_svg(NODES[::-1], EDGES, title="Network", reference=NONE)
    assert flipped != first
    assert [g.find(f"{SVG}title").text.split(":")[0]  # type: ignore[union-attr]
            for g in groups(parse(flipped), "node")] == [IXA, THAL, f"{NONE} (reference)",
                                                        LEN]


def test_edge_width_grows_with_trials() -> None:
    nodes = [PlotNode(n, 1, None) for n in "ABCDE"]
    edges = [PlotEdge("A", "B", 1), PlotEdge("B", "C", 2), PlotEdge("C", "D", 3),
             PlotEdge("D", "E", 7), PlotEdge("E", "A", 40)]
    w = widths(render_network_svg(nodes, edges, title="t"))
    assert w[0] < w[1] < w[2] < w[3]
    assert w[0] >= 1  # a single trial stays visible
    assert w[3] == w[4] == MAX_EDGE_WIDTH  # capped
    counts = groups(parse(render_network_svg(nodes, edges, title="t")), "edge-count")
    assert [node_label(g) for g in counts] == [["1"], ["2"], ["3"], ["7"], ["40"]]


def test_node_radius_grows_with_patients() -> None:
    nodes = [PlotNode("A", 1, 100), PlotNode("B", 3, 900), PlotNode("C", 2, 400),
             PlotNode("D", 9, 1)]
    r = radii(render_network_svg(nodes, [], title="t"))
    assert r[1] > r[2] > r[0] > r[3]  # by patients: trials do not matter
    assert r[1] == MAX_RADIUS and r[3] == MIN_RADIUS  # the smallest is clamped
    # area in proportion to patients above the clamp (to the 0.1 px written)
    assert (r[2] / r[1]) ** 2 == pytest.approx(400 / 900, abs=0.01)
    assert (r[0] / r[1]) ** 2 == pytest.approx(100 / 900, abs=0.01)


def test_node_radius_falls_back_to_trials_when_a_patient_count_is_missing() -> None:
    nodes = [PlotNode("A", 1, 5000), PlotNode("B", 4, 100), PlotNode("C", 2, None)]
    svg = render_network_svg(nodes, [], title="t")
    r = radii(svg)
    assert r[1] > r[2] > r[0]  # by trials, not by the (partial) patient counts
    assert r[1] == MAX_RADIUS
    root = parse(svg)
    assert "trials with an arm" in " ".join(
        t.text or "" for t in root.iter(f"{SVG}text") if t.get("class") == "key")
    assert node_label(groups(root, "node")[2])[-1] == "2 trials, patients not known"


def test_equal_or_zero_counts_give_equal_readable_circles() -> None:
    r = radii(render_network_svg([PlotNode("A", 0, None), PlotNode("B", 0, None)], [],
                                 title="t"))
    assert r == [MIN_RADIUS, MIN_RADIUS]


def test_reference_marker() -> None:
    svg = render_network_svg(NODES, EDGES, title="t", reference=NONE)
    root = parse(svg)
    refs = groups(root, "node-reference")
    assert len(refs) == 1
    ref = refs[0]
    assert node_label(ref) == [NONE, "(reference)", "5 trials, 1,800 patients"]
    assert ref.find(f"{SVG}title").text == (  # type: ignore[union-attr]
        f"{NONE} (reference): 5 trials, 1,800 patients")
    strokes = {g.find(f"{SVG}title").text.split(":")[0]:  # type: ignore[union-attr]
               float(g.find(f"{SVG}circle").get("stroke-width", 0))  # type: ignore[union-attr]
               for g in groups(root, "node")}
    others = [w for name, w in strokes.items() if name != f"{NONE} (reference)"]
    assert strokes[f"{NONE} (reference)"] > 2 * max(others)
    # without a reference: no marker at all
    plain = render_network_svg(NODES, EDGES, title="t")
    assert "(reference)" not in plain and not groups(parse(plain), "node-reference")


def test_titles_of_nodes_and_edges() -> None:
    root = parse(render_network_svg(NODES, EDGES, title="t"))
    assert [g.find(f"{SVG}title").text for g in groups(root, "node")] == [  # type: ignore[union-attr]
        "lenalidomide: 4 trials, 2,500 patients", "no maintenance: 5 trials, 1,800 patients",
        "thalidomide: 2 trials, 900 patients", "ixazomib: 1 trial, 650 patients"]
    assert [g.find(f"{SVG}title").text for g in groups(root, "edge")] == [  # type: ignore[union-attr]
        "lenalidomide vs no maintenance: 3 trials: CALGB 100104, IFM 2005-02, GIMEMA",
        "thalidomide vs no maintenance: 1 trial: NCIC MY.10",
        "lenalidomide vs thalidomide: 1 trial: Myeloma XI",
        "ixazomib vs no maintenance: 1 trial: TOURMALINE-MM3"]
    unnamed = parse(render_network_svg(NODES[:2], [PlotEdge(LEN, NONE, 2)], title="t"))
    assert groups(unnamed, "edge")[0].find(f"{SVG}title").text == (  # type: ignore[union-attr]
        "lenalidomide vs no maintenance: 2 trials")


def test_description() -> None:
    root = parse(render_network_svg(NODES, EDGES, title="t", reference=NONE))
    assert root.find(f"{SVG}desc").text == (  # type: ignore[union-attr]
        "Network of 4 treatments and 4 direct comparisons from 6 trials. Treatments: "
        "lenalidomide (4 trials, 2,500 patients); no maintenance (reference; 5 trials, "
        "1,800 patients); thalidomide (2 trials, 900 patients); ixazomib (1 trial, "
        "650 patients). lenalidomide vs no maintenance: 3 trials (CALGB 100104, IFM 2005-02, "
        "GIMEMA). thalidomide vs no maintenance: 1 trial (NCIC MY.10). lenalidomide vs "
        "thalidomide: 1 trial (Myeloma XI). ixazomib vs no maintenance: 1 trial "
        "(TOURMALINE-MM3).")


def test_description_counts_a_multi_arm_trial_once_and_says_so() -> None:
    nodes = [PlotNode("A", 1, None), PlotNode("B", 1, None), PlotNode("C", 1, None)]
    three_arm = [PlotEdge("A", "B", 1, ("T3",)), PlotEdge("B", "C", 1, ("T3",)),
                 PlotEdge("A", "C", 1, ("T3",))]
    desc = parse(render_network_svg(nodes, three_arm, title="t")).find(f"{SVG}desc")
    assert desc is not None and desc.text is not None
    assert desc.text.startswith(
        "Network of 3 treatments and 3 direct comparisons from 1 trial (3 trial comparisons: "
        "a multi-arm trial counts once for each pair of its arms). Treatments: A (1 trial, "
        "patients not known);")
    # trial names not given for every comparison: the sum, named for what it is
    unnamed = [PlotEdge("A", "B", 2), PlotEdge("B", "C", 1, ("X",))]
    desc = parse(render_network_svg(nodes, unnamed, title="t")).find(f"{SVG}desc")
    assert desc is not None and desc.text is not None
    assert desc.text.startswith(
        "Network of 3 treatments and 2 direct comparisons with 3 trial comparisons (a "
        "multi-arm trial counts once for each pair of its arms).")
    assert "A vs B: 2 trials." in desc.text and "B vs C: 1 trial (X)." in desc.text


def test_disconnected_nodes_are_drawn_and_described() -> None:
    nodes = [*NODES, PlotNode("interferon", 2, 300), PlotNode("observation", 1, 200),
             PlotNode("dexamethasone", 1, 150)]
    edges = [*EDGES, PlotEdge("observation", "dexamethasone", 1, ("X",))]
    root = parse(render_network_svg(nodes, edges, title="t"))
    assert len(circles(root)) == 7
    isolated = groups(root, "node-isolated")
    assert [node_label(g)[0] for g in isolated] == ["interferon"]
    assert isolated[0].find(f"{SVG}circle").get("stroke-dasharray")  # type: ignore[union-attr]
    desc = root.find(f"{SVG}desc").text or ""  # type: ignore[union-attr]
    assert "No direct comparison with another treatment: interferon." in desc
    assert "The network falls into 3 separate parts" in desc
    connected = parse(render_network_svg(NODES, EDGES, title="t"))
    assert "separate parts" not in (connected.find(f"{SVG}desc").text or "")  # type: ignore[union-attr]
    assert not groups(connected, "node-isolated")


# ----------------------------------------------------------------------------- the checks
@pytest.mark.parametrize(("nodes", "edges", "reference", "message"), [
    ([], [], None, "at least one node"),
    ([PlotNode("A", 1, None), PlotNode("A", 2, None)], [], None, "duplicate node name 'A'"),
    ([PlotNode("A", 1, None)], [PlotEdge("A", "Z", 1)], None,
     "edge 'A' vs 'Z' names an unknown node 'Z'"),
    ([PlotNode("A", 1, None)], [PlotEdge("Y", "A", 1)], None,
     "edge 'Y' vs 'A' names an unknown node 'Y'"),
    ([PlotNode("A", 1, None)], [PlotEdge("A", "A", 1)], None, "edge from 'A' to itself"),
    ([PlotNode("A", 1, None), PlotNode("B", 1, None)], [PlotEdge("A", "B", 0)], None,
     "edge 'A' vs 'B' has 0 trials; a direct comparison needs at least 1"),
    ([PlotNode("A", 1, None), PlotNode("B", 1, None)], [PlotEdge("A", "B", -2)], None,
     "edge 'A' vs 'B' has -2 trials"),
    ([PlotNode("A", 1, None), PlotNode("B", 1, None)],
     [PlotEdge("A", "B", 1), PlotEdge("A", "B", 2)], None,
     "the pair 'A' vs 'B' is given twice"),
    ([PlotNode("A", 1, None), PlotNode("B", 1, None)],
     [PlotEdge("A", "B", 1), PlotEdge("B", "A", 2)], None,
     "the pair 'B' vs 'A' is given twice"),
    ([PlotNode("A", 1, None)], [], "B", "reference 'B' is not among the nodes"),
    ([PlotNode(" ", 1, None)], [], None, "a node needs a name"),
    ([PlotNode("A", -1, None)], [], None, "node 'A' has a negative count"),
    ([PlotNode("A", 1, -5)], [], None, "node 'A' has a negative count"),
])
def test_invalid_networks_are_refused(nodes: list[PlotNode], edges: list[PlotEdge],
                                      reference: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        render_network_svg(nodes, edges, title="t", reference=reference)


# ----------------------------------------------------------------------------- layout
def test_one_node_is_centred() -> None:
    svg = render_network_svg([PlotNode(LEN, 2, None)], [], title="One")
    assert_inside(svg)
    root = parse(svg)
    _, _, w, _ = viewbox(root)
    (circle,) = circles(root)
    assert float(circle.get("cx", 0)) == pytest.approx(w / 2, abs=1)
    # the label below it, centred on it
    texts = groups(root, "node")[0].findall(f"{SVG}text")
    assert [t.get("text-anchor") for t in texts] == ["middle", "middle"]
    assert all(float(t.get("y", 0)) > float(circle.get("cy", 0)) + float(circle.get("r", 0))
               for t in texts)
    # nothing to compare: the key does not speak of lines
    key = " ".join(t.text or "" for t in root.iter(f"{SVG}text") if t.get("class") == "key")
    assert "line width" not in key and "Circle area" in key


def test_two_nodes_left_and_right() -> None:
    nodes = [PlotNode(LEN, 2, 500), PlotNode("bortezomib, lenalidomide and dexamethasone", 2,
                                             480)]
    svg = render_network_svg(nodes, [PlotEdge(nodes[0].name, nodes[1].name, 2)], title="Two")
    assert_inside(svg)
    root = parse(svg)
    left, right = circles(root)
    assert float(left.get("cy", 0)) == float(right.get("cy", 0))
    assert float(left.get("cx", 0)) < float(right.get("cx", 0))
    first, second = groups(root, "node")
    assert {t.get("text-anchor") for t in first.findall(f"{SVG}text")} == {"end"}
    assert {t.get("text-anchor", "start") for t in second.findall(f"{SVG}text")} == {"start"}
    assert all(float(t.get("x", 0)) < float(left.get("cx", 0))
               for t in first.findall(f"{SVG}text"))
    assert all(float(t.get("x", 0)) > float(right.get("cx", 0))
               for t in second.findall(f"{SVG}text"))
    # the long name wrapped onto two lines
    assert node_label(second)[:2] == ["bortezomib, lenalidomide", "and dexamethasone"]


def test_nodes_on_a_circle_in_the_order_given() -> None:
    root = parse(render_network_svg(NODES, EDGES, title="t"))
    points = [(float(c.get("cx", 0)), float(c.get("cy", 0))) for c in circles(root)]
    cx = sum(p[0] for p in points) / 4
    cy = sum(p[1] for p in points) / 4
    distances = [math.hypot(x - cx, y - cy) for x, y in points]
    assert max(distances) - min(distances) < 0.5
    # the first at the top, then clockwise: right, bottom, left
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = points
    assert y0 < y1 < y2 and x1 > x0 > x3
    assert x2 == pytest.approx(x0, abs=0.2) and y3 == pytest.approx(y1, abs=0.2)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 7, 10])
def test_every_label_lies_inside_the_canvas(count: int) -> None:
    nodes, edges = long_network()
    names = {n.name for n in nodes[:count]}
    svg = render_network_svg(nodes[:count], [e for e in edges if {e.a, e.b} <= names],
                             title="A network of maintenance treatments after autologous "
                                   "stem-cell transplantation, by the trials comparing them",
                             reference=nodes[0].name)
    assert_inside(svg)


def test_a_long_unbreakable_title_widens_the_canvas() -> None:
    svg = render_network_svg([PlotNode("A", 1, None)], [], title="X" * 120)
    assert_inside(svg)


def very_long_network() -> tuple[list[PlotNode], list[PlotEdge]]:
    """Names far beyond two lines of ``LABEL_CHARS``: the circle must grow to fit them."""
    names = [f"regimen {i} " + "with lenalidomide and dexamethasone " * (1 + i % 3)
             for i in range(9)]
    nodes = [PlotNode(name.strip(), 1, None) for name in names]
    return nodes, [PlotEdge(nodes[i].name, nodes[i + 1].name, 1) for i in range(8)]


@pytest.mark.parametrize("network", [long_network, very_long_network])
def test_labels_do_not_overlap_each_other_or_circles(network: Any) -> None:
    nodes, edges = network()
    svg = render_network_svg(nodes, edges, title="t", reference=nodes[-1].name)
    assert_inside(svg)
    root = parse(svg)
    base = root.get("font-size")
    holder = ET.Element("svg", {"font-size": base or str(FONT_SIZE)})
    boxes = []
    for g in groups(root, "node"):
        holder[:] = g.findall(f"{SVG}text")
        boxes.append(box_of(text_extents(holder)))
    rings = [(float(c.get("cx", 0)) - float(c.get("r", 0)),
              float(c.get("cy", 0)) - float(c.get("r", 0)),
              float(c.get("cx", 0)) + float(c.get("r", 0)),
              float(c.get("cy", 0)) + float(c.get("r", 0))) for c in circles(root)]
    for i, box in enumerate(boxes):
        for j, other in enumerate(boxes):
            assert i == j or not overlap(box, other), (i, j)
            assert i == j or not overlap(box, rings[j]), (i, j)


def test_edge_counts_do_not_sit_on_each_other() -> None:
    # a square with both diagonals: the diagonals' middles coincide
    nodes = [PlotNode(n, 1, None) for n in "ABCD"]
    edges = [PlotEdge("A", "C", 1), PlotEdge("B", "D", 2), PlotEdge("A", "B", 1)]
    root = parse(render_network_svg(nodes, edges, title="t"))
    rects = []
    for g in groups(root, "edge-count"):
        r = g.find(f"{SVG}rect")
        assert r is not None
        x, y = float(r.get("x", 0)), float(r.get("y", 0))
        rects.append((x, y, x + float(r.get("width", 0)), y + float(r.get("height", 0))))
    assert len(rects) == 3
    assert not any(overlap(a, b) for i, a in enumerate(rects) for b in rects[i + 1:])


def test_label_lines() -> None:
    assert label_lines("lenalidomide") == ["lenalidomide"]
    assert label_lines("x" * 22) == ["x" * 22]
    assert label_lines("bortezomib, lenalidomide and dexamethasone") == [
        "bortezomib, lenalidomide", "and dexamethasone"]
    assert label_lines("carfilzomib-lenalidomide-dexamethasone") == [
        "carfilzomib-lenalidomide-", "dexamethasone"]  # the longer line shortest
    assert label_lines("y" * 40) == ["y" * 40]  # nowhere to break: one line
    assert all(len(label_lines(name)) <= 2 for name in LONG)


def test_a_long_name_is_cut_in_the_drawing_and_whole_in_its_title() -> None:
    """One unbroken 100-character name drew a canvas over 2,000 px wide (the page scrolled
    sideways); the drawn label is cut with "…", the circle's title and the description keep
    every character."""
    unbroken = "pembrolizumab" + "x" * 87
    sentence = ("a very long treatment name that goes on and on describing the full regimen "
                "of the maintenance arm including dose schedules and durations")
    nodes = [PlotNode(NONE, 2, 200), PlotNode(unbroken, 1, 100), PlotNode(sentence, 1, 100)]
    edges = [PlotEdge(NONE, unbroken, 1, ("T1",)), PlotEdge(NONE, sentence, 1, ("T2",))]
    svg = render_network_svg(nodes, edges, title="t", reference=NONE)
    root = parse(svg)
    assert int(root.get("width", "0")) < 1000
    assert_inside(svg)
    for g, name in zip(groups(root, "node")[1:], (unbroken, sentence), strict=True):
        drawn = node_label(g)[:-1]  # the last line is the trials and patients
        assert 1 <= len(drawn) <= 2 and all(len(line) <= LABEL_MAX for line in drawn)
        assert drawn[-1].endswith("…")
        assert g.find(f"{SVG}title").text == f"{name}: 1 trial, 100 patients"  # type: ignore[union-attr]
        assert name in (root.find(f"{SVG}desc").text or "")  # type: ignore[union-attr]
    assert node_label_lines("lenalidomide") == ["lenalidomide"]
    assert node_label_lines("bortezomib, lenalidomide and dexamethasone") == label_lines(
        "bortezomib, lenalidomide and dexamethasone")
    # a wide character takes the room of two: the line holds half as many
    from store.text import display_width
    wide = node_label_lines("レナリドミド維持療法レナリドミド維持療法レナリドミド維持療法")
    assert all(display_width(line) <= LABEL_MAX for line in wide) and wide[-1].endswith("…")
