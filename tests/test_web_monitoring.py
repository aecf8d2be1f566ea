"""Sequential monitoring on /estimates, its graph, and ``monitoring`` in GET /api/estimates."""

from __future__ import annotations

from datetime import date
from typing import Any

import lxml.html
import pytest
import test_web
from fastapi.testclient import TestClient
from test_pool import add_estimate, add_trial
from test_web import api_as, as_role, db

from reports.pool import pool_all
from reports.selection import latest_results
from store.models import PooledResult

app = test_web.app
users = test_web.users

HOSTILE = "<script>alert('tsa')</script> MM-<b>7</b>"


@pytest.fixture
def pooled(app: Any) -> dict[str, PooledResult]:
    """The seed evidence, plus a lenalidomide post-ASCT trial whose name is markup."""
    from monitor.bootstrap import load_seed_evidence

    with db(app) as s:
        load_seed_evidence(s)
        hostile = add_trial(s, HOSTILE, "lenalidomide")
        add_estimate(s, hostile, "0.70", "0.55", "0.89", cut=date(2011, 3, 1))
        s.commit()
    pool_all(app.state.ctx)
    with db(app) as s:
        return {r.analysis_key: r for r in latest_results(s) if r.k > 0}


def _old_snapshot(app: Any) -> PooledResult:
    """A snapshot stored before sequential monitoring existed: no "monitoring" key."""
    with db(app) as s:
        row = PooledResult(analysis_key="bortezomib/PFS/all", analysis_label="Old snapshot",
                           k=1, estimate=-0.4, ci_low=-0.8, ci_high=0.0,
                           result={"leave_one_out": [], "cumulative": []}, inputs=[])
        s.add(row)
        s.commit()
        s.refresh(row)
        return row


def _block(html: str, row: PooledResult) -> list[Any]:
    (section,) = lxml.html.fromstring(html).xpath(f'//section[@id="analysis-{row.id}"]')
    return list(section.xpath('.//div[@class="monitoring"]'))


def _text(node: Any) -> str:
    return " ".join(node.text_content().split())


def test_estimates_page_shows_the_monitoring_block(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    old = _old_snapshot(app)
    html = as_role(app, users, "viewer").get("/estimates").text
    # the trial name is shown, as text
    assert "<script>alert('tsa')</script>" not in html and "<b>7</b>" not in html
    assert "&lt;script&gt;alert(&#39;tsa&#39;)&lt;/script&gt; MM-&lt;b&gt;7&lt;/b&gt;" in html
    row = pooled["lenalidomide/PFS/all"]
    assert HOSTILE in [r["trial"] for r in row.inputs]
    view = row.result["monitoring"]
    (block,) = _block(html, row)
    assert block.get("data-status") == view["status"]
    assert _text(block.xpath("./h3")[0]) == "Sequential monitoring (monitoring only)"
    status = _text(block.xpath('.//p[@class="monitoring-status"]')[0])
    assert status.endswith(" ".join(view["text"].split()))
    assert "Monitoring only" in status
    summary = {_text(tr.xpath("th")[0]): _text(tr.xpath("td")[0])
               for tr in block.xpath('.//table[@class="monitoring-summary"]//tr')}
    assert summary["Information fraction"] == f"{100 * view['fraction']:.0f}%"
    assert summary["Required information"] == f"{view['required_events']:.0f} events"
    assert summary["Diversity D²"] == f"{100 * view['diversity']:.0f}%"
    assert summary["Plan"] == "HR 0.80, two-sided α 0.05, power 80%"
    (img,) = block.xpath(".//img")
    assert img.get("src") == f"/estimates/{row.id}/monitoring.svg"
    # the looks, collapsed
    (details,) = block.xpath(".//details")
    assert details.get("open") is None
    rows = [[_text(td) for td in tr.xpath("td")]
            for tr in details.xpath('.//table[@class="monitoring-looks"]/tbody/tr')]
    assert len(rows) == len(view["looks"]) >= 2
    for cells, look in zip(rows, view["looks"], strict=True):
        boundary = "—" if look["boundary"] is None else f"±{look['boundary']:.2f}"
        assert cells == [look["date_label"], str(look["k"]),
                         f"{look['events_equivalent']:.0f}", f"{100 * look['fraction']:.0f}%",
                         f"{look['z']:.2f}", boundary]
    # a snapshot from before monitoring existed shows no block (and no error)
    assert _block(html, old) == []


def svg_behind_login(app: Any, users: dict[str, str], url: str) -> str:
    """The SVG at ``url``: anonymous users are sent to the login page, a viewer gets it with
    the SVG content type and the no-script policy."""
    anonymous = TestClient(app, raise_server_exceptions=False)
    response = anonymous.get(url, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")
    response = as_role(app, users, "viewer").get(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    svg = response.text
    assert svg.lstrip().startswith(("<?xml", "<svg")) and svg.rstrip().endswith("</svg>")
    return svg


def test_monitoring_graph_is_an_svg_behind_login(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    row = pooled["lenalidomide/PFS/all"]
    svg = svg_behind_login(app, users, f"/estimates/{row.id}/monitoring.svg")
    assert "Z (&lt; 0 favours maintenance)" in svg and "Monitoring boundary" in svg
    assert (row.analysis_label or "")[:20] in svg  # titled with the analysis
    old = _old_snapshot(app)
    viewer = as_role(app, users, "viewer")
    missing = viewer.get(f"/estimates/{old.id}/monitoring.svg")
    assert missing.status_code == 404 and "has no sequential monitoring" in missing.text
    assert viewer.get("/estimates/99999/monitoring.svg").status_code == 404


def test_estimates_api_carries_monitoring(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    _old_snapshot(app)
    doc = api_as(app, users, "viewer").get("/api/estimates").json()
    by_key = {a["analysis"]: a for a in doc["analyses"]}
    entry = by_key["lenalidomide/PFS/all"]
    row = pooled["lenalidomide/PFS/all"]
    # additive: the existing keys stay
    assert {"id", "hr", "hr_ci_low", "forest_svg", "leave_one_out", "cumulative"} <= set(entry)
    assert entry["monitoring"] == row.result["monitoring"]
    assert set(entry["monitoring"]) >= {"plan", "required_information", "required_events",
                                        "diversity", "fraction", "z", "boundary", "favours",
                                        "status", "text", "looks"}
    assert entry["monitoring_svg"] == f"/estimates/{row.id}/monitoring.svg"
    assert by_key["bortezomib/PFS/all"]["monitoring"] is None
    assert by_key["bortezomib/PFS/all"]["monitoring_svg"] is None
