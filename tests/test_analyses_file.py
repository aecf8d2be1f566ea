"""Analyses defined as data (MMLR_ANALYSES_FILE): a drug class pooled together, validated
with errors that name the file, the entry and the field, over a real database."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from conftest import assert_one_line_error, cli_env, free_port, run_cli
from test_pool import add_estimate, add_trial

from reports.analyses import Analysis, load_analyses
from reports.meta import meta_analysis
from reports.pool import pool_all
from store.context import make_context
from store.errors import ConfigError

IMID = '''
[[analysis]]
name = "imid"
title = "IMiD (thalidomide or lenalidomide)"
drugs = ["Thalidomide", "lenalidomide"]
endpoint = "PFS"
settings = ["post_asct", "all"]
'''


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "analyses.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_class_is_read_as_one_analysis_per_setting(tmp_path: Path) -> None:
    analyses = load_analyses(_write(tmp_path, IMID))
    assert [a.key for a in analyses] == ["imid/PFS/post_asct", "imid/PFS/all"]
    assert analyses[0].members == ("thalidomide", "lenalidomide")
    assert analyses[1].label == "IMiD (thalidomide or lenalidomide) maintenance — PFS (EFS/TTP " \
                                "accepted) — all settings"
    assert load_analyses(None) == []


@pytest.mark.parametrize(("text", "message"), [
    ("[[analysis]\nname=", "is not valid TOML"),
    ("[other]\nx = 1\n", "expected only [[analysis]] and [[arms]] tables, found other"),
    ('[[analysis]]\nname = "imid"\ndrugs = ["a", "b"]\nendpoint = "PFS"\ncolour = "red"\n',
     "analysis 1: unknown key(s) colour"),
    ('[[analysis]]\nname = "IMiD class"\ndrugs = ["a", "b"]\nendpoint = "PFS"\n',
     "analysis 1: name 'IMiD class' must be 1-40 lower-case letters"),
    ('[[analysis]]\nname = "imid"\ndrugs = []\nendpoint = "PFS"\n',
     "analysis 1 (imid): drugs must be a non-empty list"),
    ('[[analysis]]\nname = "imid"\ndrugs = ["a", "b"]\nendpoint = "QOL"\n',
     "analysis 1 (imid): endpoint 'QOL' must be one of PFS, OS"),
    ('[[analysis]]\nname = "imid"\ndrugs = ["a", "b"]\nendpoint = "OS"\nsettings = ["mixed"]\n',
     "analysis 1 (imid): settings ['mixed'] must be a list of post_asct, non_transplant, all"),
    # a list where a word belongs: for the endpoint, `in` on the names raised TypeError
    # (unhashable), an internal error at every command's start
    ('[[analysis]]\nname = "imid"\ndrugs = ["a", "b"]\nendpoint = ["PFS"]\n',
     "analysis 1 (imid): endpoint ['PFS'] must be one of PFS, OS"),
    ('[[analysis]]\nname = "imid"\ndrugs = ["a", "b"]\nendpoint = "OS"\nsettings = [["all"]]\n',
     "analysis 1 (imid): settings [['all']] must be a list of post_asct"),
    ('[[analysis]]\nname = "len"\ndrugs = ["len"]\nendpoint = "OS"\n',
     "analysis 1 (len): a single drug is pooled already"),
    (IMID + IMID, "analysis 2: analysis imid PFS is defined twice"),
    (IMID + "monitoring_hr = 1\n", "analysis 1 (imid): monitoring_hr 1 must be a hazard ratio"),
    (IMID + 'monitoring_hr = "0.7"\n', "monitoring_hr '0.7' must be a hazard ratio other"),
    (IMID + "monitoring_hr = -0.5\n", "monitoring_hr -0.5 must be a hazard ratio"),
    (IMID + "monitoring_hr = true\n", "monitoring_hr True must be a hazard ratio"),
])
def test_each_mistake_is_named(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_analyses(path)
    assert f"MMLR_ANALYSES_FILE {path}" in exc.value.one_line()
    assert message in exc.value.one_line()


def test_missing_file_is_said(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_analyses(tmp_path / "nope.toml")


def test_a_class_pools_the_trials_of_its_drugs(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    ctx = make_context(settings.model_copy(update={"analyses_file": _write(tmp_path, IMID)}))
    try:
        with ctx.sessions() as s:
            thal = add_trial(s, "THAL-A")
            add_estimate(s, thal, "0.60", "0.45", "0.80", cut=date(2010, 1, 1))
            lena = add_trial(s, "LEN-B", drug="lenalidomide")
            add_estimate(s, lena, "0.50", "0.40", "0.625", cut=date(2012, 1, 1))
            bort = add_trial(s, "BORT-C", drug="bortezomib")
            add_estimate(s, bort, "0.75", "0.60", "0.94", cut=date(2012, 1, 1))
            hovon = add_trial(s, "STRATEGY-D", is_strategy=True)
            add_estimate(s, hovon, "0.80", "0.65", "0.98", cut=date(2012, 1, 1))
            s.commit()
        run = pool_all(ctx)
        out = {o.analysis.key: o for o in run.outcomes}
        imid = out["imid/PFS/all"]
        assert sorted(r["trial"] for r in imid.inputs) == ["LEN-B", "THAL-A"]
        assert imid.extras["drugs"] == ["thalidomide", "lenalidomide"]
        # the same numbers as pooling the two rows by hand
        direct = meta_analysis([r["yi"] for r in imid.inputs], [r["sei"] for r in imid.inputs],
                               method=settings.pool_method, ci=settings.pool_ci)
        assert imid.result is not None and imid.result.estimate == pytest.approx(direct.estimate)
        twin = out["imid/PFS/all/with_strategy"]
        assert sorted(r["trial"] for r in twin.inputs) == ["LEN-B", "STRATEGY-D", "THAL-A"]
        assert "imid/PFS/non_transplant" not in out  # not asked for
        # the drugs' own analyses are still there, unchanged
        assert [r["trial"] for r in out["lenalidomide/PFS/all"].inputs] == ["LEN-B"]
        listed = {a["name"]: a for a in run.to_json()["analyses"]}
        assert listed["imid/PFS/all"]["drugs"] == ["thalidomide", "lenalidomide"]
    finally:
        ctx.dispose()


def test_a_class_named_like_a_drug_is_refused(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    path = _write(tmp_path, IMID.replace('name = "imid"', 'name = "lenalidomide"'))
    ctx = make_context(settings.model_copy(update={"analyses_file": path}))
    try:
        with pytest.raises(ConfigError, match="lenalidomide are also trial drugs"):
            pool_all(ctx)
    finally:
        ctx.dispose()


def test_cli_says_what_is_wrong_in_one_line(tmp_path: Path, db_url: str) -> None:
    path = _write(tmp_path, '[[analysis]]\nname = "imid"\ndrugs = "thalidomide"\n')
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "data"), MMLR_DATABASE_URL=db_url,
                  MMLR_ANALYSES_FILE=str(path))
    result = run_cli("pool", env=env)
    assert result.returncode != 0
    assert "drugs must be a non-empty list of drug names" in result.stderr
    assert "Traceback" not in result.stderr


def test_analysis_equality_keeps_old_keys() -> None:
    # a plain drug analysis is what it always was (keys in stored snapshots stay valid)
    a = Analysis("thalidomide", "all", "PFS")
    assert a.key == "thalidomide/PFS/all" and a.members == ("thalidomide",)


def test_an_analysis_taken_out_of_the_file_is_no_longer_pooled(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    from reports.selection import latest_results

    path = _write(tmp_path, IMID)
    ctx = make_context(settings.model_copy(update={"analyses_file": path}))
    with ctx.sessions() as s:
        add_estimate(s, add_trial(s, "THAL-A"), "0.60", "0.45", "0.80", cut=date(2010, 1, 1))
        s.commit()
    pool_all(ctx)
    ctx.dispose()
    ctx = make_context(settings)  # the file no longer names it
    try:
        run = pool_all(ctx)
        gone = {o.analysis.key: o for o in run.outcomes}["imid/PFS/all"]
        assert gone.result is None and gone.changed
        with ctx.sessions() as s:
            newest = {r.analysis_key: r for r in latest_results(s)}
        assert newest["imid/PFS/all"].k == 0
    finally:
        ctx.dispose()


def test_short_labels_leave_out_the_trials_own_drug(tmp_path: Path) -> None:
    imid_all = load_analyses(_write(tmp_path, IMID))[1]
    assert Analysis("thalidomide", "post_asct", "PFS").short_label == "PFS post-ASCT"
    assert Analysis("thalidomide", "all", "OS", include_strategy=True).short_label == \
        "OS all settings, with strategy trials"
    assert imid_all.short_label == "IMiD (thalidomide or lenalidomide): PFS all settings"


def test_an_entry_sets_its_own_monitoring_plan(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    path = _write(tmp_path, IMID + "monitoring_hr = 0.7\n")
    assert {a.monitoring_hr for a in load_analyses(path)} == {0.7}
    ctx = make_context(settings.model_copy(update={"analyses_file": path}))
    try:
        with ctx.sessions() as s:
            for i, drug in enumerate(("thalidomide", "lenalidomide")):
                trial = add_trial(s, f"Trial {i}", drug)
                add_estimate(s, trial, "0.6", "0.45", "0.8", cut=date(2010 + i, 1, 1))
            s.commit()
        run = {o.analysis.key: o for o in pool_all(ctx).outcomes}
        assert run["imid/PFS/post_asct"].extras["monitoring"]["plan"]["anticipated_hr"] == 0.7
        # ... while the drug's own analysis keeps the endpoint's plan (MMLR_MONITORING_HR).
        assert run["thalidomide/PFS/post_asct"].extras["monitoring"]["plan"][
            "anticipated_hr"] == 0.8
        # Another HR in the file is another snapshot of that analysis only.
        path.write_text(IMID + "monitoring_hr = 0.6\n", encoding="utf-8")
        changed = {o.analysis.key for o in pool_all(ctx).changed}
        assert changed == {"imid/PFS/post_asct", "imid/PFS/all"}
    finally:
        ctx.dispose()



@pytest.mark.parametrize("command", ["run", "worker", "web"])
def test_run_worker_and_web_check_the_file_at_start(tmp_path: Path, command: str) -> None:
    # `run` polled first and failed at the pooling; the worker started and failed at every
    # scheduled cycle; `web` started and answered /summary, /network and /api/network with a
    # 500. A closed E-utilities port: were anything polled, the error would differ.
    missing = tmp_path / "analyses.toml"
    proc = run_cli(command, env=cli_env(MMLR_DATA_DIR=str(tmp_path / "d"),
                                        MMLR_ANALYSES_FILE=str(missing),
                                        MMLR_PORT=str(free_port()),
                                        MMLR_ENTREZ_URL="http://127.0.0.1:9/eutils/",
                                        MMLR_ENTREZ_MAX_RETRIES="0"), timeout=60)
    assert_one_line_error(proc, f"MMLR_ANALYSES_FILE {missing} does not exist")


MISSPELT = '''
[[analysis]]
name = "imid"
title = "IMiD"
drugs = ["thalidomide", "Lenalidomde", "iberdomide"]
endpoint = "PFS"
settings = ["all"]
'''


def test_a_drug_no_trial_has_is_said_not_silently_pooled_without(
        tmp_path: Path, settings, db_url: str) -> None:  # type: ignore[no-untyped-def]
    """A misspelt drug of an [[analysis]] entry selects no trial: its class was pooled from
    thalidomide alone without a word. `mmlr pool` warns (stderr, `--json`), naming the drug
    and the nearest trial drug, or every trial drug when none is near; /estimates says it."""
    import test_web
    from test_web import as_role, make_user

    path = _write(tmp_path, MISSPELT)
    ctx = make_context(settings.model_copy(update={"analyses_file": path}))
    try:
        with ctx.sessions() as s:
            add_estimate(s, add_trial(s, "THAL-A"), "0.60", "0.45", "0.80")
            add_estimate(s, add_trial(s, "LEN-B", drug="Lenalidomide"), "0.50", "0.40", "0.625")
            s.commit()
        run = pool_all(ctx)
    finally:
        ctx.dispose()
    assert [r["trial"] for r in {o.analysis.key: o for o in run.outcomes}[
        "imid/PFS/all"].inputs] == ["THAL-A"]
    assert run.unknown_drugs == [
        "[[analysis]] 'imid' names drug 'lenalidomde', which no stored trial has, so it "
        "selects none of its trials (did you mean 'lenalidomide'?)",
        "[[analysis]] 'imid' names drug 'iberdomide', which no stored trial has, so it "
        "selects none of its trials (the trials' drugs are 'lenalidomide', 'thalidomide')"]
    assert run.to_json()["analyses_naming_no_drug"] == run.unknown_drugs

    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "data"), MMLR_DATABASE_URL=db_url,
                  MMLR_ANALYSES_FILE=str(path))
    result = run_cli("pool", env=env)
    assert result.returncode == 0, result.stderr
    assert "mmlr: warning: MMLR_ANALYSES_FILE: [[analysis]] 'imid' names drug 'lenalidomde'" \
        in result.stderr and "did you mean 'lenalidomide'?" in result.stderr

    app = test_web.create_app(settings.model_copy(update={"analyses_file": path}))
    try:
        make_user(app, "viewer@example.org", "viewer")
        page = as_role(app, {"viewer": "viewer@example.org"}, "viewer").get("/estimates").text
        assert "names drug &#39;lenalidomde&#39;" in page and "did you mean" in page
    finally:
        app.state.ctx.dispose()

    fixed = _write(tmp_path, MISSPELT.replace("Lenalidomde", "lenalidomide")
                   .replace(', "iberdomide"', ""))
    ctx = make_context(settings.model_copy(update={"analyses_file": fixed}))
    try:
        assert pool_all(ctx).unknown_drugs == []
    finally:
        ctx.dispose()


def test_a_class_twin_whose_strategy_trial_left_keeps_its_drugs_and_title(
        tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    """The sensitivity twin of a class stays listed once its strategy trial leaves (an
    analysis that had data stays); it was rebuilt from its key alone: no drugs (it pooled no
    trial of the class) and "Imid maintenance" for the title. Now it is its primary's twin,
    like a drug's: the class's trials, the class's title."""
    from datetime import UTC, datetime

    from sqlmodel import select

    from reports.selection import latest_results
    from store.models import Estimate

    ctx = make_context(settings.model_copy(update={"analyses_file": _write(tmp_path, IMID)}))
    twin_key = "imid/PFS/all/with_strategy"
    title = "IMiD (thalidomide or lenalidomide) maintenance — PFS (EFS/TTP accepted) — all " \
            "settings (sensitivity: strategy trials included)"
    try:
        with ctx.sessions() as s:
            add_estimate(s, add_trial(s, "THAL-A"), "0.60", "0.45", "0.80")
            add_estimate(s, add_trial(s, "LEN-B", drug="lenalidomide"), "0.50", "0.40", "0.625")
            strategy = add_estimate(s, add_trial(s, "STRATEGY-D", is_strategy=True),
                                    "0.80", "0.65", "0.98")
            s.commit()
        twin = {o.analysis.key: o for o in pool_all(ctx).outcomes}[twin_key]
        assert sorted(r["trial"] for r in twin.inputs) == ["LEN-B", "STRATEGY-D", "THAL-A"]
        with ctx.sessions() as s:
            row = s.exec(select(Estimate).where(Estimate.id == strategy.id)).one()
            row.withdrawn_at = datetime.now(UTC)
            s.add(row)
            s.commit()
        twin = {o.analysis.key: o for o in pool_all(ctx).outcomes}[twin_key]
        assert twin.analysis.members == ("thalidomide", "lenalidomide")
        assert twin.analysis.label == title
        assert twin.analysis.short_label == \
            "IMiD (thalidomide or lenalidomide): PFS all settings, with strategy trials"
        assert sorted(r["trial"] for r in twin.inputs) == ["LEN-B", "THAL-A"]
        with ctx.sessions() as s:
            snap = {r.analysis_key: r for r in latest_results(s)}[twin_key]
        assert snap.analysis_label == title and snap.k == 2
        assert snap.result["drugs"] == ["thalidomide", "lenalidomide"]
    finally:
        ctx.dispose()
