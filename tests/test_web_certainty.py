"""Risk of bias and the suggested certainty where people read the evidence: /estimates (the RoB
column, the sensitivity table, the certainty block and column), GET /api/estimates and the
digest."""

from __future__ import annotations

from datetime import date
from typing import Any

import lxml.html
import pytest
import test_web
from sqlmodel import select
from test_pool import add_estimate, add_trial
from test_pool_bias import assess
from test_web import as_role, db

from reports.certainty import LEVELS
from reports.digest import build_digest
from reports.pool import pool_all
from reports.selection import latest_results
from store.models import PooledResult, Trial

app = test_web.app
users = test_web.users

HOSTILE = "<img src=x onerror=alert(1)> HR-<i>9</i>"
KEY = "thalidomide/PFS/post_asct"


@pytest.fixture
def pooled(app: Any) -> PooledResult:
    """Three thalidomide post-ASCT trials: low risk, high risk (named with markup), none."""
    with db(app) as s:
        for name, hr, lo, hi, rob in (("Low trial", "0.60", "0.45", "0.80", "low"),
                                      (HOSTILE, "0.45", "0.33", "0.62", "high"),
                                      ("Unassessed trial", "0.85", "0.66", "1.10", None)):
            trial = add_trial(s, name)
            add_estimate(s, trial, hr, lo, hi, cut=date(2010, 1, 1))
            if rob:
                assess(s, trial, rob)
        s.commit()
    pool_all(app.state.ctx)
    with db(app) as s:
        return {r.analysis_key: r for r in latest_results(s)}[KEY]


def _section(html: str, row: PooledResult) -> Any:
    (section,) = lxml.html.fromstring(html).xpath(f'//section[@id="analysis-{row.id}"]')
    return section


def _text(node: Any) -> str:
    return " ".join(node.text_content().split())


def test_estimates_page_shows_rob_and_certainty(app: Any, users: dict[str, str],
                                                pooled: PooledResult) -> None:
    html = as_role(app, users, "viewer").get("/estimates").text
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    section = _section(html, pooled)
    judgments = {_text(tr.xpath("td")[0]): _text(tr.xpath("td")[4])
                 for tr in section.xpath(".//table[not(@class)]/tbody/tr")}
    assert judgments == {"Low trial": "Low", HOSTILE: "High",
                         "Unassessed trial": "not assessed"}
    (sens,) = section.xpath('.//table[@class="rob-sensitivity"]')
    assert "(2 of 3 assessed)" in _text(sens.xpath("caption")[0])
    rows = {_text(tr.xpath("td")[0]): [_text(td) for td in tr.xpath("td")]
            for tr in sens.xpath("./tbody/tr")}
    expected = {e["label"]: e for e in pooled.result["risk_of_bias"]["sensitivity"]}
    low = rows["low risk of bias only"]
    assert low[1] == "1" and low[2] == f"{expected['low risk of bias only']['hr']:.2f}"
    assert rows["without high risk of bias"][-1] == HOSTILE
    certainty = pooled.result["certainty"]
    (block,) = section.xpath('.//div[@class="certainty"]')
    assert _text(block.xpath("./p")[0]) == certainty["text"]
    domains = {_text(tr.xpath("td")[0]): _text(tr.xpath("td")[1])
               for tr in block.xpath(".//tbody/tr")}
    assert domains["Risk of bias"] == f"−{certainty['domains'][0]['downgrade']}" or (
        domains["Risk of bias"] == "0" and certainty["domains"][0]["downgrade"] == 0)
    assert set(domains) == {"Risk of bias", "Inconsistency", "Indirectness", "Imprecision",
                            "Publication bias"}
    # ... and the overview table has the level.
    overview = lxml.html.fromstring(html).xpath('//table[@class="pooled"]/tbody/tr')
    cells = next(tr for tr in overview if _text(tr.xpath("td")[0]) == pooled.analysis_label)
    assert certainty["level"] in _text(cells)


def test_api_has_both_views(app: Any, users: dict[str, str], pooled: PooledResult) -> None:
    body = as_role(app, users, "viewer").get("/api/estimates").json()
    entry = next(a for a in body["analyses"] if a["analysis"] == KEY)
    assert entry["certainty"] == pooled.result["certainty"]
    assert entry["risk_of_bias"]["count"] == {"low": 1, "some_concerns": 0, "high": 1,
                                              "not_assessed": 1}


def test_snapshot_from_before_shows_neither(app: Any, users: dict[str, str]) -> None:
    with db(app) as s:
        row = PooledResult(analysis_key="bortezomib/PFS/all", analysis_label="Old snapshot",
                           k=1, estimate=-0.4, ci_low=-0.8, ci_high=0.0, result={}, inputs=[])
        s.add(row)
        s.commit()
        s.refresh(row)
    html = as_role(app, users, "viewer").get("/estimates").text
    section = _section(html, row)
    assert not section.xpath('.//div[@class="certainty"]')
    assert not section.xpath('.//table[@class="rob-sensitivity"]')


def test_digest_says_the_certainty_and_its_change(app: Any) -> None:
    ctx = app.state.ctx
    with db(app) as s:
        for i, (hr, lo, hi) in enumerate((("0.55", "0.45", "0.67"), ("0.60", "0.50", "0.72"))):
            trial = add_trial(s, f"Trial {i}")
            add_estimate(s, trial, hr, lo, hi, cut=date(2010 + i, 1, 1))
            assess(s, trial, "low")
        s.commit()
    pool_all(ctx)
    first = build_digest(ctx)
    with db(app) as s:
        level = {r.analysis_key: r for r in latest_results(s)}[KEY].result["certainty"]["level"]
    assert f"Suggested certainty (GRADE starting point): - -> {level}" in first.text
    # Both trials are judged at high risk after all: the suggestion drops, the digest says so.
    with db(app) as s:
        for trial in s.exec(select(Trial)).all():
            assess(s, trial, "high")
        s.commit()
    pool_all(ctx)
    with db(app) as s:
        new_level = {r.analysis_key: r for r in latest_results(s)}[KEY].result[
            "certainty"]["level"]
    assert LEVELS.index(new_level) == LEVELS.index(level) - 2
    second = build_digest(ctx)
    assert second.id != first.id
    assert f"Suggested certainty (GRADE starting point): {level} -> {new_level}" in second.text
    # ... and why the analysis is listed with the same numbers.
    assert ("Risk of bias (RoB 2) changed: Trial 0: high (was: low); Trial 1: high (was: low)."
            in second.text)
    assert "Risk of bias (RoB 2) changed: Trial 0: high (was: low)" in second.html
    assert "Risk of bias (RoB 2) changed" not in first.text
    # The heading says the numbers did not move (only the judgments did).
    label = next(a["label"] for a in second.summary["analyses"] if a["key"] == KEY)
    assert f"* {label} [updated, estimate unchanged]" in second.text
    assert "— updated, estimate unchanged" in second.html
    assert f"* {label} [new analysis]" in first.text
    rows = lxml.html.fromstring(second.html).xpath('//tr[@class="certainty"]')
    assert [level, new_level] in [[_text(td) for td in row.xpath("td")][1:] for row in rows]
