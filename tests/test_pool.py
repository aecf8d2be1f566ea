"""pool_all on a real database (SQLite file, or PostgreSQL with MMLR_TEST_DATABASE_URL):
snapshots, idempotency, selection rules, JSON shape, self-contained stored rows."""

from __future__ import annotations

import math
import threading
from datetime import date

import pytest
from sqlmodel import select

from reports.derive import from_ci
from reports.meta import meta_analysis
from reports.pool import pool_all
from reports.selection import latest_results
from store.context import make_context
from store.models import AuditLog, Estimate, PooledResult, Trial, TrialReport


def add_trial(session, name: str, drug: str = "thalidomide", *, setting: str = "post_asct",
              is_strategy: bool = False) -> Trial:
    trial = Trial(name=name, drug=drug, setting=setting, is_strategy=is_strategy)
    session.add(trial)
    session.flush()
    return trial


def add_estimate(session, trial: Trial, hr: str, lo: str, hi: str, *, endpoint: str = "PFS",
                 setting: str | None = None, cut: date | None = None, year: int | None = None,
                 verified: bool = True, comparison: str = "maintenance vs control",
                 approximate: bool = False) -> Estimate:
    report = None
    if year is not None:
        report = TrialReport(trial_id=trial.id, citation=f"{trial.name} {year}", year=year)
        session.add(report)
        session.flush()
    d = from_ci(hr, lo, hi)
    est = Estimate(trial_id=trial.id, report_id=report.id if report else None,
                   endpoint=endpoint, setting=setting or trial.setting, comparison=comparison,
                   hr=float(hr), ci_low=float(lo), ci_high=float(hi), log_hr=d.log_hr, se=d.se,
                   data_cut=cut, verified=verified, approximate=approximate)
    session.add(est)
    session.flush()
    return est


@pytest.fixture
def evidence(ctx):
    """Four thalidomide post-ASCT trials (one EFS), two non-transplant, one lenalidomide."""
    with ctx.sessions() as s:
        a = add_trial(s, "Trial A")
        add_estimate(s, a, "0.60", "0.45", "0.80", cut=date(2010, 6, 1))
        b = add_trial(s, "Trial B")
        add_estimate(s, b, "0.72", "0.55", "0.94", endpoint="EFS", year=2008)
        c = add_trial(s, "Trial C")
        add_estimate(s, c, "0.95", "0.70", "1.29", cut=date(2012, 1, 1))
        add_estimate(s, c, "0.80", "0.62", "1.03", endpoint="OS", cut=date(2012, 1, 1))
        d = add_trial(s, "Trial D", setting="non_transplant")
        add_estimate(s, d, "0.55", "0.36", "0.86", cut=date(2009, 1, 1))
        e = add_trial(s, "Trial E", setting="non_transplant")
        add_estimate(s, e, "0.85", "0.66", "1.10", cut=date(2013, 3, 1))
        f = add_trial(s, "Trial F", drug="lenalidomide")
        add_estimate(s, f, "0.57", "0.46", "0.71", endpoint="TTP", cut=date(2017, 1, 1))
        s.commit()
    return ctx


def _by_key(run):
    return {o.analysis.key: o for o in run.outcomes}


def test_pool_all_stores_snapshots_and_is_idempotent(evidence) -> None:
    first = pool_all(evidence)
    keys = {o.analysis.key for o in first.changed}
    assert {"thalidomide/PFS/post_asct", "thalidomide/PFS/non_transplant",
            "thalidomide/PFS/all", "thalidomide/OS/post_asct", "thalidomide/OS/all",
            "lenalidomide/PFS/post_asct", "lenalidomide/PFS/all"} == keys
    with evidence.sessions() as s:
        n_snap = len(s.exec(select(PooledResult)).all())
        n_audit = len(s.exec(select(AuditLog)).all())
    assert n_snap == len(keys) and n_audit == 1

    second = pool_all(evidence)
    assert second.changed == []
    with evidence.sessions() as s:
        assert len(s.exec(select(PooledResult)).all()) == n_snap
        assert len(s.exec(select(AuditLog)).all()) == n_audit
    # Same snapshot ids reported, same numbers.
    a, b = _by_key(first), _by_key(second)
    for key in keys:
        assert a[key].snapshot_id == b[key].snapshot_id
        assert a[key].result.estimate == b[key].result.estimate


