"""The summary of findings page (/summary) and its CSV and Markdown downloads: behind login,
one row per pooled analysis with the numbers of ``reports.export_sof``, escaped, and safe to
open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from typing import Any

import lxml.html
import pytest
import test_web
import test_web_funnel
from fastapi.testclient import TestClient
from sqlmodel import select
from test_web import as_role, db
from test_web_funnel import FEW, MANY

from reports.export_sof import SOF_COLUMNS, sof_markdown, sof_rows
from reports.monitoring_view import STATUS_LABELS
from store.baselines import add_baseline, validate_baseline
from store.models import PooledResult, Trial, User
from store.spreadsheet import spreadsheet_safe

app = test_web.app
users = test_web.users
pooled = test_web_funnel.pooled


def _rows(html: str) -> dict[str, Any]:
    doc = lxml.html.fromstring(html)
    return {tr.get("data-analysis"): tr for tr in doc.xpath("//table[contains(@class, "
                                                              "'summary-of-findings')]/tbody/tr")}


def test_page_lists_every_analysis_with_its_numbers(app: Any, users: dict[str, str],
                                                    pooled: dict[str, PooledResult]) -> None:
    with db(app) as s:
        expected = {r["analysis"]: r for r in sof_rows(s)}
    page = as_role(app, users, "viewer").get("/summary")
    assert page.status_code == 200
    rows = _rows(page.text)
    assert set(rows) == set(expected)
    many = rows[MANY]
    cells = [c.text_content().strip() for c in many.xpath("td")]
    exp = expected[MANY]
    assert cells[1] == "12"
    assert cells[2] == f"{exp['hr']:.2f} ({exp['hr_ci_low']:.2f}–{exp['hr_ci_high']:.2f})"
    # no assumed control risk yet: the blank says why, as the Markdown download does
    assert " ".join(cells[3].split()) == "— (no assumed control risk entered)"
    assert cells[7] == exp["small_study_text"] and "Egger" in cells[7]
    # nobody assessed risk of bias: the empty low-risk-only cell says so
    assert " ".join(cells[6].split()) == "— (no trial assessed at low risk)"
    assert many.xpath("td/a")[0].get("href") == f"/estimates#analysis-{pooled[MANY].id}"
    assert "not a GRADE judgment" in page.text
    # The nav links to the page for every role.
    assert '<a href="/summary">Summary of findings</a>' in page.text


def test_absolute_effect_and_escaping(app: Any, users: dict[str, str],
                                      pooled: dict[str, PooledResult]) -> None:
    with db(app) as s:
        curator = s.exec(select(User).where(User.email == users["curator"])).one()
        add_baseline(s, entry=validate_baseline(
            analysis_key=FEW, months=36, event_free_percent=40,
            source="<script>alert(1)</script> registry"), user=curator)
        s.commit()
        text = next(r for r in sof_rows(s) if r["analysis"] == FEW)["absolute_text"]
    page = as_role(app, users, "viewer").get("/summary")
    cell = _rows(page.text)[FEW].xpath("td")[3].text_content()
    assert text in cell and "Assumed control risk: <script>alert(1)</script> registry" in cell
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; registry" in page.text


def test_downloads(app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    with db(app) as s:  # a trial name a spreadsheet would run as a formula
        trial = s.exec(select(Trial).where(Trial.name == "Len 1")).one()
        trial.name = "=HYPERLINK(\"http://x\")"
        s.add(trial)
        s.commit()
    from reports.pool import pool_all
    pool_all(app.state.ctx)
    client = as_role(app, users, "viewer")
    got = client.get("/summary.csv")
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert 'filename="mmlr-summary-of-findings.csv"' in got.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(got.text)))
    assert tuple(rows[0]) == SOF_COLUMNS
    few = next(r for r in rows if r["analysis"] == FEW)
    assert few["trials"].startswith("'=HYPERLINK") and few["k"] == "4"
    excel = client.get("/summary.csv?excel=1")
    assert not got.text.startswith("\ufeff")
    assert excel.content == "\ufeff".encode() + got.content
    md = client.get("/summary.md")
    assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
    assert md.text.startswith("# Summary of findings")


def test_an_analysis_named_after_a_typed_drug_is_not_a_formula(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    """The analysis key is built from the trial's drug, which curators type: its cell is
    written as text too, while the numbers of the same row stay numbers."""
    with db(app) as s:
        trial = s.exec(select(Trial).where(Trial.name == "Len 1")).one()
        trial.drug = "@SUM(1+1)*cmd|' /C calc'!A0"
        s.add(trial)
        s.commit()
    from reports.pool import pool_all
    pool_all(app.state.ctx)
    rows = list(csv.DictReader(io.StringIO(
        as_role(app, users, "viewer").get("/summary.csv").text)))
    typed = [r for r in rows if "sum(1+1)" in r["analysis"]]
    assert typed and all(r["analysis"].startswith("'@sum(1+1)") for r in typed)
    assert all(not r["hr"].startswith("'") and float(r["hr"]) > 0 for r in typed)


def test_spreadsheet_safe_leaves_numbers_and_plain_text() -> None:
    assert spreadsheet_safe("-0.25") == "-0.25" and spreadsheet_safe("+3") == "+3"
    assert spreadsheet_safe("@SUM(A1)") == "'@SUM(A1)" and spreadsheet_safe("-x") == "'-x"
    assert spreadsheet_safe("\tcmd") == "'\tcmd" and spreadsheet_safe("MRC IX") == "MRC IX"


def test_login_required(app: Any) -> None:
    anonymous = TestClient(app, raise_server_exceptions=False)
    for url in ("/summary", "/summary.csv", "/summary.md"):
        got = anonymous.get(url, follow_redirects=False)
        assert got.status_code in (303, 401), url


def test_empty(app: Any, users: dict[str, str]) -> None:
    page = as_role(app, users, "viewer").get("/summary")
    assert page.status_code == 200 and "No pooled analysis yet" in page.text


def test_monitoring_is_named_in_words_and_marked_monitoring_only(
        app: Any, users: dict[str, str], pooled: dict[str, PooledResult]) -> None:
    """A panel member reading "firm evidence" beside a CI that includes 1 must be told that the
    column is sequential monitoring, not the result; and the status reads as in the digest
    ("conventionally significant only"), not as the stored code ("conventional only")."""
    with db(app) as s:
        expected = {r["analysis"]: r for r in sof_rows(s)}
        markdown = sof_markdown(s)
    page = as_role(app, users, "viewer").get("/summary")
    rows = _rows(page.text)
    monitored = [key for key, r in expected.items() if r["monitoring_status"]]
    assert monitored
    for key in monitored:
        r = expected[key]
        cell = " ".join(rows[key].xpath("td")[8].text_content().split())
        label = STATUS_LABELS[r["monitoring_status"]]
        assert cell == (f"{label}, {100 * r['information_fraction']:.0f}% of the required "
                        "information (monitoring only)")
        assert (f"| {label}, {100 * r['information_fraction']:.0f}% of required information "
                "(monitoring only) |") in markdown
    hint = " ".join(lxml.html.fromstring(page.text).xpath(
        '//span[@class="monitoring-hint"]')[0].text_content().split())
    assert "for monitoring only" in hint and "does not override a CI that includes 1" in hint
    assert "provisional</em> means" in page.text and "*provisional* means" in markdown
    for said in (page.text, markdown):  # why the small-study cell of k < 3 is "—"
        assert "with fewer than three no small-study assessment" in " ".join(said.split())


def test_an_i2_just_below_50_is_not_shown_as_50(app: Any, users: dict[str, str]) -> None:
    """HR 0.58 (0.43–0.77) and 0.78 (0.58–1.04): I² = 49.55% (metafor, REML), below the 50%
    the certainty rates down at. The page, the Markdown and the digest showed "50%" beside a
    certainty reason reading "I² = 49.6%"; every place now writes 49.6%."""
    from datetime import date

    from test_pool import add_estimate, add_trial

    from reports.digest import _pooled_view
    from reports.pool import pool_all
    from reports.selection import latest_results

    with db(app) as s:
        for name, hr, lo, hi in (("Near A", "0.58", "0.43", "0.77"),
                                 ("Near B", "0.78", "0.58", "1.04")):
            add_estimate(s, add_trial(s, name), hr, lo, hi, cut=date(2012, 1, 1))
        s.commit()
    pool_all(app.state.ctx)
    with db(app) as s:
        row = {r.analysis_key: r for r in latest_results(s)}[MANY]
        md = sof_markdown(s)
    assert row.i2 == pytest.approx(49.550088107002, abs=1e-6)  # metafor rma(), REML
    (inconsistency,) = [d for d in row.result["certainty"]["domains"]
                        if d["domain"] == "inconsistency"]
    assert inconsistency["downgrade"] == 0
    assert inconsistency["reason"].startswith("I² = 49.6%, ")
    cells = [c.text_content().strip()
             for c in _rows(as_role(app, users, "viewer").get("/summary").text)[MANY].xpath("td")]
    assert cells[5] == "49.6%"
    line = next(x for x in md.splitlines() if x.startswith(f"| {row.analysis_label}"))
    assert "| 49.6% |" in line and "| 50% |" not in line
    assert _pooled_view(row)["i2_text"] == "49.6%"
    page = as_role(app, users, "viewer").get("/estimates").text
    (tr,) = lxml.html.fromstring(page).xpath(
        f'//table[@class="pooled"]/tbody/tr[td/a[@href="#analysis-{row.id}"]]')
    assert tr.xpath("td")[5].text_content().strip() == "49.6%"
    # Whole percents stay whole; a value that rounds across 50 keeps the decimals it needs.
    from reports.presentation import i2_text
    assert (i2_text(72.4), i2_text(49.4), i2_text(49.55), i2_text(49.96), i2_text(50.2)) == (
        "72%", "49%", "49.6%", "49.96%", "50%")
    assert i2_text(None) == "—"
