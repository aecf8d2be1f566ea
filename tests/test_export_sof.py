"""`mmlr export sof`: the summary of findings, one row per pooled analysis, as CSV and a
Markdown table, read from the newest snapshots."""

from __future__ import annotations

import csv
import io
import math
from datetime import date
from pathlib import Path

from reports.export_sof import SOF_COLUMNS
from reports.exports import export
from reports.pool import pool_all
from reports.selection import latest_results
from reports.small_study import p_text
from store.baselines import add_baseline, validate_baseline
from store.models import User
from tests.conftest import cli_env, run_cli
from tests.test_pool import add_estimate, add_trial
from tests.test_pool_bias import assess

KEY = "thalidomide/PFS/post_asct"
PIPE = "MM|IX <b>"


def _evidence(ctx) -> None:
    with ctx.sessions() as s:
        for i, (name, hr, lo, hi, rob) in enumerate([("Low", "0.60", "0.45", "0.80", "low"),
                                                     (PIPE, "0.72", "0.55", "0.94", "high")]):
            trial = add_trial(s, name)
            add_estimate(s, trial, hr, lo, hi, cut=date(2010 + i, 1, 1))
            assess(s, trial, rob)
        s.commit()
    pool_all(ctx)


def test_csv_and_markdown_from_the_snapshots(ctx, tmp_path: Path) -> None:
    _evidence(ctx)
    with ctx.sessions() as s:  # and an analysis of one trial
        add_estimate(s, add_trial(s, "Single", drug="lenalidomide"), "0.57", "0.46", "0.71",
                     cut=date(2017, 1, 1))
        s.commit()
    pool_all(ctx)
    written = export(ctx, "sof", tmp_path)
    assert written == [tmp_path / "sof.csv", tmp_path / "sof.md"]
    rows = list(csv.DictReader(io.StringIO(written[0].read_text())))
    assert tuple(rows[0]) == SOF_COLUMNS
    with ctx.sessions() as s:
        snaps = {p.analysis_key: p for p in latest_results(s) if p.k > 0}
    assert [r["analysis"] for r in rows] == list(snaps)  # every pooled analysis, in order
    row = next(r for r in rows if r["analysis"] == KEY)
    snap = snaps[KEY]
    assert float(row["hr"]) == float(f"{math.exp(snap.estimate):.4g}")
    assert row["k"] == "2" and row["trials"] == f"Low; {PIPE}"
    certainty = snap.result["certainty"]
    assert row["certainty"] == certainty["level"]
    assert row["certainty_provisional"] == "false"
    # The high-risk trial has the narrower CI, so more than half the weight: rated down twice.
    assert row["rated_down"].startswith("risk of bias −2")
    assert float(row["rob_high_pct"]) > 50
    assert row["monitoring_status"] == snap.result["monitoring"]["status"]
    low_only = snap.result["risk_of_bias"]["sensitivity"][0]
    assert float(row["hr_low_rob_only"]) == float(f"{low_only['hr']:.4g}")
    assert row["snapshot_id"] == str(snap.id)
    md = written[1].read_text()
    assert "not a GRADE judgment" in md
    # A "|" in a trial name must not split the Markdown table's cells.
    line = next(ln for ln in md.splitlines() if "MM\\|IX" in ln)
    assert line.count(" | ") == 9
    # ... and "<b>" in it is text, not markup a Markdown renderer would pass on.
    assert "MM\\|IX &lt;b&gt;" in line and "<b>" not in md
    # Two trials: no funnel, so the small-study columns are empty and the cell a dash.
    assert (row["egger_p"], row["trim_fill_k0"], row["small_study_interpretable"]) == ("", "", "")
    assert "| — |" in line
    # No assumed control risk yet: no absolute effect, and the table says why.
    assert row["difference_per_1000"] == row["baseline_id"] == ""
    assert "— (no assumed control risk entered)" in line
    # Two trials have an I²; one trial has none, in the CSV as in the Markdown ("—")
    assert row["i2"] != ""
    single = [r for r in rows if r["k"] == "1"]
    assert single and all(r["i2"] == r["hr_pi_low"] == r["hr_pi_high"] == "" for r in single)
    # nobody assessed its risk of bias: the certainty says so, not "(provisional)" alone
    unassessed = next(r for r in rows if r["trials"] == "Single")
    assert unassessed["certainty_provisional"] == "true"
    assert "not assessed yet, which rates nothing down until it is assessed" in (
        unassessed["certainty_reasons"])
    line = next(ln for ln in md.splitlines() if ln.startswith(f"| {unassessed['label']} |"))
    assert line.endswith(f"| {unassessed['certainty']} (provisional: most of the weight has no "
                         "agreed risk-of-bias assessment) |"), line


