"""Small-study effects on /estimates (the funnel block, the < 10 trials caveat, the k < 3 line),
the funnel plot behind login, ``small_study``/``funnel_svg`` in GET /api/estimates, and
snapshots stored before the view existed."""

from __future__ import annotations

import logging
import math
from datetime import date
from typing import Any

import lxml.html
import pytest
import test_web
from test_pool import add_estimate, add_trial
from test_web import api_as, as_role, db
from test_web_monitoring import svg_behind_login

from reports.pool import pool_all
from reports.selection import latest_results
from store.models import PooledResult

app = test_web.app
users = test_web.users

HOSTILE = "MM-<b>X</b>"
MANY, FEW, TWO = "thalidomide/PFS/post_asct", "lenalidomide/PFS/post_asct", "bortezomib/PFS/all"

#: (name, log HR, SE): small trials show more benefit than large ones, so trim-and-fill fills
#: trials on the right; the hostile name is the most precise trial, far from the pooled HR (so
#: the plot names it: it is outside the pseudo 95% limits).
ASYMMETRIC = [(HOSTILE, -0.05, 0.05), ("Big B", -0.15, 0.07), ("Trial C", -0.20, 0.10),
              ("Trial D", -0.35, 0.15), ("Trial E", -0.50, 0.20), ("Trial F", -0.60, 0.25),
              ("Trial G", -0.90, 0.30), ("Trial H", -0.80, 0.35), ("Trial I", -1.10, 0.40),
              ("Trial J", -0.10, 0.12), ("Trial K", -0.40, 0.22), ("Trial L", -0.70, 0.28)]
FOUR = [("Len 1", -0.5, 0.12), ("Len 2", -0.3, 0.2), ("Len 3", -0.7, 0.25),
        ("Len 4", -0.2, 0.1)]
PAIR = [("Bor 1", -0.2, 0.15), ("Bor 2", -0.4, 0.2)]


def _add(s: Any, trials: list[tuple[str, float, float]], drug: str) -> None:
    """Enter each trial's HR and 95% CI (the form's strings) from a log HR and its SE."""
    for name, yi, sei in trials:
        trial = add_trial(s, name, drug)
        add_estimate(s, trial, f"{math.exp(yi):.6f}", f"{math.exp(yi - 1.959964 * sei):.6f}",
                     f"{math.exp(yi + 1.959964 * sei):.6f}", cut=date(2012, 1, 1))


@pytest.fixture
def pooled(app: Any) -> dict[str, PooledResult]:
    with db(app) as s:
        _add(s, ASYMMETRIC, "thalidomide")
        _add(s, FOUR, "lenalidomide")
        _add(s, PAIR, "bortezomib")
        s.commit()
    pool_all(app.state.ctx)
    with db(app) as s:
        rows = {r.analysis_key: r for r in latest_results(s)}
    assert rows[MANY].k == 12 and rows[FEW].k == 4 and rows[TWO].k == 2
    assert rows[MANY].result["small_study"]["trim_fill"]["k0"] >= 1
    return rows


def _forget_small_study(app: Any, row: PooledResult) -> None:
    """Make a stored snapshot look like one from before small-study effects existed."""
    with db(app) as s:
        stored = s.get(PooledResult, row.id)
        assert stored is not None
        stored.result = {k: v for k, v in stored.result.items() if k != "small_study"}
        s.add(stored)
        s.commit()


def _section(html: str, row: PooledResult) -> Any:
    (section,) = lxml.html.fromstring(html).xpath(f'//section[@id="analysis-{row.id}"]')
    return section


def _text(node: Any) -> str:
    return " ".join(node.text_content().split())


def _rows(block: Any) -> dict[str, str]:
    return {_text(tr.xpath("th")[0]): _text(tr.xpath("td")[0])
            for tr in block.xpath('.//table[@class="small-study-tests"]//tr')}


