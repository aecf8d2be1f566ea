"""The /estimates page and GET /api/estimates: leave-one-out and the evidence over time under
each analysis, escaped, and shown only when they have something to say."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import lxml.html
import pytest
import test_web
from test_pool import add_estimate, add_trial
from test_web import api_as, as_role, db

from reports.pool import pool_all
from reports.selection import latest_results
from store.models import PooledResult

app = test_web.app
users = test_web.users

# A trial name a curator might type, and one that would be markup if not escaped.
HOSTILE = "<b>Cuts</b> & co"


@pytest.fixture
def pooled(app: Any) -> dict[str, PooledResult]:
    """Thalidomide post-ASCT: Trial A (2010), HOSTILE reported in 2012 and 2017, Trial C
    (2013 cut published 2014); lenalidomide post-ASCT: one trial only."""
    with db(app) as s:
        a = add_trial(s, "Trial A")
        add_estimate(s, a, "0.60", "0.45", "0.80", cut=date(2010, 6, 1))
        cuts = add_trial(s, HOSTILE)
        add_estimate(s, cuts, "0.48", "0.36", "0.63", year=2012)
        add_estimate(s, cuts, "0.57", "0.46", "0.71", year=2017)
        c = add_trial(s, "Trial C")
        add_estimate(s, c, "0.95", "0.70", "1.29", cut=date(2013, 5, 1), year=2014)
        alone = add_trial(s, "Alone", drug="lenalidomide")
        add_estimate(s, alone, "0.50", "0.40", "0.63", year=2012)
        s.commit()
    pool_all(app.state.ctx)
    with db(app) as s:
        return {r.analysis_key: r for r in latest_results(s) if r.k > 0}


def _section(html: str, row: PooledResult) -> Any:
    (section,) = lxml.html.fromstring(html).xpath(f'//section[@id="analysis-{row.id}"]')
    return section


def _rows(section: Any, table_class: str) -> list[list[str]]:
    return [[" ".join(td.text_content().split()) for td in tr.xpath("td")]
            for tr in section.xpath(f'.//table[@class="{table_class}"]/tbody/tr')]


def _old_snapshot(app: Any) -> PooledResult:
    # Earlier code stored a cumulative series ordered by each trial's latest cut, without
    # earlier cuts: it must not be presented as the evidence over time.
    with db(app) as s:
        row = PooledResult(
            analysis_key="bortezomib/PFS/all", analysis_label="Bortezomib (old snapshot)", k=2,
            estimate=-0.4, ci_low=-0.8, ci_high=0.0,
            result={"cumulative": [{"added": "A", "date": "2010-01-01", "k": 1, "hr": 0.6},
                                   {"added": "B", "date": "2017-12-31", "k": 2, "hr": 0.67}],
                    "leave_one_out": []},
            inputs=[])
        s.add(row)
        s.commit()
        s.refresh(row)
        return row


def test_estimates_page_shows_leave_one_out_and_evidence_over_time(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    old = _old_snapshot(app)
    html = as_role(app, users, "viewer").get("/estimates").text
    assert "<b>Cuts</b>" not in html and "&lt;b&gt;Cuts&lt;/b&gt; &amp; co" in html
    row = pooled["thalidomide/PFS/post_asct"]
    section = _section(html, row)
    loo = _rows(section, "leave-one-out")
    by_omitted = {cells[0]: cells for cells in loo}
    assert list(by_omitted) == ["Trial A", "Trial C", HOSTILE]
    stored = {e["omitted"]: e for e in row.result["leave_one_out"]}
    for name, cells in by_omitted.items():
        e = stored[name]
        assert cells[1:] == [f"{e['hr']:.2f}", f"{e['hr_ci_low']:.2f}–{e['hr_ci_high']:.2f}",
                             f"{e['i2']:.0f}%"]
    history = _rows(section, "evidence-over-time")
    assert [cells[:3] for cells in history] == [
        ["2010-06-01", "Trial A enters (2010 cut)", "1"],
        ["2012", f"{HOSTILE} enters (2012 cut)", "2"],
        ["2014", "Trial C enters (2013 cut)", "3"],
        ["2017", f"{HOSTILE} 2017 cut replaces 2012", "3"]]
    last = row.result["cumulative"][-1]
    assert history[-1][3:] == [f"{last['hr']:.2f}",
                               f"{last['hr_ci_low']:.2f}–{last['hr_ci_high']:.2f}"]
    # The last step is today's estimate.
    assert history[-1][3] == f"{math.exp(row.estimate or 0):.2f}"
    # One trial: neither a leave-one-out nor a history to show, nor a heterogeneity.
    overview = {" ".join(tr.xpath("td")[0].text_content().split()): [
        " ".join(td.text_content().split()) for td in tr.xpath("td")]
        for tr in lxml.html.fromstring(html).xpath('//table[@class="pooled"]/tbody/tr')}
    one = overview[pooled["lenalidomide/PFS/post_asct"].analysis_label or ""]
    assert one[1] == "1" and one[4:7] == ["—", "—", "—"]  # no PI, I² or τ²
    several = overview[row.analysis_label or ""]
    assert several[5] == f"{row.i2:.0f}%" and several[6] == f"{row.tau2:.3f}"
    alone = _section(html, pooled["lenalidomide/PFS/post_asct"])
    assert not alone.xpath('.//table[@class="leave-one-out"]')
    assert not alone.xpath('.//table[@class="evidence-over-time"]')
    assert not _section(html, old).xpath('.//table[@class="evidence-over-time"]')


def test_estimates_api_carries_leave_one_out_and_history(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    _old_snapshot(app)
    doc = api_as(app, users, "viewer").get("/api/estimates").json()
    entry = next(a for a in doc["analyses"] if a["analysis"] == "thalidomide/PFS/post_asct")
    assert [e["omitted"] for e in entry["leave_one_out"]] == ["Trial A", "Trial C", HOSTILE]
    assert {"k", "hr", "hr_ci_low", "hr_ci_high", "i2", "tau2", "estimate", "ci_low",
            "ci_high"} <= set(entry["leave_one_out"][0])
    steps = entry["cumulative"]
    assert [(s["date"], s["k"]) for s in steps] == [
        ("2010-06-01", 1), ("2012-12-31", 2), ("2014-12-31", 3), ("2017-12-31", 3)]
    assert steps[-1]["change"] == f"{HOSTILE} 2017 cut replaces 2012"
    assert steps[-1]["changes"][0]["change"] == "updated"
    assert steps[-1]["hr"] == pytest.approx(entry["hr"])
    alone = next(a for a in doc["analyses"] if a["analysis"] == "lenalidomide/PFS/post_asct")
    assert alone["leave_one_out"] == [] and len(alone["cumulative"]) == 1
    old = next(a for a in doc["analyses"] if a["analysis"] == "bortezomib/PFS/all")
    assert old["cumulative"] == []


def test_the_overview_names_the_method_and_a_single_trial_in_words(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    html = as_role(app, users, "viewer").get("/estimates").text
    page = lxml.html.fromstring(html)
    methods = {" ".join(td.text_content().split())
               for td in page.xpath('//table[@class="pooled"]/tbody/tr/td[9]')}
    assert "REML, HKSJ CI" in methods and methods <= {"REML, HKSJ CI", "REML, Wald CI"}
    assert not any("hksj" in m or "wald" in m for m in methods)  # not "REML / hksj"
    alone = pooled["lenalidomide/PFS/post_asct"]
    (alt,) = page.xpath(f'//section[@id="analysis-{alone.id}"]/img[@class="forest"]/@alt')
    assert alt.endswith(", 1 trial")


def test_each_analysis_says_what_its_fit_rests_on(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    """The fit's own notes (``reports.meta``) under each analysis, on the page and in the API:
    two trials say that τ² and the prediction interval rest on them; three trials do not;
    one trial has its line saying its HR and CI are the paper's instead of its fit's note."""
    alone = pooled["lenalidomide/PFS/post_asct"]
    before = as_role(app, users, "viewer").get("/estimates").text
    assert alone.k == 1 and alone.result["notes"]
    assert not _section(before, alone).xpath('.//ul[@class="hint fit-notes"]')
    assert _section(before, alone).xpath('.//p[@class="hint one-trial"]')
    with db(app) as s:
        second = add_trial(s, "Second", drug="lenalidomide")
        add_estimate(s, second, "0.75", "0.60", "0.94", year=2014)
        s.commit()
    pool_all(app.state.ctx)
    with db(app) as s:
        rows = {r.analysis_key: r for r in latest_results(s) if r.k > 0}
    two, three = rows["lenalidomide/PFS/post_asct"], rows["thalidomide/PFS/post_asct"]
    assert (two.k, three.k) == (2, 3)
    html = as_role(app, users, "viewer").get("/estimates").text

    def notes(row: PooledResult) -> list[str]:
        return [" ".join(li.text_content().split())
                for li in _section(html, row).xpath('.//ul[@class="hint fit-notes"]/li')]

    assert any(n.startswith("k = 2: τ² and the prediction interval rest on two trials")
               for n in notes(two))
    assert not any(n.startswith("k = 2") for n in notes(three))
    # one trial: the line saying its HR and CI are the paper's, not the fit's Wald note
    api = {a["analysis"]: a for a in api_as(app, users, "viewer").get("/api/estimates").json()[
        "analyses"]}
    assert api[two.analysis_key]["notes"] == two.result["notes"] and api[two.analysis_key]["notes"]


def _at(row: Any, when: str) -> Any:
    """Give a stored row its creation time (explicit, so the test never reads a clock)."""
    row.created_at = datetime.fromisoformat(when + "T00:00:00+00:00")
    return row


def test_a_new_data_cut_shows_its_risk_of_bias_as_carried_over(
        app: Any, users: dict[str, str]) -> None:
    """The RoB 2 judgment is per trial and endpoint: a 2014 cut entered after the 2010 cut was
    assessed showed the 2010 judgment as its own, with nothing to say so."""
    from sqlmodel import select
    from test_pool_bias import assess

    from store.models import BiasAssessment

    key = "thalidomide/PFS/post_asct"
    with db(app) as s:
        cuts, fresh = add_trial(s, "Two cuts"), add_trial(s, "Fresh")
        first = add_trial(s, "First")
        _at(add_estimate(s, cuts, "0.60", "0.45", "0.80", cut=date(2010, 6, 1)), "2011-01-01")
        typo = _at(add_estimate(s, fresh, "0.07", "0.05", "0.10", cut=date(2012, 1, 1)),
                   "2012-06-01")
        for trial in (cuts, fresh, first):
            assess(s, trial, "some_concerns")
        for row in s.exec(select(BiasAssessment)).all():
            _at(row, "2013-01-01")
        # Entered after the assessments: Two cuts' new cut (it had one before), and First's
        # only estimate (its paper was judged first: nothing is carried over).
        _at(add_estimate(s, cuts, "0.66", "0.52", "0.84", cut=date(2014, 6, 1)), "2015-01-01")
        _at(add_estimate(s, first, "0.80", "0.60", "1.07", cut=date(2014, 1, 1)), "2015-01-01")
        # Fresh's typo corrected after the assessment: the same estimate, judged already (a
        # correction of the estimate assessed is not an earlier cut's judgment carried over).
        fixed = _at(add_estimate(s, fresh, "0.70", "0.50", "0.98", cut=date(2012, 1, 1)),
                    "2015-01-01")
        fixed.supersedes_id = typo.id
        typo.withdrawn_at = datetime.fromisoformat("2015-01-01T00:00:00+00:00")
        s.commit()
    pool_all(app.state.ctx)
    with db(app) as s:
        row = {r.analysis_key: r for r in latest_results(s)}[key]
    inputs = {r["trial"]: r for r in row.inputs}
    assert inputs["Two cuts"]["data_cut"] == "2014-06-01"
    assert {t: r["risk_of_bias_carried_over"] for t, r in inputs.items()} == {
        "Two cuts": True, "Fresh": False, "First": False}
    assert all(r["risk_of_bias"] == "some_concerns" for r in inputs.values())  # still counts
    (rob,) = [d for d in row.result["certainty"]["domains"] if d["domain"] == "risk_of_bias"]
    share = round(inputs["Two cuts"]["weight"])
    assert rob["reason"].endswith(f"; results carrying {share}% of the weight keep the "
                                  "judgment of an earlier data cut (not re-assessed yet)")
    page = as_role(app, users, "viewer").get("/estimates").text
    (section,) = lxml.html.fromstring(page).xpath(f'//section[@id="analysis-{row.id}"]')
    marks = {tr.xpath("td")[0].text_content(): tr.xpath("td")[4].text_content()
             for tr in section.xpath("(.//table)[1]/tbody/tr")}
    assert marks["Two cuts"] == ("Some concerns (carried over: assessed on an earlier data cut; "
                                 "re-assess for this one)")
    assert marks["Fresh"] == marks["First"] == "Some concerns"
    # Re-assessing on the new cut, with the same judgment, clears the mark.
    with db(app) as s:
        assess(s, s.get(type(cuts), cuts.id), "some_concerns")
        _at(max(s.exec(select(BiasAssessment)).all(), key=lambda r: r.id or 0), "2016-01-01")
        s.commit()
    run = pool_all(app.state.ctx)
    assert key in {o.analysis.key for o in run.changed}
    with db(app) as s:
        row = {r.analysis_key: r for r in latest_results(s)}[key]
    assert not any(r["risk_of_bias_carried_over"] for r in row.inputs)