def _control_risk(ctx, source: str):  # type: ignore[no-untyped-def]
    """A curator's assumed control risk for KEY: 35% event-free at 36 months."""
    with ctx.sessions() as s:
        user = User(email="c@example.org", role="curator", password_hash="x")
        s.add(user)
        s.commit()
        entry = add_baseline(s, entry=validate_baseline(
            analysis_key=KEY, months=36, event_free_percent=35, source=source), user=user)
        s.commit()
        s.refresh(entry)
        s.expunge(entry)
        return entry


def test_absolute_effect_columns(ctx, tmp_path: Path) -> None:
    _evidence(ctx)
    entry = _control_risk(ctx, "CALGB | 100104 control arm")
    with ctx.sessions() as s:
        snap = next(p for p in latest_results(s) if p.analysis_key == KEY)
    csv_path, md_path = export(ctx, "sof", tmp_path)
    rows = {r["analysis"]: r for r in csv.DictReader(io.StringIO(csv_path.read_text()))}
    row = rows[KEY]
    hr = math.exp(snap.estimate)
    assert int(row["difference_per_1000"]) == round(1000 * (0.35 - 0.35 ** hr))
    assert int(row["control_per_1000"]) == 650 and float(row["control_event_free_pct"]) == 35
    assert int(row["maintenance_per_1000_ci_low"]) == round(
        1000 * (1 - 0.35 ** math.exp(snap.ci_low)))
    assert (row["baseline_months"], row["baseline_id"]) == ("36", str(entry.id))
    # The sensitivity twin uses its primary analysis' entry; other analyses have none.
    twin = rows.get(KEY + "/with_strategy")
    assert twin is None or twin["baseline_id"] == str(entry.id)
    assert rows["thalidomide/PFS/all"]["baseline_id"] == ""
    line = next(ln for ln in md_path.read_text().splitlines() if ln.startswith("| Thal")
                and "post-ASCT" in ln and "PFS" in ln)
    assert "per 1000 with maintenance" in line
    assert "Assumed control risk: CALGB \\| 100104 control arm" in line
    # the assumptions behind every absolute effect, said to whoever reads the file alone
    assert ("assumes proportional hazards up to that time, and its 95% CI carries the HR's "
            "uncertainty only, not the control risk's") in md_path.read_text()


def test_an_entered_control_risk_that_gives_no_absolute_effect_is_not_said_missing(
        ctx, tmp_path: Path) -> None:
    # An entry stored before the checks refused it (a proportion of 0) gives no absolute
    # effect; the table said "no assumed control risk entered" of an entry that exists.
    _evidence(ctx)
    entry = _control_risk(ctx, "CALGB")
    with ctx.sessions() as s:
        entry.event_free = 0.0
        s.add(entry)
        s.commit()
    _, md_path = export(ctx, "sof", tmp_path)
    line = next(ln for ln in md_path.read_text().splitlines() if ln.startswith("| Thal")
                and "post-ASCT" in ln and "PFS" in ln)
    assert ("— (not computed: control event-free proportion 0.0 must be in (0, 1))"
            in line), line
    assert "no assumed control risk entered" not in line