def test_estimates_page_shows_the_funnel_block(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    html = as_role(app, users, "viewer").get("/estimates").text
    row = pooled[MANY]
    view = row.result["small_study"]
    (block,) = _section(html, row).xpath('.//div[@class="small-study"]')
    assert _text(block.xpath("./h3")[0]) == "Small-study effects (funnel plot)"
    (img,) = block.xpath(".//img")
    assert img.get("src") == f"/estimates/{row.id}/funnel.svg"
    assert img.get("alt").startswith(f"Contour-enhanced funnel plot of {row.analysis_label}")
    assert _text(block.xpath('.//p[@class="small-study-summary"]')[0]) == view["summary"]
    egger, tf = view["egger"], view["trim_fill"]
    p = "< 0.001" if egger["p"] < 0.001 else f"= {egger['p']:.3f}"
    assert tf["side"] == "right"  # small trials show more benefit: missing on the other side
    assert _rows(block) == {
        "Egger's test": f"bias coefficient {egger['bias']:.2f} (SE {egger['bias_se']:.2f}), "
                        f"t = {egger['stat']:.2f}, df = {egger['df']}, p {p}",
        "Limit HR (a trial of infinite size)":
            f"{egger['limit_hr']:.2f} ({egger['limit_hr_ci_low']:.2f}–"
            f"{egger['limit_hr_ci_high']:.2f})",
        "Trim-and-fill: side of the missing trials": "on the side of less benefit (right)",
        "Trials filled (k0)": str(tf["k0"]),
        "HR with the filled trials": f"{tf['hr']:.2f} ({tf['hr_ci_low']:.2f}–"
                                     f"{tf['hr_ci_high']:.2f}), k = {12 + tf['k0']}",
    }
    assert "assumes the asymmetry is publication bias" in _text(block)
    assert not block.xpath('.//ul[@class="small-study-errors"]')


def test_caveat_only_below_ten_trials_and_one_line_below_three(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    html = as_role(app, users, "viewer").get("/estimates").text
    caveats = {}
    for key in (MANY, FEW):
        (block,) = _section(html, pooled[key]).xpath('.//div[@class="small-study"]')
        caveats[key] = [_text(p) for p in block.xpath('.//p[@class="small-study-caveat"]')]
    assert caveats[MANY] == []
    (caveat,) = caveats[FEW]
    assert "with 4 trials these tests cannot tell funnel asymmetry from chance" in caveat
    assert "Sterne et al., BMJ 2011;343:d4002" in caveat
    # two trials: no block, no image, one line with the reason
    two = _section(html, pooled[TWO])
    assert not two.xpath('.//div[@class="small-study"]')
    assert not two.xpath('.//img[contains(@src, "funnel")]')
    (line,) = two.xpath('.//p[@class="small-study-unavailable"]')
    assert _text(line) == ("Small-study effects (funnel plot): "
                           "2 trials: a funnel plot needs at least 3.")


def test_funnel_plot_is_an_svg_behind_login(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    row = pooled[MANY]
    svg = svg_behind_login(app, users, f"/estimates/{row.id}/funnel.svg")
    k0 = row.result["small_study"]["trim_fill"]["k0"]
    assert f"filled by trim-and-fill (k0 = {k0})" in svg
    assert "Standard error of log HR" in svg
    assert (row.analysis_label or "")[:20] in svg  # titled with the analysis
    # the trial name is text in the SVG, not markup
    assert "MM-&lt;b&gt;X&lt;/b&gt;" in svg and "<b>" not in svg
    # two trials: no plot, and the reason says why
    viewer = as_role(app, users, "viewer")
    two = viewer.get(f"/estimates/{pooled[TWO].id}/funnel.svg")
    assert two.status_code == 404
    assert "has no funnel plot" in two.text and "a funnel plot needs at least 3" in two.text
    assert viewer.get("/estimates/99999/funnel.svg").status_code == 404


def test_trial_names_are_escaped_on_the_page(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    html = as_role(app, users, "viewer").get("/estimates").text
    assert "<b>X</b>" not in html
    assert "MM-&lt;b&gt;X&lt;/b&gt;" in html
    assert not lxml.html.fromstring(html).xpath("//b")


def test_estimates_api_carries_small_study(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    doc = api_as(app, users, "viewer").get("/api/estimates").json()
    by_key = {a["analysis"]: a for a in doc["analyses"]}
    for key in (MANY, FEW):
        assert by_key[key]["small_study"] == pooled[key].result["small_study"]
        assert by_key[key]["funnel_svg"] == f"/estimates/{pooled[key].id}/funnel.svg"
    assert by_key[MANY]["small_study"]["trim_fill"]["filled"]
    assert {"forest_svg", "monitoring", "certainty"} <= set(by_key[MANY])  # additive
    two = by_key[TWO]
    assert two["small_study"]["available"] is False and two["funnel_svg"] is None


def test_snapshot_without_small_study(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    row = pooled[FEW]
    _forget_small_study(app, row)
    viewer = as_role(app, users, "viewer")
    page = viewer.get("/estimates")
    assert page.status_code == 200
    section = _section(page.text, row)
    assert not section.xpath('.//div[@class="small-study"]')
    (line,) = section.xpath('.//p[@class="small-study-missing"]')
    assert "not computed for this snapshot; run mmlr pool" in _text(line)
    # the other analyses keep theirs
    assert _section(page.text, pooled[MANY]).xpath('.//div[@class="small-study"]')
    svg = viewer.get(f"/estimates/{row.id}/funnel.svg")
    assert svg.status_code == 404
    assert "has no small-study view" in svg.text and "run `mmlr pool`" in svg.text
    entry = next(a for a in api_as(app, users, "viewer").get("/api/estimates").json()["analyses"]
                 if a["analysis"] == FEW)
    assert entry["small_study"] is None and entry["funnel_svg"] is None


def test_errors_of_the_view_are_shown_escaped(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    row = pooled[FEW]
    with db(app) as s:
        stored = s.get(PooledResult, row.id)
        assert stored is not None
        view = dict(stored.result["small_study"], egger=None,
                    errors={"egger": "<i>collinear</i> standard errors"})
        stored.result = {**stored.result, "small_study": view}
        s.add(stored)
        s.commit()
    html = as_role(app, users, "viewer").get("/estimates").text
    (block,) = _section(html, row).xpath('.//div[@class="small-study"]')
    (errors,) = block.xpath('.//ul[@class="small-study-errors"]')
    assert _text(errors) == ("Egger's test could not be computed: <i>collinear</i> standard "
                             "errors")
    assert not errors.xpath(".//i")
    assert "Egger's test" not in _rows(block) and "Trials filled (k0)" in _rows(block)


def test_a_failing_plot_is_logged_and_a_clear_404(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult],
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import screening.web.routes_estimates as routes

    def boom(*args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(routes, "render_funnel", boom)
    row = pooled[MANY]
    with caplog.at_level(logging.ERROR, logger="screening.web.routes_estimates"):
        response = as_role(app, users, "viewer").get(f"/estimates/{row.id}/funnel.svg")
    assert response.status_code == 404
    assert "could not be drawn" in response.text and "secret detail" not in response.text
    assert any(f"funnel plot of pooled result {row.id} failed" in r.getMessage()
               and r.exc_info for r in caplog.records)


#: Three trials of about the same size (the SEs of their CIs differ in the fourth digit):
#: Egger's limit estimate runs off to exp(767), which overflowed and aborted the whole pool run.
NEARLY_EQUAL_SE = [("Equal 1", "1.00", "0.89", "1.13"), ("Equal 2", "0.83", "0.74", "0.94"),
                   ("Equal 3", "0.96", "0.85", "1.08")]


def test_nearly_equal_standard_errors_pool_and_say_why_there_is_no_limit_hr(
        app: Any, users: dict[str, str]) -> None:
    with db(app) as s:
        for name, hr, lo, hi in NEARLY_EQUAL_SE:
            add_estimate(s, add_trial(s, name, "thalidomide"), hr, lo, hi, cut=date(2012, 1, 1))
        s.commit()
    run = pool_all(app.state.ctx)
    assert MANY in {o.analysis.key for o in run.outcomes}
    with db(app) as s:
        row = {r.analysis_key: r for r in latest_results(s)}[MANY]
    assert row.k == 3 and row.estimate is not None
    egger = row.result["small_study"]["egger"]
    # The test itself is metafor's (regtest(model = "lm"): t = -0.4114, p = 0.7515, df = 1)…
    assert egger["stat"] == pytest.approx(-0.411403066057731, abs=1e-6)
    assert egger["p"] == pytest.approx(0.751528708766725, abs=1e-6)
    # …its limit HR (metafor: 2.6e10, CI 3.7e-313 to Inf) is not estimable, and says why.
    assert egger["limit_hr"] is None and egger["limit_hr_ci_high"] is None
    assert egger["limit"] == pytest.approx(23.994209212229801, rel=1e-6)
    assert "standard errors span too narrow a range (0.06091 to 0.06109)" in egger["limit_note"]
    html = as_role(app, users, "viewer").get("/estimates").text
    (block,) = _section(html, row).xpath('.//div[@class="small-study"]')
    rows = _rows(block)
    assert rows["Egger's test"].endswith("df = 1, p = 0.752")
    assert rows["Limit HR (a trial of infinite size)"] == (
        "not estimable: the trials' standard errors span too narrow a range (0.06091 to "
        "0.06109) to extrapolate to a trial of infinite size")
