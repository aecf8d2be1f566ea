"""Published numbers in ../shared/data/trials/.

No published pooled value there can be rebuilt from per-trial inputs: the pooled rows either
do not name their trials, or (McCarthy 2017, Singh 2013) name trials of which at least one has
no HR with a CI in trials.csv — and McCarthy 2017 pooled individual patient data anyway. The
first test checks that claim against the files, so it fails the day a rebuildable combination
appears (then add it here). What *can* be checked from the published numbers is tested:

- every per-trial HR with a 95% CI round-trips through derive + meta (k = 1) to its printed
  CI, to the printed rounding;
- every published pooled HR with a CI is symmetric on the log scale to rounding, as a
  frequentist CI must be, except the two Bayesian credible intervals of the network
  meta-analysis, which the sources note as asymmetric: our asymmetry warning flags exactly
  those.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from reports.derive import from_ci, printed_decimals
from reports.meta import meta_analysis


def _rows(shared_dir: Path, name: str) -> list[dict[str, str]]:
    with (shared_dir / "data" / "trials" / name).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _has_ci(row: dict[str, str]) -> bool:
    return bool(row["hr"] and row["ci_low"] and row["ci_high"])


def test_no_published_pool_can_be_rebuilt(shared_dir: Path) -> None:
    trials = [r for r in _rows(shared_dir, "trials.csv") if _has_ci(r)
              and r["hr_orientation"].startswith("maint_vs_control")]
    named = [r for r in _rows(shared_dir, "pooled.csv")
             if r["source_key"] in ("MCCARTHY2017", "SINGH2013ASH")]
    assert named, "the pooled rows that name their trials are gone: update this test"
    for row in named:
        listed = [t.strip() for t in row["trials"].split(",")]
        endpoint = "OS" if "OS" in row["analysis_label"] else "PFS"
        accepted = ("OS",) if endpoint == "OS" else ("PFS", "EFS", "TTP")
        missing = [name for name in listed
                   if not any(t["trial_name"].startswith(name) and t["endpoint"] in accepted
                              for t in trials)]
        assert missing, f"{row['source_key']} {endpoint} looks rebuildable now: add the test"
        assert "IFM 2005-02" in missing


def test_per_trial_cis_round_trip(shared_dir: Path) -> None:
    rows = [r for r in _rows(shared_dir, "trials.csv") if _has_ci(r)]
    assert len(rows) >= 8
    for r in rows:
        d = from_ci(r["hr"], r["ci_low"], r["ci_high"],
                    orientation="control_vs_maint" if r["hr_orientation"].startswith(
                        "control_vs_maint") else "maint_vs_control")
        res = meta_analysis([d.log_hr], [d.se], method="REML", ci="hksj")
        assert res.ci == "wald"  # k = 1
        hr, lo, hi = res.hr, res.hr_ci_low, res.hr_ci_high
        if d.orientation_entered == "control_vs_maint":
            hr, lo, hi = 1 / hr, 1 / hi, 1 / lo
        for ours, printed in ((hr, r["hr"]), (lo, r["ci_low"]), (hi, r["ci_high"])):
            unit = 10.0 ** -printed_decimals(printed)
            assert abs(ours - float(printed)) <= 1.5 * unit, (r["trial_name"], printed, ours)


def test_published_pooled_cis_are_log_symmetric_except_bayesian(shared_dir: Path) -> None:
    rows = [r for r in _rows(shared_dir, "pooled.csv") if _has_ci(r)]
    assert len(rows) >= 15
    warned = {(r["source_key"], r["analysis_label"]) for r in rows
              if from_ci(r["hr"], r["ci_low"], r["ci_high"]).warnings}
    assert warned, "expected the Bayesian credible intervals to be flagged"
    assert {key for key, _ in warned} == {"NMA_BLOODNEOPLASIA"}
    assert any("non-transplant" in label and "ixazomib" in label for _, label in warned)


@pytest.mark.parametrize(("hr", "lo", "hi"), [("0.48", "0.41", "0.55"), ("0.62", "0.57", "0.67")])
def test_pooled_se_from_published_ci(hr: str, lo: str, hi: str) -> None:
    # The SE a reader infers from a published pooled CI reproduces the CI (log-symmetric).
    d = from_ci(hr, lo, hi)
    assert math.exp(d.log_hr - 1.959964 * d.se) == pytest.approx(float(lo), abs=0.006)
    assert math.exp(d.log_hr + 1.959964 * d.se) == pytest.approx(float(hi), abs=0.006)
