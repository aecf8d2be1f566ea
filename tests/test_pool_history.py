"""The sensitivity views of a snapshot: the evidence over time (cumulative by publication date,
earlier data cuts replaced by later ones as they appear) and leave-one-out, checked against
R metafor and carried by ``mmlr pool --json``."""

from __future__ import annotations

import csv
import json
import math
import subprocess
from datetime import date
from pathlib import Path

import pytest
from test_meta_metafor import ORACLE
from test_pool import add_estimate, add_trial

from reports.analyses import Analysis, Candidate
from reports.meta import METAFOR_TEST, meta_analysis
from reports.pool import compute_analysis, pool_all
from reports.selection import latest_results
from store.models import Estimate

KEY = "thalidomide/PFS/post_asct"


def _snapshot(ctx, key: str = KEY):  # type: ignore[no-untyped-def]
    with ctx.sessions() as s:
        return {p.analysis_key: p for p in latest_results(s)}[key]


@pytest.fixture
def two_cuts(ctx):  # type: ignore[no-untyped-def]
    """Trial A (cut 2010-06), "Cuts" reported in 2012 and again in 2017, Trial C whose 2013
    cut was published in 2014. Returns the ids of the 2012 and 2017 estimates of "Cuts"."""
    with ctx.sessions() as s:
        a = add_trial(s, "Trial A")
        add_estimate(s, a, "0.60", "0.45", "0.80", cut=date(2010, 6, 1))
        cuts = add_trial(s, "Cuts")
        early = add_estimate(s, cuts, "0.48", "0.36", "0.63", year=2012)
        late = add_estimate(s, cuts, "0.57", "0.46", "0.71", year=2017)
        c = add_trial(s, "Trial C")
        add_estimate(s, c, "0.95", "0.70", "1.29", cut=date(2013, 5, 1), year=2014)
        s.commit()
        return early.id, late.id


def test_history_uses_the_earlier_cut_until_the_later_one_is_published(ctx, two_cuts) -> None:
    early, late = two_cuts
    pool_all(ctx)
    snap = _snapshot(ctx)
    steps = snap.result["cumulative"]
    # Trial C's 2013 cut enters when it was published (2014), not at its cut date.
    assert [(s["date"], s["date_label"], s["k"]) for s in steps] == [
        ("2010-06-01", "2010-06-01", 1), ("2012-12-31", "2012", 2),
        ("2014-12-31", "2014", 3), ("2017-12-31", "2017", 3)]
    assert [s["change"] for s in steps] == [
        "Trial A enters (2010 cut)", "Cuts enters (2012 cut)", "Trial C enters (2013 cut)",
        "Cuts 2017 cut replaces 2012"]
    # Before 2017 the earlier cut is pooled; from 2017 on the later one replaces it.
    ids = [{row["estimate_id"] for row in s["studies"]} for s in steps]
    assert early in ids[1] and early in ids[2] and late not in ids[2]
    assert late in ids[3] and early not in ids[3]
    (change,) = steps[3]["changes"]
    assert (change["trial"], change["change"], change["estimate_ids"],
            change["replaced_estimate_ids"]) == ("Cuts", "updated", [late], [early])
    assert steps[3]["added"] == "Cuts"
    # The last step is the main estimate; each step pools exactly its listed studies.
    assert {r["estimate_id"] for r in snap.inputs} == ids[3]
    for fld in ("estimate", "ci_low", "ci_high", "tau2", "i2"):
        assert steps[-1][fld] == pytest.approx(getattr(snap, fld), rel=1e-12, abs=1e-12)
    for step in steps:
        ref = meta_analysis([r["yi"] for r in step["studies"]],
                            [r["sei"] for r in step["studies"]], method="REML", ci="hksj")
        assert step["estimate"] == pytest.approx(ref.estimate, rel=1e-12, abs=1e-12)
        assert step["hr_ci_high"] == pytest.approx(math.exp(ref.ci_high), rel=1e-12)


def test_verifying_an_earlier_cut_writes_a_new_snapshot(ctx, two_cuts) -> None:
    early, _ = two_cuts
    with ctx.sessions() as s:
        est = s.get(Estimate, early)
        est.verified = False
        s.add(est)
        s.commit()
    pool_all(ctx)
    before = _snapshot(ctx)
    assert [s["change"] for s in before.result["cumulative"]][1:] == [
        "Trial C enters (2013 cut)", "Cuts enters (2017 cut)"]
    with ctx.sessions() as s:
        est = s.get(Estimate, early)
        est.verified = True
        s.add(est)
        s.commit()
    run = pool_all(ctx)
    # The pooled inputs are the same (the 2017 cut), only the history changed: it must be
    # stored, or the page would go on showing the old one.
    assert KEY in {o.analysis.key for o in run.changed}
    after = _snapshot(ctx)
    assert after.id != before.id and after.inputs_hash == before.inputs_hash
    assert after.estimate == before.estimate
    assert [s["change"] for s in after.result["cumulative"]][-1] == "Cuts 2017 cut replaces 2012"
    assert pool_all(ctx).changed == []


