"""How numbers are shown (reports.words, reports.presentation): half-up rounding, one interval
convention per medium, and an analysis of one trial showing the paper's printed HR and CI —
in the digest, /estimates, /summary, the summary-of-findings export, the forest plot and the
CLI — while the pooled numbers stay the computed ones."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import lxml.html
import pytest
import test_web
from test_web import as_role, db

from reports.derive import from_ci, from_medians
from reports.digest import _pooled_view, format_hr
from reports.export_sof import sof_markdown, sof_rows
from reports.forest import forest_data
from reports.pool import pool_all
from reports.presentation import has_heterogeneity, is_one_trial, shown_hr, shown_hr_of
from reports.selection import latest_results
from reports.words import as_entered, hr_ci_text, hr_limit, hr_number, interval_text, rounded
from store.models import Estimate, PooledResult, Trial
from tests.test_pool import add_trial

app = test_web.app
users = test_web.users

ONE = "thalidomide/PFS/post_asct"


def add_printed(session: Any, trial: Trial, hr: str, lo: str, hi: str, *,
                endpoint: str = "PFS", orientation: str = "maint_vs_control",
                cut: date = date(2015, 1, 1)) -> Estimate:
    """A reported HR as the extraction form stores it: numbers maintenance vs control, and the
    text as typed (in the orientation entered)."""
    d = from_ci(hr, lo, hi, orientation=orientation)
    h, low, high = float(hr), float(lo), float(hi)
    if orientation == "control_vs_maint":
        h, low, high = 1 / h, 1 / high, 1 / low
    est = Estimate(trial_id=trial.id, endpoint=endpoint, setting=trial.setting, hr=h,
                   ci_low=low, ci_high=high, log_hr=d.log_hr, se=d.se, verified=True,
                   data_cut=cut, orientation_entered=orientation,
                   printed={"hr": hr, "ci_low": lo, "ci_high": hi})
    session.add(est)
    session.flush()
    return est


def _snapshots(ctx: Any) -> dict[str, PooledResult]:
    pool_all(ctx)
    with ctx.sessions() as s:
        return {p.analysis_key: p for p in latest_results(s) if p.k > 0}


# ----------------------------------------------------------------------------- rounding
@pytest.mark.parametrize(("value", "digits", "text"), [
    (1.025, 2, "1.03"),  # the float is 1.02499999…: half-up on what was printed
    ("1.025", 2, "1.03"),
    (0.125, 2, "0.13"),  # half-even would give 0.12
    (0.5, 0, "1"),
    (2.5, 0, "3"),  # half-even would give 2
    (12.0, 1, "12.0"),
    (None, 2, "—"),
    (float("nan"), 2, "—"),
    (math.inf, 2, "∞"),
    (-0.0004, 3, "0.000"),  # format() says "-0.000"
])
def test_rounding_is_half_up_on_the_decimal_text(value: Any, digits: int, text: str) -> None:
    assert rounded(value, digits) == text


def test_python_format_would_round_these_the_other_way() -> None:
    # what the function exists for: a test of half-up that format() also passed would prove
    # nothing
    assert f"{1.025:.2f}" == "1.02" and f"{0.125:.2f}" == "0.12" and f"{2.5:.0f}" == "2"


def test_hr_number_keeps_a_tiny_bound_readable() -> None:
    assert hr_number(0.004) == "0.004" and hr_number(0.00456) == "0.0046"
    assert hr_number(0.0) == "0.00" and hr_number(None) == "—"


def test_one_interval_convention_per_medium() -> None:
    assert hr_ci_text(0.54, 0.18, 1.64) == "0.54 (0.18–1.64)"
    assert hr_ci_text(0.54, 0.18, 1.64, "bracket") == "0.54 [0.18, 1.64]"
    assert interval_text("0.18", "1.64") == "0.18–1.64"
    assert hr_ci_text(1.234, None, None) == "1.23"


def test_a_computed_limit_next_to_1_keeps_its_side() -> None:
    """Two decimals wrote an upper limit of 0.9996 as "1.00" beside "excludes 1" (or in bold
    in the network's league table): the limit keeps the digits that leave it on its side."""
    assert hr_limit(0.9996, lower=False) == "0.9996"
    assert hr_limit(1.004, lower=True) == "1.004"
    assert hr_ci_text(0.9, 0.8, 0.9996) == "0.90 (0.80–0.9996)"
    assert hr_ci_text(1.2, 1.004, 1.3) == "1.20 (1.004–1.30)"
    # rounding that keeps the side, and 1 itself, are written as before
    assert hr_limit(1.004, lower=False) == "1.00" and hr_limit(0.9996, lower=True) == "1.00"
    assert hr_limit(1.0, lower=False) == "1.00" and hr_limit(None, lower=True) == "—"
    assert hr_limit(math.inf, lower=False) == hr_number(math.inf)
    shown = shown_hr(3, math.log(0.9), math.log(0.8), math.log(0.9996), [])
    assert shown.text() == "0.90 (0.80–0.9996)" and shown.includes_one is False


def test_as_entered_keeps_a_trailing_zero() -> None:
    assert as_entered("12.0") == "12.0" and as_entered(12.0) == "12.0" and as_entered(12) == "12"
    assert as_entered(" -3.50 ") == "-3.50"


def test_the_one_trial_rule() -> None:
    assert is_one_trial(1) and not is_one_trial(2) and not is_one_trial(0)
    assert has_heterogeneity(2) and not has_heterogeneity(1) and not has_heterogeneity(None)


# ----------------------------------------------------------------------------- one trial
def test_one_trial_shows_its_printed_ci_everywhere(ctx: Any) -> None:
    with ctx.sessions() as s:
        add_printed(s, add_trial(s, "Solo"), "0.55", "0.36", "0.86")
        s.commit()
    snap = _snapshots(ctx)[ONE]
    assert snap.k == 1
    # The defect: the CI rebuilt from the SE on the log scale says 0.85, the paper 0.86.
    rebuilt = format_hr(snap.estimate, snap.ci_low, snap.ci_high)
    assert rebuilt == "0.55 (0.36–0.85)"
    # The pooled numbers stay the computed ones ...
    assert math.exp(snap.ci_high) == pytest.approx(0.850, abs=1e-3)
    # ... and what is shown is the paper's.
    shown = shown_hr_of(snap)
    assert (shown.text(), shown.source) == ("0.55 (0.36–0.86)", "printed")
    view = _pooled_view(snap)
    assert view["hr_text"] == "0.55 (0.36–0.86)" and "as printed" in view["hr_note"]
    assert view["ci_high"] == snap.ci_high  # the digest compares the computed numbers
    with ctx.sessions() as s:
        (row,) = [r for r in sof_rows(s) if r["analysis"] == ONE]
        md = sof_markdown(s)
    assert (row["hr_shown"], row["hr_ci_low_shown"], row["hr_ci_high_shown"],
            row["hr_source"]) == ("0.55", "0.36", "0.86", "printed")
    assert row["hr_ci_high"] == pytest.approx(math.exp(snap.ci_high))  # machine column
    assert "| 0.55 (0.36–0.86) (one trial, as printed) |" in md
    assert forest_data(snap).overall.text == "0.55 [0.36, 0.86]"
    # The suggested certainty's reason quotes the same digits as the headline above it.
    (imprecision,) = [d for d in snap.result["certainty"]["domains"]
                      if d["domain"] == "imprecision"]
    assert imprecision["reason"].startswith("95% CI 0.36–0.86 excludes HR 1"), imprecision


def test_a_printed_limit_decides_the_imprecision_rule() -> None:
    """A trial's printed 1.00 is its CI: beside a computed 0.997 the reason said "excludes HR
    1" under the paper's "0.50–1.00" (and quoted the computed digits)."""
    from reports.certainty import suggest_certainty

    def reason(shown: tuple[str, str]) -> str:
        result = suggest_certainty(k=1, hr_ci_low=0.5, hr_ci_high=0.997, i2=None, q_p=None,
                                   rows=[], monitoring=None, shown_ci=shown)
        (imprecision,) = [d for d in result["domains"] if d["domain"] == "imprecision"]
        return str(imprecision["reason"])

    assert reason(("0.50", "1.00")) == "95% CI 0.50–1.00 includes no effect"
    assert reason(("0.50", "0.99")).startswith("95% CI 0.50–0.99 excludes HR 1")


def test_a_printed_ci_reaching_1_is_never_said_to_exclude_it(ctx: Any) -> None:
    """HR 0.80 (0.64–1.00) as printed: its SE came from 1.959964 and the CI was rebuilt with
    metafor's 1.95996398…, so the upper limit came back as 0.9999999982 and the reason read
    "95% CI 0.64–0.9999999982398722 excludes HR 1 (no effect)"."""
    from reports.meta import Z95

    with ctx.sessions() as s:
        add_printed(s, add_trial(s, "Solo"), "0.80", "0.64", "1.00")
        s.commit()
    snap = _snapshots(ctx)[ONE]
    # One quantile both ways: the rebuilt CI is the CI entered.
    assert math.exp(snap.ci_high) == pytest.approx(1.0, abs=1e-12)
    assert (math.log(1.0) - math.log(0.64)) / (2 * Z95) == pytest.approx(
        snap.inputs[0]["sei"], rel=1e-12)
    (imprecision,) = [d for d in snap.result["certainty"]["domains"]
                      if d["domain"] == "imprecision"]
    assert imprecision["downgrade"] == 1
    assert imprecision["reason"] == "95% CI 0.64–1.00 includes no effect"
    shown = shown_hr_of(snap)
    assert shown.text() == "0.80 (0.64–1.00)" and shown.includes_one is True
    assert _pooled_view(snap)["crosses_one"] is True


def test_only_a_trials_own_limits_are_quoted_as_shown() -> None:
    """``own_ci`` is the printed or reported limits of one trial; a pooled or derived CI is
    computed, so words about it use the computed numbers."""
    from reports.presentation import shown_hr

    printed = {"printed": {"hr": "0.55", "ci_low": "0.36", "ci_high": "0.86"}}
    assert shown_hr(1, math.log(0.55), math.log(0.36), math.log(0.85),
                    [printed]).own_ci == ("0.36", "0.86")
    reported = {"method": "reported_ci", "hr": 0.55, "ci_low": 0.36, "ci_high": 0.86}
    assert shown_hr(1, math.log(0.55), math.log(0.36), math.log(0.85),
                    [reported]).own_ci == ("0.36", "0.86")
    derived = {"method": "p_value_events"}
    assert shown_hr(1, math.log(0.55), math.log(0.36), math.log(0.85), [derived]).own_ci is None
    assert shown_hr(2, math.log(0.55), math.log(0.36), math.log(0.85),
                    [printed, reported]).own_ci is None


def test_one_trial_in_the_cli_table(ctx: Any) -> None:
    with ctx.sessions() as s:
        add_printed(s, add_trial(s, "Solo"), "0.55", "0.36", "0.86")
        s.commit()
    line = next(ln for ln in pool_all(ctx).describe().splitlines() if ln.startswith(ONE))
    assert "0.36–0.86" in line and "0.85" not in line


def test_one_trial_printed_with_three_decimals_stays_as_printed(ctx: Any) -> None:
    """TOURMALINE-MM3 OS, 1.025 (0.789–1.332): alone, as printed; beside another trial, two
    decimals half-up from the printed digits (1.03, where format() says 1.02)."""
    with ctx.sessions() as s:
        add_printed(s, add_trial(s, "MM3", drug="ixazomib"), "1.025", "0.789", "1.332",
                    endpoint="OS")
        s.commit()
    snaps = _snapshots(ctx)
    alone = snaps["ixazomib/OS/post_asct"]
    assert shown_hr_of(alone).text() == "1.025 (0.789–1.332)"
    plot = forest_data(alone)  # the trial's row and the result say the same digits
    assert plot.overall.text == plot.rows[0].text == "1.025 [0.789, 1.332]"
    assert f"{math.exp(alone.estimate):.2f}" == "1.02"
    with ctx.sessions() as s:
        add_printed(s, add_trial(s, "MM4", drug="ixazomib", setting="non_transplant"),
                    "1.090", "0.861", "1.381", endpoint="OS")
        s.commit()
    both = _snapshots(ctx)["ixazomib/OS/all"]
    assert both.k == 2 and shown_hr_of(both).source == "pooled"
    data = forest_data(both)
    assert {r.label: r.text for r in data.rows}["MM3"] == "1.03 [0.79, 1.33]"


def test_one_trial_entered_the_other_way_round_shows_its_stored_limits(ctx: Any) -> None:
    """Printed control vs maintenance, 1.82 (1.16–2.78): the digits shown are the inverse's,
    which nobody printed, so they are the stored limits rounded, never the SE's rebuild."""
    with ctx.sessions() as s:
        add_printed(s, add_trial(s, "Flip"), "1.82", "1.16", "2.78",
                    orientation="control_vs_maint")
        s.commit()
    snap = _snapshots(ctx)[ONE]
    shown = shown_hr_of(snap)
    assert shown.source == "trial"
    assert (shown.ci_low, shown.ci_high) == (hr_number(1 / 2.78), hr_number(1 / 1.16))


def test_one_derived_trial_says_it_has_no_printed_ci() -> None:
    d = from_medians(24.0, 12.0, events=200)
    inputs = [{"trial": "T", "yi": d.log_hr, "sei": d.se, "method": "medians",
               "hr": math.exp(d.log_hr), "ci_low": None, "ci_high": None}]
    shown = shown_hr(1, d.log_hr, d.log_hr - 1.96 * d.se, d.log_hr + 1.96 * d.se, inputs)
    assert shown.source == "derived" and shown.hr == "0.50"
    assert shown.note is not None and "the paper printed no CI" in shown.note
    assert "median survival times" in shown.note


def test_an_old_snapshot_without_printed_text_uses_the_stored_limits() -> None:
    """A snapshot stored before the printed text was kept still shows the trial's limits
    (stored as printed, as floats), not the rebuild from the SE."""
    d = from_ci("0.55", "0.36", "0.86")
    inputs = [{"trial": "T", "yi": d.log_hr, "sei": d.se, "method": "reported_ci",
               "hr": 0.55, "ci_low": 0.36, "ci_high": 0.86}]
    shown = shown_hr(1, d.log_hr, d.log_hr - 1.959964 * d.se, d.log_hr + 1.959964 * d.se,
                     inputs)
    assert (shown.text(), shown.source) == ("0.55 (0.36–0.86)", "trial")


def test_estimates_and_summary_pages_show_the_printed_ci(app: Any,
                                                         users: dict[str, str]) -> None:
    with db(app) as s:
        add_printed(s, add_trial(s, "Solo <b>"), "0.55", "0.36", "0.86")
        s.commit()
    pool_all(app.state.ctx)
    client = as_role(app, users, "viewer")
    page = client.get("/estimates")
    assert page.status_code == 200
    doc = lxml.html.fromstring(page.text)
    rows = doc.xpath("//table[contains(@class, 'pooled')]/tbody/tr")
    assert len(rows) == 2  # after ASCT and over all settings: the same one trial
    for row in rows:
        cells = [c.text_content().strip() for c in row.xpath("td")]
        assert cells[1:4] == ["1", "0.55", "0.36–0.86"]
    assert "one trial: its HR and CI as printed in the paper" in page.text
    (entry,) = [e for e in test_web.api_as(app, users, "viewer").get("/api/estimates")
                .json()["analyses"]
                if e["analysis"] == ONE]
    # the API keeps the computed numbers beside what is shown
    assert entry["shown"]["text"] == "0.55 (0.36–0.86)" and entry["shown"]["source"] == "printed"
    assert entry["hr_ci_high"] == pytest.approx(0.850, abs=1e-3)
    summary = client.get("/summary")
    (tr,) = lxml.html.fromstring(summary.text).xpath(
        f"//tr[@data-analysis='{ONE}']")
    assert tr.xpath("td")[2].text_content().split("(one")[0].strip() == "0.55 (0.36–0.86)"


def test_rounding_copes_with_any_float() -> None:
    # a τ² near the float range to 4 places needs more than Decimal's default 28 digits
    assert rounded(1e30, 4) == "1" + "0" * 30 + ".0000"
    assert rounded(1.7e308, 2).endswith(".00")


def test_the_one_trial_rule_lives_in_one_place() -> None:
    """No reader of a pooled result tests k against 1 or 2 itself: each asks
    reports.presentation (has_heterogeneity, is_one_trial, shown_hr, ci_used), so the rule
    cannot drift between the digest, the pages, the exports and the plots. The statistics
    (reports.meta) and the exported R code (metafor's own k) are not readers."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    rule = re.compile(r"\bk\s*(?:==|!=|<=|>=|<|>)\s*[12]\b")
    allowed = {root / "reports" / "meta.py", root / "reports" / "presentation.py"}
    found = []
    for folder in ("reports", "screening/web"):
        for path in sorted((root / folder).rglob("*")):
            if path.suffix not in (".py", ".html", ".j2") or path in allowed:
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if rule.search(line) and "res$k" not in line:  # R code: metafor's k
                    found.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    assert found == []


def test_the_printed_text_does_not_change_the_inputs_hash(ctx: Any) -> None:
    """A snapshot stored before the printed text was kept must not look "updated" (a digest
    would announce every analysis) only because its rows now carry it."""
    from reports.pool import _hash_inputs, compute_analysis
    from reports.selection import load_candidates

    with ctx.sessions() as s:
        add_printed(s, add_trial(s, "Solo"), "0.55", "0.36", "0.86")
        s.commit()
        candidates = load_candidates(s)
    from reports.analyses import default_analyses

    analysis = next(a for a in default_analyses(candidates) if a.key == ONE)
    outcome = compute_analysis(analysis, candidates, method="REML", ci="hksj")
    assert outcome.inputs[0]["printed"] == {"hr": "0.55", "ci_low": "0.36", "ci_high": "0.86"}
    before = [{k: v for k, v in r.items() if k != "printed"} for r in outcome.inputs]
    assert _hash_inputs(analysis, outcome.inputs) == _hash_inputs(analysis, before)