def test_small_study_columns(ctx, tmp_path: Path) -> None:
    with ctx.sessions() as s:
        for i, (hr, lo, hi) in enumerate([("0.60", "0.50", "0.72"), ("0.45", "0.25", "0.81"),
                                          ("0.70", "0.55", "0.89"), ("0.30", "0.12", "0.75")]):
            add_estimate(s, add_trial(s, f"T{i}"), hr, lo, hi, cut=date(2010 + i, 1, 1))
        s.commit()
    pool_all(ctx)
    csv_path, md_path = export(ctx, "sof", tmp_path)
    row = next(r for r in csv.DictReader(io.StringIO(csv_path.read_text()))
               if r["analysis"] == KEY)
    with ctx.sessions() as s:
        funnel = next(p for p in latest_results(s) if p.analysis_key == KEY).result["small_study"]
    assert float(row["egger_p"]) == float(f"{funnel['egger']['p']:.4g}")
    assert int(row["trim_fill_k0"]) == funnel["trim_fill"]["k0"]
    assert float(row["hr_trim_fill"]) == float(f"{funnel['trim_fill']['hr']:.4g}")
    assert row["small_study_interpretable"] == "false"  # 4 trials < 10
    line = next(ln for ln in md_path.read_text().splitlines() if "T0; T1; T2; T3" in ln)
    assert f"Egger {p_text(funnel['egger']['p'])}" in line and "not interpretable" in line


def test_no_pooled_analysis_yet(ctx, tmp_path: Path) -> None:
    csv_path, md_path = export(ctx, "sof", tmp_path)
    assert csv_path.read_text().strip() == ",".join(SOF_COLUMNS)
    assert "no pooled analysis yet" in md_path.read_text()


def test_cli_writes_the_csv_to_stdout(ctx, settings) -> None:
    _evidence(ctx)
    proc = run_cli("export", "sof", env=cli_env(MMLR_DATA_DIR=str(settings.data_dir),
                                                MMLR_DATABASE_URL=settings.db_url))
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert KEY in {r["analysis"] for r in rows}


def test_an_empty_low_risk_only_cell_says_which_of_two_opposite_reasons(ctx) -> None:  # type: ignore[no-untyped-def]
    """Every trial at low risk (the HR is already the low-risk estimate) and no trial at low
    risk both leave the low-risk-only HR empty; the Markdown must not print the same "—"."""
    from reports.export_sof import sof_markdown, sof_rows

    with ctx.sessions() as s:
        for i, (name, hr, lo, hi) in enumerate([("Low A", "0.60", "0.45", "0.80"),
                                                ("Low B", "0.72", "0.55", "0.94")]):
            trial = add_trial(s, name)
            add_estimate(s, trial, hr, lo, hi, cut=date(2010 + i, 1, 1))
            assess(s, trial, "low")
        add_estimate(s, add_trial(s, "Unassessed", setting="non_transplant"),
                     "0.57", "0.46", "0.71", cut=date(2017, 1, 1))
        s.commit()
    pool_all(ctx)
    with ctx.sessions() as s:
        rows = {r["analysis"]: r for r in sof_rows(s)}
        md = sof_markdown(s)
    assert rows[KEY]["hr_low_rob_only"] is None
    assert rows[KEY]["low_rob_only_empty"] == "same_as_primary"
    assert rows["thalidomide/PFS/non_transplant"]["low_rob_only_empty"] == "none_low"
    line = next(ln for ln in md.splitlines() if ln.startswith(f"| {rows[KEY]['label']} |"))
    assert "| same as the HR (every trial at low risk) |" in line
    other = rows["thalidomide/PFS/non_transplant"]["label"]
    line = next(ln for ln in md.splitlines() if ln.startswith(f"| {other} |"))
    assert "| — (no trial assessed at low risk) |" in line
