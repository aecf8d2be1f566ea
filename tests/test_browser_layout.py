"""Layout and legibility of the curator UI in real Chromium: a narrow window (375 px, a phone or
a split laptop screen) never scrolls sideways, long unbroken PubMed strings wrap, and the
header's text has WCAG AA contrast."""

from __future__ import annotations

import math
from typing import Any

import pytest
import test_browser_web
import test_network
import test_web
from sqlmodel import select
from test_browser_web import _log_in, _page
from test_web import add_records, db

from store.models import Estimate, Trial, TrialReport, User

pytestmark = pytest.mark.browser

app = test_web.app
users = test_web.users
records = test_web.records
server = test_browser_web.server
browser = test_browser_web.browser
network_evidence = test_network.network_evidence

LONG_URL = "https://example.org/" + "a" * 300
LONG_DOI = "10.1000/" + "averylongdoiwithoutanybreaks" * 8


def _long_record(app: Any) -> None:
    add_records(app, [{
        "pmid": 90000010, "score": 0.999, "flagged": True, "journal": "Blood", "year": 2025,
        "title": "Lenalidomide maintenance after transplantation: protocol at " + LONG_URL,
        "abstract": "BACKGROUND: data at " + LONG_URL + "\nRESULTS: longer PFS.",
        "doi": LONG_DOI, "authors": [f"Author{i} AB" for i in range(150)],
        "mesh": [{"descriptor": "Multiple Myeloma/drug therapy/mortality/" + "x" * 120,
                  "major": True, "qualifiers": []}],
        "keywords": ["k" * 200]}])


def _trial_with_estimate(app: Any, users: dict[str, str]) -> int:
    with db(app) as session:
        curator = session.exec(select(User).where(User.email == users["curator"])).one()
        trial = Trial(name="LAYOUT-TRIAL", drug="lenalidomide", setting="post_asct",
                      comparator="placebo", notes="see " + LONG_URL)
        session.add(trial)
        session.flush()
        session.add(TrialReport(trial_id=trial.id, pmid=90000010, citation="Doe J. " + LONG_URL,  # type: ignore[arg-type]
                                year=2025, kind="primary"))
        session.add(Estimate(trial_id=trial.id, endpoint="PFS", setting="post_asct", hr=0.5,  # type: ignore[arg-type]
                             ci_low=0.4, ci_high=0.625, log_hr=math.log(0.5), se=0.1,
                             created_by=curator.id))
        session.commit()
        return int(trial.id or 0)


_OVERFLOW = """() => {
  const w = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth <= w) return [];
  return [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > w + 1
                 && e.parentElement.getBoundingClientRect().right <= w + 1)
    .map(e => e.tagName.toLowerCase() + '.' + e.className);
}"""


# a phone, a tablet upright, a small laptop's window, a desktop
@pytest.mark.parametrize("width", [375, 800, 1024, 1280])
def test_no_page_scrolls_sideways_and_long_strings_wrap(
        network_evidence: Any, app: Any, users: dict[str, str], records: int, server: str,
        browser: Any, width: int) -> None:
    _long_record(app)
    trial_id = _trial_with_estimate(app, users)
    problems: list[str] = []
    page = _page(browser, problems)
    page.set_viewport_size({"width": width, "height": 800})
    _log_in(page, server, users["admin"])
    for path in ["/", "/?show=all", "/records/90000010", "/records/90000002", "/trials",
                 f"/trials/{trial_id}", "/admin/users", "/fulltext", "/account",
                 "/network?key=PFS/post_asct", "/search?q=lenalidomide", "/admin/audit",
                 "/prisma", "/summary", "/searches", "/fetch", "/search?q=99999998",
                 "/estimates", "/digests"]:
        page.goto(server + path)
        assert page.evaluate(_OVERFLOW) == [], f"{path} at {width} px scrolls sideways"
    assert problems == []