def test_mmlr_pool_json_carries_leave_one_out_and_history(ctx, two_cuts, db_url, monkeypatch,
                                                          capsys) -> None:
    from monitor.cli import main

    monkeypatch.setenv("MMLR_DATABASE_URL", db_url)
    assert main(["pool", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    entry = next(a for a in doc["analyses"] if a["name"] == KEY)
    assert [e["omitted"] for e in entry["leave_one_out"]] == ["Trial A", "Trial C", "Cuts"]
    assert all(e["k"] == 2 for e in entry["leave_one_out"])
    assert [s["k"] for s in entry["cumulative"]] == [1, 2, 3, 3]
    assert entry["cumulative"][-1]["hr"] == pytest.approx(entry["hr"])
    assert {"date", "date_label", "change", "changes", "added", "studies", "k", "hr",
            "hr_ci_low", "hr_ci_high", "i2", "tau2"} <= set(entry["cumulative"][0])
    # The stored snapshot says the same as the JSON.
    assert _snapshot(ctx).result["leave_one_out"] == entry["leave_one_out"]


# ----------------------------------------------------------------------------- R metafor
def _candidate(estimate_id: int, trial_id: int, name: str, hr: float, lo: float, hi: float,
               **when: object) -> Candidate:
    return Candidate(estimate_id=estimate_id, trial_id=trial_id, trial_name=name,
                     drug="lenalidomide", is_strategy=False, endpoint="PFS",
                     setting="post_asct", comparison="lenalidomide vs placebo",
                     log_hr=math.log(hr), se=_se(lo, hi), verified=True,
                     **when)  # type: ignore[arg-type]


def _se(lo: float, hi: float) -> float:
    return (math.log(hi) - math.log(lo)) / (2 * 1.959964)


def test_leave_one_out_and_history_step_agree_with_metafor(tmp_path: Path, rscript: str) -> None:
    # The same evidence as above, built here as plain numbers so that R pools what we
    # typed, not what our selection produced.
    a, early, c, late = (0.60, 0.45, 0.80), (0.48, 0.36, 0.63), (0.95, 0.70, 1.29), \
        (0.57, 0.46, 0.71)
    candidates = [
        _candidate(1, 1, "Trial A", *a, data_cut=date(2010, 6, 1)),
        _candidate(2, 2, "Cuts", *early, report_year=2012),
        _candidate(3, 3, "Trial C", *c, data_cut=date(2013, 5, 1), report_year=2014),
        _candidate(4, 2, "Cuts", *late, report_year=2017),
    ]
    datasets = {
        # rma(yi, sei) on the 2014 evidence: Trial A, the 2012 cut of "Cuts", Trial C
        "step_2014": [a, early, c],
        # rma(yi, sei) on today's evidence without Trial A: the 2017 cut, Trial C
        "loo_without_a": [late, c],
    }
    inp, out = tmp_path / "in.csv", tmp_path / "out.csv"
    with inp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["dataset", "yi", "sei"])
        for name, rows in datasets.items():
            for hr, lo, hi in rows:
                writer.writerow([name, repr(math.log(hr)), repr(_se(lo, hi))])
    proc = subprocess.run([rscript, str(ORACLE), str(inp), str(out)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with out.open() as fh:
        ref = {(r["dataset"], r["method"], r["test"]): r for r in csv.DictReader(fh)}

    analysis = Analysis("lenalidomide", "post_asct", "PFS")
    for method, ci in (("REML", "hksj"), ("DL", "wald"), ("PM", "hksj-adhoc")):
        outcome = compute_analysis(analysis, candidates, method=method, ci=ci)
        step = next(s for s in outcome.extras["cumulative"] if s["date"] == "2014-12-31")
        loo = next(e for e in outcome.extras["leave_one_out"] if e["omitted"] == "Trial A")
        for ours, dataset in ((step, "step_2014"), (loo, "loo_without_a")):
            theirs = ref[(dataset, method, METAFOR_TEST[ci])]
            assert ours["k"] == int(theirs["k"])
            for fld in ("estimate", "ci_low", "ci_high", "tau2", "i2", "pi_low", "pi_high"):
                assert ours[fld] == pytest.approx(float(theirs[fld]), rel=1e-6, abs=1e-6), (
                    method, ci, dataset, fld)