def test_two_pools_at_once_store_each_snapshot_once(evidence) -> None:  # type: ignore[no-untyped-def]
    # `mmlr pool` by hand while the worker's cycle pools: each would compare with the same
    # previous snapshots and store every change, so the evidence over time got each step twice.
    from store.errors import LockedError
    from store.locks import job_lock

    with job_lock(evidence.engine, "pool"), pytest.raises(LockedError, match="'pool'"):
        pool_all(evidence)
    with evidence.sessions() as s:
        assert s.exec(select(PooledResult)).all() == []  # the second run stored nothing

    contexts = [make_context(evidence.settings) for _ in range(2)]
    barrier = threading.Barrier(2)
    ended: list[str] = []

    def one(ctx) -> None:  # type: ignore[no-untyped-def]
        barrier.wait()
        try:
            pool_all(ctx)
            ended.append("pooled")
        except LockedError:
            ended.append("locked")

    try:
        threads = [threading.Thread(target=one, args=(c,)) for c in contexts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for c in contexts:
            c.dispose()
    assert "pooled" in ended and len(ended) == 2
    with evidence.sessions() as s:
        keys = [r.analysis_key for r in s.exec(select(PooledResult)).all()]
    assert sorted(keys) == sorted(set(keys)) and len(keys) == 7


def test_stored_numbers_are_the_estimator_on_the_selected_inputs(evidence) -> None:
    pool_all(evidence)
    with evidence.sessions() as s:
        snap = {p.analysis_key: p for p in latest_results(s)}["thalidomide/PFS/post_asct"]
    assert [r["trial"] for r in snap.inputs] == ["Trial B", "Trial A", "Trial C"]  # by date
    ref = meta_analysis([r["yi"] for r in snap.inputs], [r["sei"] for r in snap.inputs],
                        method="REML", ci="hksj")
    assert snap.k == 3 and snap.method == "REML" and snap.ci_method == "hksj"
    for field in ("estimate", "se", "ci_low", "ci_high", "pi_low", "pi_high", "tau2", "i2",
                  "q", "q_p"):
        assert getattr(snap, field) == pytest.approx(getattr(ref, field), rel=1e-12, abs=1e-12)
    assert [r["weight"] for r in snap.inputs] == pytest.approx(ref.weights)
    assert snap.result["hr"] == pytest.approx(math.exp(ref.estimate))
    assert len(snap.result["leave_one_out"]) == 3
    assert [c["k"] for c in snap.result["cumulative"]] == [1, 2, 3]
    assert snap.result["cumulative"][0]["added"] == "Trial B"
    assert snap.settings == {"method": "REML", "ci": "hksj", "monitoring": {
        "anticipated_hr": 0.8, "alpha": 0.05, "power": 0.8}}
    assert snap.result["monitoring"]["looks"][-1]["k"] == 3
    assert snap.code_version and len(snap.inputs_hash) == 64


def test_a_subgroup_of_identical_trials_leaves_the_run_pooling(ctx) -> None:
    """Two trials with the same HR and CI (one trial entered twice, say) in one setting: HKSJ
    gives that subgroup SE 0, and the test for subgroup differences raised, so the pool run
    stored no analysis at all and the cycle sent no digest."""
    with ctx.sessions() as s:
        for name in ("TWIN-A", "TWIN-B"):
            add_estimate(s, add_trial(s, name), "0.60", "0.45", "0.80")
        add_estimate(s, add_trial(s, "NT-1", setting="non_transplant"), "0.75", "0.60", "0.94")
        add_estimate(s, add_trial(s, "LEN-1", "lenalidomide"), "0.50", "0.40", "0.63")
        s.commit()
    run = pool_all(ctx)
    out = _by_key(run)
    assert out["thalidomide/PFS/post_asct"].k == 2  # its zero-width interval, as before
    assert out["lenalidomide/PFS/post_asct"].k == 1  # the other analyses pool
    every = out["thalidomide/PFS/all"]
    assert every.k == 3 and every.subgroup_test is None
    assert any("no test for subgroup differences: subgroup 'post_asct' has a zero standard "
               "error" in n for n in every.extras["notes"])


def test_efs_ttp_flagged_and_subgroups_in_all(evidence) -> None:
    run = pool_all(evidence)
    out = _by_key(run)["thalidomide/PFS/all"]
    flags = {r["trial"]: r["flags"] for r in out.inputs}
    assert flags["Trial B"] == ["EFS"] and flags["Trial A"] == []
    assert out.extras["flags"]["efs_ttp"] == ["Trial B"]
    assert [sg["name"] for sg in out.extras["subgroups"]] == ["post_asct", "non_transplant"]
    assert out.subgroup_test is not None and out.subgroup_test.df == 1
    doc = run.to_json()
    assert "thalidomide/PFS/all" in doc["subgroup_test"]
    assert set(doc["subgroup_test"]["thalidomide/PFS/all"]) >= {"q", "df", "p"}
    len_out = _by_key(run)["lenalidomide/PFS/post_asct"]
    assert len_out.inputs[0]["flags"] == ["TTP"] and len_out.k == 1


def test_json_shape(evidence) -> None:
    doc = pool_all(evidence).to_json()
    assert doc["method"] == "REML" and doc["ci"] == "hksj"
    required = {"name", "k", "estimate", "se", "ci_low", "ci_high", "pi_low", "pi_high", "hr",
                "hr_ci_low", "hr_ci_high", "tau2", "i2", "q", "q_p"}
    names = [a["name"] for a in doc["analyses"]]
    assert names[:2] == ["thalidomide/PFS/post_asct", "thalidomide/PFS/non_transplant"]
    for entry in doc["analyses"]:
        assert required <= set(entry)
        assert entry["hr"] == pytest.approx(math.exp(entry["estimate"]))
    # IMWG analyses without data are listed, not silently dropped.
    assert "lenalidomide/PFS/non_transplant" in doc["no_data"]
    assert doc["snapshots_written"] == 7


def test_new_estimate_only_changes_affected_analyses(evidence) -> None:
    pool_all(evidence)
    with evidence.sessions() as s:
        g = add_trial(s, "Trial G", drug="lenalidomide", setting="non_transplant")
        add_estimate(s, g, "0.49", "0.35", "0.68", cut=date(2012, 5, 1))
        s.commit()
    run = pool_all(evidence)
    assert {o.analysis.key for o in run.changed} == {
        "lenalidomide/PFS/non_transplant", "lenalidomide/PFS/all"}


def test_settings_change_writes_new_snapshots(evidence, settings) -> None:
    pool_all(evidence)
    other = make_context(replace_settings(settings, pool_method="DL", pool_ci="wald"),
                         upgrade=False)
    try:
        run = pool_all(other)
        assert len(run.changed) == 7
        snap = {p.analysis_key: p for p in _latest(other)}["thalidomide/PFS/post_asct"]
        assert snap.method == "DL" and snap.settings["ci"] == "wald"
        assert pool_all(other).changed == []
    finally:
        other.dispose()


def replace_settings(settings, **changes):
    return settings.model_copy(update=changes)


def _latest(ctx):
    with ctx.sessions() as s:
        return latest_results(s)


def test_latest_verified_data_cut_wins(ctx) -> None:
    with ctx.sessions() as s:
        t = add_trial(s, "Cuts")
        old = add_estimate(s, t, "0.70", "0.50", "0.98", cut=date(2010, 1, 1))
        new = add_estimate(s, t, "0.60", "0.48", "0.75", cut=date(2014, 1, 1))
        unverified = add_estimate(s, t, "0.40", "0.30", "0.53", cut=date(2019, 1, 1),
                                  verified=False)
        s.commit()
        ids = old.id, new.id, unverified.id
    out = _by_key(pool_all(ctx))["thalidomide/PFS/post_asct"]
    assert [r["estimate_id"] for r in out.inputs] == [ids[1]]
    reasons = {d["estimate_id"]: d["reason"] for d in out.extras["dropped"]}
    assert reasons[ids[2]] == "not verified"
    assert reasons[ids[0]].startswith("superseded by estimate")


def test_a_dated_cut_of_a_later_report_replaces_the_report_year_of_an_earlier_one(ctx) -> None:
    # CALGB 100104 is seeded from its 2017 report, without a data cut date; a 2018 report
    # with a cut of mid-2017 is the later cut (read as 31 December 2017, it was left out).
    with ctx.sessions() as s:
        t = add_trial(s, "CALGB-like")
        seeded = add_estimate(s, t, "0.57", "0.46", "0.71", year=2017)
        update = add_estimate(s, t, "0.61", "0.50", "0.74", endpoint="TTP",
                              cut=date(2017, 6, 30), year=2018)
        s.commit()
        ids = seeded.id, update.id
    out = _by_key(pool_all(ctx))["thalidomide/PFS/post_asct"]
    assert [r["estimate_id"] for r in out.inputs] == [ids[1]]
    (reason,) = [d["reason"] for d in out.extras["dropped"] if d["estimate_id"] == ids[0]]
    assert "judged by the report years" in reason


def test_same_cut_prefers_pfs_over_efs(ctx) -> None:
    with ctx.sessions() as s:
        t = add_trial(s, "Both")
        add_estimate(s, t, "0.70", "0.50", "0.98", endpoint="PFS", cut=date(2010, 1, 1))
        add_estimate(s, t, "0.65", "0.50", "0.85", endpoint="EFS", cut=date(2010, 1, 1))
        s.commit()
    out = _by_key(pool_all(ctx))["thalidomide/PFS/post_asct"]
    assert [r["endpoint"] for r in out.inputs] == ["PFS"]


def test_strategy_trials_only_in_sensitivity(ctx) -> None:
    with ctx.sessions() as s:
        a = add_trial(s, "Clean")
        add_estimate(s, a, "0.60", "0.45", "0.80", cut=date(2010, 1, 1))
        h = add_trial(s, "HOVON-65-like", is_strategy=True)
        add_estimate(s, h, "0.75", "0.62", "0.90", cut=date(2012, 1, 1))
        s.commit()
    out = _by_key(pool_all(ctx))
    primary = out["thalidomide/PFS/post_asct"]
    sens = out["thalidomide/PFS/post_asct/with_strategy"]
    assert [r["trial"] for r in primary.inputs] == ["Clean"]
    assert any("strategy" in d["reason"] for d in primary.extras["dropped"])
    assert [r["trial"] for r in sens.inputs] == ["Clean", "HOVON-65-like"]
    assert sens.inputs[1]["flags"] == ["strategy"] and sens.analysis.include_strategy


def test_multi_arm_trial_contributes_one_comparison(ctx) -> None:
    with ctx.sessions() as s:
        t = add_trial(s, "MM-015-like", drug="lenalidomide", setting="non_transplant")
        first = add_estimate(s, t, "0.49", "0.37", "0.65", comparison="MPR-R vs MPR",
                             cut=date(2012, 1, 1))
        add_estimate(s, t, "0.40", "0.30", "0.53", comparison="MPR-R vs MP",
                     cut=date(2012, 1, 1))
        s.commit()
        first_id = first.id
    out = _by_key(pool_all(ctx))["lenalidomide/PFS/non_transplant"]
    assert [r["estimate_id"] for r in out.inputs] == [first_id]
    assert out.inputs[0]["comparison"] == "MPR-R vs MPR"
    assert any("multi-arm" in d["reason"] for d in out.extras["dropped"])


def test_strata_enter_all_separately_unless_whole_trial_estimate(ctx) -> None:
    with ctx.sessions() as s:
        t = add_trial(s, "MRC IX-like", setting="mixed")
        add_estimate(s, t, "0.70", "0.55", "0.89", setting="post_asct", cut=date(2012, 1, 1))
        add_estimate(s, t, "0.85", "0.66", "1.10", setting="non_transplant",
                     cut=date(2012, 1, 1))
        s.commit()
    out = _by_key(pool_all(ctx))["thalidomide/PFS/all"]
    assert sorted(r["trial"] for r in out.inputs) == [
        "MRC IX-like (non-transplant)", "MRC IX-like (post-ASCT)"]
    with ctx.sessions() as s:
        t = s.exec(select(Trial)).one()
        add_estimate(s, t, "0.75", "0.62", "0.90", setting="mixed", cut=date(2013, 1, 1))
        s.commit()
    out = _by_key(pool_all(ctx))["thalidomide/PFS/all"]
    assert [r["trial"] for r in out.inputs] == ["MRC IX-like"]


def test_unverified_inputs_record_an_empty_snapshot(evidence) -> None:
    pool_all(evidence)
    with evidence.sessions() as s:
        for est in s.exec(select(Estimate).join(Trial).where(Trial.drug == "lenalidomide")):
            est.verified = False
            s.add(est)
        s.commit()
    run = pool_all(evidence)
    assert {o.analysis.key for o in run.changed} == {"lenalidomide/PFS/post_asct",
                                                     "lenalidomide/PFS/all"}
    snap = {p.analysis_key: p for p in _latest(evidence)}["lenalidomide/PFS/all"]
    assert snap.k == 0 and snap.estimate is None
    assert pool_all(evidence).changed == []


def test_describe_lists_every_analysis(evidence) -> None:
    text = pool_all(evidence).describe()
    assert "thalidomide/PFS/post_asct" in text and "no eligible verified estimates" in text
    assert "subgroup difference" in text


def test_describe_shows_no_heterogeneity_for_one_trial(evidence) -> None:
    """A single trial's fit gives PI = CI, I² = 0% and p(Q) = 1: the table says "—" for them,
    as the summary of findings does, rather than a prediction for a new trial."""
    lines = pool_all(evidence).describe().splitlines()
    (single,) = [line for line in lines if line.startswith("lenalidomide/PFS/post_asct ")]
    assert single.split()[1] == "1" and "%" not in single and "1.000" not in single
    assert single.split()[4:7] == ["—", "—", "—"]  # PI, I², p(Q)
    (several,) = [line for line in lines if line.startswith("thalidomide/PFS/post_asct ")]
    assert "%" in several and several.split()[4] != "—"


def test_fixed_effect_snapshot_has_no_prediction_interval(evidence, settings) -> None:
    other = make_context(replace_settings(settings, pool_method="FE", pool_ci="wald"),
                         upgrade=False)
    try:
        pool_all(other)
        snap = {p.analysis_key: p for p in _latest(other)}["thalidomide/PFS/post_asct"]
        assert snap.pi_low is None and snap.tau2 == 0.0
    finally:
        other.dispose()


def _run_cli(argv: list[str]) -> int:
    from monitor.cli import main

    return main(argv)  # conftest restores the root logger afterwards


def test_mmlr_pool_json_via_cli(evidence, db_url, monkeypatch, capsys) -> None:
    import json

    monkeypatch.setenv("MMLR_DATABASE_URL", db_url)
    assert _run_cli(["pool", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["method"] == "REML" and len(doc["analyses"]) == 7
    assert _run_cli(["pool"]) == 0
    out = capsys.readouterr().out
    assert "0 new snapshots" in out and "thalidomide/PFS/all" in out


def test_analysis_order_puts_imwg_first_and_sensitivity_last() -> None:
    from reports.analyses import analysis_order

    keys = ["bortezomib/OS/all/with_strategy", "ixazomib/OS/all", "thalidomide/OS/post_asct",
            "lenalidomide/PFS/all", "thalidomide/PFS/all", "thalidomide/PFS/post_asct"]
    assert sorted(keys, key=analysis_order) == [
        "thalidomide/PFS/post_asct", "thalidomide/PFS/all", "thalidomide/OS/post_asct",
        "lenalidomide/PFS/all", "ixazomib/OS/all", "bortezomib/OS/all/with_strategy"]


def test_a_new_cut_written_differently_is_the_same_comparison(ctx) -> None:
    """Rule 4 compares contrasts, not spellings: a later cut typed "versus" with other case,
    or left generic, replaces the earlier one instead of being dropped as another arm."""
    with ctx.sessions() as s:
        t = add_trial(s, "CALGB-like", drug="lenalidomide")
        add_estimate(s, t, "0.48", "0.36", "0.63", comparison="lenalidomide vs placebo",
                     cut=date(2011, 10, 1))
        spelled = add_estimate(s, t, "0.57", "0.46", "0.71",
                               comparison="Lenalidomide  versus placebo", cut=date(2016, 1, 1))
        s.commit()
        spelled_id = spelled.id
    out = _by_key(pool_all(ctx))["lenalidomide/PFS/post_asct"]
    assert [r["estimate_id"] for r in out.inputs] == [spelled_id]
    assert all("superseded" in d["reason"] for d in out.extras["dropped"])

    with ctx.sessions() as s:
        t = s.exec(select(Trial).where(Trial.name == "CALGB-like")).one()
        generic = add_estimate(s, t, "0.61", "0.48", "0.76", cut=date(2023, 1, 1))
        s.commit()
        generic_id = generic.id
    out = _by_key(pool_all(ctx))["lenalidomide/PFS/post_asct"]
    assert [r["estimate_id"] for r in out.inputs] == [generic_id]


def test_unnamed_estimate_of_a_multi_arm_trial_is_left_out_with_its_reason(ctx) -> None:
    with ctx.sessions() as s:
        t = add_trial(s, "Three-arm", drug="lenalidomide", setting="non_transplant")
        first = add_estimate(s, t, "0.49", "0.37", "0.65", comparison="MPR-R vs MPR",
                             cut=date(2012, 1, 1))
        add_estimate(s, t, "0.40", "0.30", "0.53", comparison="MPR-R vs MP",
                     cut=date(2012, 1, 1))
        add_estimate(s, t, "0.45", "0.33", "0.61", cut=date(2014, 1, 1))  # generic
        s.commit()
        first_id = first.id
    out = _by_key(pool_all(ctx))["lenalidomide/PFS/non_transplant"]
    assert [r["estimate_id"] for r in out.inputs] == [first_id]
    reasons = sorted(d["reason"] for d in out.extras["dropped"])
    assert reasons == [
        "comparison not named, and this multi-arm trial has 2 ('mpr-r vs mp', 'mpr-r vs mpr'): "
        "name it to pool this estimate",
        "other comparison of a multi-arm trial ('MPR-R vs MPR' used)"]


def test_a_snapshot_with_an_unreadable_key_is_skipped_not_fatal(evidence, caplog) -> None:
    with evidence.sessions() as s:
        s.add(PooledResult(analysis_key="odd-key", k=1, estimate=-0.2))
        s.commit()
    run = pool_all(evidence)
    assert "odd-key" not in {o.analysis.key for o in run.outcomes}
    assert "with an unknown analysis key" in caplog.text


def test_pending_changes_name_what_the_next_pool_run_changes(ctx) -> None:
    from reports.selection import pending_changes

    with ctx.sessions() as s:
        a, b = add_trial(s, "Trial A"), add_trial(s, "Trial B")
        add_estimate(s, a, "0.60", "0.45", "0.80", year=2010)
        gone = add_estimate(s, b, "0.70", "0.50", "0.98", year=2011)
        s.commit()
        assert {(p.analysis_key, p.describe()) for p in pending_changes(s)} == {
            ("thalidomide/PFS/post_asct", "new analysis; Trial A, Trial B join"),
            ("thalidomide/PFS/all", "new analysis; Trial A, Trial B join")}
    pool_all(ctx)
    with ctx.sessions() as s:
        assert pending_changes(s) == []
        add_estimate(s, a, "0.55", "0.42", "0.72", year=2015)  # a later cut
        add_estimate(s, a, "0.10", "0.05", "0.20", year=2016, verified=False)  # not yet
        s.get(Estimate, gone.id).verified = False
        s.commit()
        assert [p.describe() for p in pending_changes(s)] == [
            "Trial A with another estimate; Trial B leaves"] * 2


def test_the_code_version_covers_the_selection_of_the_inputs() -> None:
    """A snapshot names the code that made it: the candidates ``reports.selection`` loads are
    the pooled inputs, so a change to it must change the version as a change to the pooling
    itself does."""
    from pathlib import Path

    from reports import pool, selection
    assert Path(selection.__file__).name in pool._CODE_FILES
    assert Path(pool.__file__).parent == Path(selection.__file__).parent


def test_a_multi_arm_trial_pools_one_comparison_for_pfs_and_os(ctx) -> None:
    """Two maintenance arms against one observation arm. The comparison was picked per
    endpoint (lowest id among that endpoint's estimates): OS entered in the other order
    pooled its OS against the other arm than its PFS. Now one comparison for both: the one
    with PFS and OS estimates, first entered; a comparison with only PFS gives way to one
    with both."""
    r_obs, rp_obs = "lenalidomide vs observation", "lenalidomide + prednisone vs observation"
    with ctx.sessions() as s:
        both = add_trial(s, "THREE-ARM", drug="lenalidomide")
        pfs_r = add_estimate(s, both, "0.50", "0.40", "0.625", comparison=r_obs)
        add_estimate(s, both, "0.60", "0.48", "0.75", comparison=rp_obs)
        add_estimate(s, both, "0.90", "0.70", "1.16", endpoint="OS", comparison=rp_obs)
        os_r = add_estimate(s, both, "0.80", "0.64", "1.00", endpoint="OS", comparison=r_obs)
        one = add_trial(s, "THREE-ARM-2", drug="lenalidomide")
        add_estimate(s, one, "0.55", "0.44", "0.69", comparison=r_obs)
        pfs_rp = add_estimate(s, one, "0.65", "0.52", "0.81", comparison=rp_obs)
        os_rp = add_estimate(s, one, "0.85", "0.68", "1.06", endpoint="OS", comparison=rp_obs)
        unverified = add_estimate(s, one, "0.70", "0.56", "0.88", endpoint="OS",
                                  comparison=r_obs, verified=False)
        s.commit()
    out = _by_key(pool_all(ctx))
    pfs = {r["trial"]: r["estimate_id"] for r in out["lenalidomide/PFS/post_asct"].inputs}
    os_ = {r["trial"]: r["estimate_id"] for r in out["lenalidomide/OS/post_asct"].inputs}
    assert (pfs["THREE-ARM"], os_["THREE-ARM"]) == (pfs_r.id, os_r.id)
    # THREE-ARM-2 has OS for RP only (its R vs observation OS is not verified): RP for both
    assert (pfs["THREE-ARM-2"], os_["THREE-ARM-2"]) == (pfs_rp.id, os_rp.id)
    dropped = {d["estimate_id"]: d["reason"]
               for d in out["lenalidomide/PFS/post_asct"].extras["dropped"]}
    assert dropped[pfs_rp.id - 1] == f"other comparison of a multi-arm trial ({rp_obs!r} used)"
    assert unverified.id not in os_.values()