def test_a_wide_table_scrolls_in_its_own_box_and_stays_a_table(
        app: Any, users: dict[str, str], server: str, browser: Any) -> None:
    trial_id = _trial_with_estimate(app, users)
    page = _page(browser, [])
    page.set_viewport_size({"width": 375, "height": 800})
    _log_in(page, server, users["curator"])
    page.goto(f"{server}/trials/{trial_id}")
    box = page.locator("table.estimates")
    assert box.evaluate("t => t.scrollWidth > t.clientWidth")  # wider than the window: scrolls
    # Chromium's accessibility tree still sees a table with column headers.
    cdp = page.context.new_cdp_session(page)
    nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
    roles = [n.get("role", {}).get("value") for n in nodes]
    assert "table" in roles and "columnheader" in roles


def _contrast(fg: str, bg: str) -> float:
    def lum(css: str) -> float:
        parts = [float(v) for v in css[css.index("(") + 1:-1].split(",")[:3]]
        lin = [c / 255 / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4
               for c in parts]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    hi, lo = sorted((lum(fg), lum(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_the_search_boxes_are_written_like_every_other_field(
        app: Any, users: dict[str, str], server: str, browser: Any) -> None:
    """A type=search input left out of the fields' rule kept Chromium's 13.33 px default and
    no padding: smaller than what was typed everywhere else, and a phone zooms in on it."""
    page = _page(browser, [])
    page.set_viewport_size({"width": 375, "height": 800})
    _log_in(page, server, users["curator"])
    page.goto(server + "/search?q=lenalidomide")
    style = "e => [getComputedStyle(e).fontSize, getComputedStyle(e).paddingTop]"
    body_size = page.evaluate("() => getComputedStyle(document.body).fontSize")
    size, padding = page.locator("main input#search-q").evaluate(style)
    assert size == body_size and float(size[:-2]) >= 16
    assert float(padding[:-2]) > 3
    header_size, _ = page.locator("header input#site-q").evaluate(style)
    assert header_size == body_size
    # The header box shows its whole placeholder ("PMID, trial, words…"), on a phone and wide.
    placeholder_fits = """e => {
      const s = getComputedStyle(e), c = document.createElement('canvas').getContext('2d');
      c.font = s.fontSize + ' ' + s.fontFamily;
      const room = e.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
      return c.measureText(e.placeholder).width <= room;
    }"""
    for width in (375, 1280):
        page.set_viewport_size({"width": width, "height": 800})
        assert page.locator("header input#site-q").evaluate(placeholder_fits), width


def test_header_text_has_aa_contrast(app: Any, users: dict[str, str], server: str,
                                     browser: Any) -> None:
    page = _page(browser, [])
    _log_in(page, server, users["curator"])
    header_bg = page.locator("header.site").evaluate("e => getComputedStyle(e).backgroundColor")
    for selector in ["header.site nav a >> nth=1", "header.site a.who", "header.site .role"]:
        el = page.locator(selector)
        colour = el.evaluate("e => getComputedStyle(e).color")
        opacity = float(el.evaluate("e => getComputedStyle(e).opacity"))
        assert opacity == 1 and _contrast(colour, header_bg) >= 4.5, (selector, colour)


def test_focus_ring_is_visible_on_white_and_on_the_header(
        app: Any, users: dict[str, str], server: str, browser: Any) -> None:
    """The yellow outline alone is 1.8:1 on white: a dark ring inside it keeps the focus
    visible on the white page, the yellow one on the navy header."""
    page = _page(browser, [])
    _log_in(page, server, users["curator"])
    page.goto(server + "/account")
    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Tab")  # "mmlr", in the header
    header = page.evaluate("() => getComputedStyle(document.activeElement).outlineColor")
    assert _contrast(header, "rgb(22, 50, 79)") >= 3
    page.locator("main input").first.focus()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")  # back on the field: focus came from the keyboard
    shadow = page.evaluate("() => getComputedStyle(document.activeElement).boxShadow")
    ring = shadow[:shadow.index(")") + 1]
    assert _contrast(ring, "rgb(255, 255, 255)") >= 3, shadow


def test_a_radio_button_stays_on_the_line_of_its_word(
        app: Any, users: dict[str, str], records: int, server: str, browser: Any) -> None:
    page = _page(browser, [])
    page.set_viewport_size({"width": 375, "height": 800})
    _log_in(page, server, users["curator"])
    page.goto(f"{server}/records/90000002")
    for value in ("include", "exclude", "maybe"):
        label = page.locator(f"form.decision-form label:has(input[value={value}])")
        radio = label.locator("input").bounding_box()
        box = label.bounding_box()
        assert radio and box and box["height"] < 2 * radio["height"] + 8, value  # one line


def test_the_digest_email_fits_a_phone(app: Any, browser: Any, tmp_path: Any) -> None:
    """Digests are read on phones: a PubMed title with a long unbroken string (a URL) wraps
    instead of widening the e-mail (the inline styles are all an e-mail client keeps)."""
    from reports.digest import build_digest

    _long_record(app)
    digest = build_digest(app.state.ctx)
    assert LONG_URL in digest.html  # the record is listed, its title as typed
    path = tmp_path / "digest.html"
    path.write_text(digest.html, encoding="utf-8")
    page = _page(browser, [])
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(path.as_uri())
    assert page.evaluate(_OVERFLOW) == []


def test_the_record_is_read_before_it_is_decided(
        app: Any, users: dict[str, str], records: int, server: str, browser: Any) -> None:
    """The abstract, publication types and MeSH come before the decision form: beside it on a
    wide window (both in view on opening), above it on a phone, and before it in keyboard
    order (a curator tabbing through the page meets the record's links before the form)."""
    page = _page(browser, [])
    _log_in(page, server, users["curator"])
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{server}/records/90000002?rank=1")
    abstract = page.locator("section[aria-label=Abstract] .abstract p").first.bounding_box()
    mesh = page.locator("dt", has_text="MeSH").bounding_box()
    form = page.locator("form.decision-form").bounding_box()
    assert abstract and mesh and form
    assert form["x"] >= abstract["x"] + abstract["width"]  # beside the abstract, on its right
    assert form["y"] + form["height"] <= 800 and abstract["y"] + abstract["height"] <= 800
    page.set_viewport_size({"width": 375, "height": 800})
    abstract = page.locator("section[aria-label=Abstract]").bounding_box()
    mesh = page.locator("dt", has_text="MeSH").bounding_box()
    form = page.locator("form.decision-form").bounding_box()
    assert abstract and mesh and form
    assert abstract["y"] + abstract["height"] <= form["y"] and mesh["y"] < form["y"]
    # keyboard: from the title's PubMed link, the record's own links, then the choices
    page.get_by_role("link", name="PMID 90000002").focus()
    seen = []
    for _ in range(6):
        page.keyboard.press("Tab")
        seen.append(page.evaluate(
            "() => document.activeElement.getAttribute('value')"
            " || document.activeElement.textContent.trim()"))
        if seen[-1] == "include":
            break
    assert seen[-1] == "include" and "NCT00114101" in seen, seen


@pytest.mark.parametrize("width", [375, 1280])
def test_an_hr_and_its_ci_are_entered_on_one_line(
        app: Any, users: dict[str, str], server: str, browser: Any, width: int) -> None:
    """As papers print them: HR, lower and upper limit side by side, on a phone too."""
    trial_id = _trial_with_estimate(app, users)
    page = _page(browser, [])
    page.set_viewport_size({"width": width, "height": 800})
    _log_in(page, server, users["curator"])
    page.goto(f"{server}/trials/{trial_id}")
    form = page.locator("form.extraction-form")
    boxes = [form.locator(f"#{name}").bounding_box() for name in ("hr", "ci_low", "ci_high")]
    assert all(boxes)
    assert len({round(b["y"]) for b in boxes if b}) == 1, boxes
    assert [b["x"] for b in boxes if b] == sorted(b["x"] for b in boxes if b)
    assert page.evaluate(_OVERFLOW) == []


def test_the_queue_reads_on_a_phone(app: Any, users: dict[str, str], records: int,
                                    server: str, browser: Any) -> None:
    """At 375 px a queue row is a few lines, not a column of four-letter fragments: the title
    keeps its width, journal and year follow it (their columns only on wider windows)."""
    add_records(app, [{"pmid": 90000011, "score": 0.998, "journal": "Journal of Clinical Oncology",
                       "year": 2025, "title": "Long-term follow-up of lenalidomide maintenance "
                       "versus placebo after autologous transplantation in multiple myeloma "
                       "(SYN-MM40): a double-blind, randomised, placebo-controlled trial."}])
    page = _page(browser, [])
    page.set_viewport_size({"width": 375, "height": 800})
    _log_in(page, server, users["curator"])
    row = page.locator("tr[data-pmid='90000011']")
    title = row.locator("td.title").bounding_box()
    assert title and title["width"] >= 150 and title["height"] < 450, title
    assert "Journal of Clinical Oncology · 2025" in row.locator("td.title").inner_text()
    assert not row.locator("td.journal").is_visible()
    page.set_viewport_size({"width": 1280, "height": 800})
    assert row.locator("td.journal").is_visible()
    assert not row.locator("td.title .narrow-only").is_visible()


def test_an_email_address_in_a_table_stays_readable_on_a_phone(
        app: Any, users: dict[str, str], server: str, browser: Any) -> None:
    page = _page(browser, [])
    page.set_viewport_size({"width": 375, "height": 800})
    _log_in(page, server, users["admin"])
    page.goto(f"{server}/admin/users")
    cell = page.locator(f"tr[data-email='{users['curator']}'] td.who")
    box = cell.bounding_box()
    assert box and box["width"] >= 120, box  # not a column of four-letter fragments
    assert page.evaluate(_OVERFLOW) == []


_PAIRS_ON_ONE_LINE = """dl => [...dl.querySelectorAll('dt')].filter(dt => {
  const dd = dt.nextElementSibling, label = [...dt.getClientRects()].pop();
  const value = dd.getClientRects()[0];
  return Math.abs(label.top - value.top) > 2 || Math.abs(label.bottom - value.bottom) > 2;
}).map(dt => dt.textContent)"""


@pytest.mark.parametrize("width", [375, 1280])
def test_a_figure_stays_on_the_line_of_its_label(
        app: Any, users: dict[str, str], records: int, server: str, browser: Any,
        width: int) -> None:
    """The queue's screening-health figures: each value on its label's line and baseline
    (as flex items, "stopping p value:" ended a line and "1" began the next, 4 px higher)."""
    page = _page(browser, [])
    page.set_viewport_size({"width": width, "height": 800})
    _log_in(page, server, users["curator"])
    health = page.locator("section[aria-label='Screening health'] dl")
    assert health.locator("dt").count() >= 8
    assert health.evaluate(_PAIRS_ON_ONE_LINE) == []
    if width == 375:  # a phone: one figure a line
        tops = health.locator("dd").evaluate_all("dds => dds.map(d => d.getClientRects()[0].top)")
        assert len(set(round(t) for t in tops)) == len(tops)


def test_the_network_reads_on_a_phone(network_evidence: Any, app: Any, users: dict[str, str],
                                      server: str, browser: Any) -> None:
    """At 375 px the network and its forest plot keep 3/4 of their drawn size (~10 px text)
    and scroll in their box, rather than shrink to 4 px text; a table's caption stays in view
    while its table scrolls."""
    page = _page(browser, [])
    page.set_viewport_size({"width": 375, "height": 800})
    _log_in(page, server, users["viewer"])
    page.goto(f"{server}/network?key=PFS/post_asct")
    plots = page.locator("figure.network-plot svg")
    assert plots.count() == 2
    for i in range(2):
        drawn = plots.nth(i).evaluate(
            "s => [s.getBoundingClientRect().width, s.width.baseVal.value]")
        assert drawn[0] >= 0.7 * drawn[1], drawn
    assert page.locator("figure.network-plot").first.evaluate(
        "f => f.scrollWidth > f.clientWidth")
    caption = page.locator("table.league caption").bounding_box()
    assert caption and caption["x"] >= 0 and caption["x"] + caption["width"] <= 375, caption
    assert page.evaluate(_OVERFLOW) == []
