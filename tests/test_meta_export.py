"""`mmlr export metafor`: the exported R script, run by R, reproduces every stored analysis."""

from __future__ import annotations

import csv
import math
import subprocess
from datetime import date
from pathlib import Path

import pytest

from reports.export_metafor import write_metafor_export
from reports.pool import pool_all
from reports.selection import latest_results
from store.errors import ValidationError
from tests.test_pool import add_estimate, add_trial


@pytest.fixture(name="pooled")
def pooled_fixture(ctx):  # type: ignore[no-untyped-def]
    return pooled(ctx)


def pooled(ctx):  # type: ignore[no-untyped-def]
    """Five trials' estimates in five analyses, pooled with ``ctx``'s settings."""
    with ctx.sessions() as s:
        rows = [("A", "0.60", "0.45", "0.80", "post_asct", "PFS"),
                ("B", "0.72", "0.55", "0.94", "post_asct", "EFS"),
                ("C", "0.95", "0.70", "1.29", "post_asct", "PFS"),
                ("D", "0.55", "0.36", "0.86", "non_transplant", "PFS"),
                ("E", "0.80", "0.62", "1.03", "post_asct", "OS")]
        for name, hr, lo, hi, setting, endpoint in rows:
            t = add_trial(s, f"Trial {name}", setting=setting)
            add_estimate(s, t, hr, lo, hi, endpoint=endpoint, cut=date(2010, 1, 1))
        s.commit()
    pool_all(ctx)
    return ctx


def test_written_files(pooled, tmp_path: Path) -> None:
    paths = write_metafor_export(pooled, tmp_path / "out")
    assert [p.name for p in paths] == ["mmlr-metafor.csv", "mmlr-metafor.R"]
    with paths[0].open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["analysis"] for r in rows} == {"thalidomide/PFS/post_asct",
                                             "thalidomide/PFS/non_transplant",
                                             "thalidomide/PFS/all", "thalidomide/OS/post_asct",
                                             "thalidomide/OS/all"}
    assert {r["method"] for r in rows} == {"REML"}
    # The test mmlr used: Hartung–Knapp from two trials, Wald (metafor's "z") for the two
    # analyses of one trial, which mmlr pools with a Wald interval whatever the setting.
    tests = {r["analysis"]: r["test"] for r in rows}
    assert tests == {"thalidomide/PFS/post_asct": "knha", "thalidomide/PFS/all": "knha",
                     "thalidomide/PFS/non_transplant": "z", "thalidomide/OS/post_asct": "z",
                     "thalidomide/OS/all": "z"}
    # the current RoB 2 judgment comes last; nothing is assessed here
    assert list(rows[0])[-1] == "risk_of_bias" and {r["risk_of_bias"] for r in rows} == {""}
    assert "rma(" in paths[1].read_text()


#: Trial names a spreadsheet would run as a formula, and one CSV must quote.
FORMULA_LIKE = ("=cmd|' /C calc'!A0", "-", "+1 arm", "@home", 'Trial "B", 2nd')


def _formula_like_trials(ctx):  # type: ignore[no-untyped-def]
    with ctx.sessions() as s:
        for name, hr in zip(FORMULA_LIKE, ("0.60", "0.80", "0.70", "0.90", "0.75"),
                            strict=True):
            add_estimate(s, add_trial(s, name), hr, "0.45", "0.99", cut=date(2010, 1, 1))
        s.commit()
    pool_all(ctx)


def test_trial_names_reach_r_as_typed(ctx, tmp_path: Path) -> None:
    """The metafor inputs are R's, not a spreadsheet's: a name is written as typed (quoted
    where CSV needs it). The spreadsheet guard gave R "'-" and "'=cmd…" as the names."""
    _formula_like_trials(ctx)
    csv_path = write_metafor_export(ctx, tmp_path / "out")[0]
    with csv_path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["study"] for r in rows} == set(FORMULA_LIKE)
    # yi and sei stay numbers R reads as such (negative log hazard ratios)
    assert all(float(r["yi"]) < 0 and not r["yi"].startswith("'") for r in rows)


def test_r_reads_the_trial_names_as_typed(ctx, tmp_path: Path, rscript: str) -> None:
    """The exported script's own read (``read.csv``) and its leave-one-out table, which names
    each trial left out (metafor's slab), give back the names as typed."""
    _formula_like_trials(ctx)
    csv_path, r_path = write_metafor_export(ctx, tmp_path)
    out = tmp_path / "results.csv"
    proc = subprocess.run([rscript, str(r_path), str(csv_path), str(out)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with (tmp_path / "results-leave-one-out.csv").open(newline="", encoding="utf-8") as fh:
        omitted = {r["omitted"] for r in csv.DictReader(fh)}
    assert omitted == set(FORMULA_LIKE)


@pytest.fixture(params=["REML", "FE"])
def pooled_by_method(ctx, request):  # type: ignore[no-untyped-def]
    """The ``pooled`` review under each τ² estimator's family: random effects (the default)
    and a common effect (MMLR_POOL_METHOD=FE, whose leave1out has no τ² or I² column)."""
    from dataclasses import replace
    return pooled(replace(ctx, settings=ctx.settings.model_copy(
        update={"pool_method": request.param})))


def test_r_reproduces_every_stored_analysis(pooled_by_method, tmp_path: Path,
                                            rscript: str) -> None:
    pooled = pooled_by_method
    csv_path, r_path = write_metafor_export(pooled, tmp_path)
    out = tmp_path / "results.csv"
    proc = subprocess.run([rscript, str(r_path), str(csv_path), str(out)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with out.open() as fh:
        theirs = {r["analysis"]: r for r in csv.DictReader(fh)}
    with pooled.sessions() as s:
        snaps = [p for p in latest_results(s) if p.k > 0]
    assert {p.analysis_key for p in snaps} == set(theirs)
    checked = set()
    for p in snaps:
        ref = theirs[p.analysis_key]
        # R ran the test mmlr used (one trial: "z"), as the export says
        assert ref["test"] == ("z" if p.k == 1 else "knha") == {"wald": "z", "hksj": "knha"}[
            p.ci_method], p.analysis_key
        for field in ("estimate", "se", "ci_low", "ci_high", "tau2", "i2", "q", "q_p",
                      "pi_low", "pi_high"):
            assert _same(getattr(p, field), ref[field]), (p.analysis_key, field)
        assert p.result["hr"] == pytest.approx(math.exp(float(ref["estimate"])), rel=1e-6)
        funnel = p.result["small_study"]
        if p.k < 3:
            assert ref["egger_p"] == "NA" and not funnel["available"]
            continue
        checked.add(p.analysis_key)
        assert funnel["egger"]["p"] == pytest.approx(float(ref["egger_p"]), rel=1e-6)
        assert funnel["egger"]["limit"] == pytest.approx(float(ref["egger_limit"]), rel=1e-6)
        fill = funnel["trim_fill"]
        assert (fill["side"], fill["k0"]) == (ref["trimfill_side"], int(ref["trimfill_k0"]))
        for name, column in (("estimate", "trimfill_estimate"), ("ci_low", "trimfill_ci_low"),
                             ("ci_high", "trimfill_ci_high")):
            assert fill[name] == pytest.approx(float(ref[column]), abs=1e-6, rel=1e-6)
    # the PFS analyses after ASCT (3 trials) and over all settings (4) have a funnel
    assert checked == {"thalidomide/PFS/post_asct", "thalidomide/PFS/all"}
    # and the leave-one-out table of every analysis of 2 trials or more, beside the results
    with (tmp_path / "results-leave-one-out.csv").open(encoding="utf-8") as fh:
        left_out = list(csv.DictReader(fh))
    compared = 0
    for p in snaps:
        ours = p.result["leave_one_out"]
        refs = {r["omitted"]: r for r in left_out if r["analysis"] == p.analysis_key}
        assert len(ours) == len(refs) == (p.k if p.k >= 2 else 0), p.analysis_key
        for entry in ours:
            ref = refs[entry["omitted"]]
            for field in ("estimate", "se", "ci_low", "ci_high", "tau2", "i2", "q", "q_p"):
                assert _same(entry[field], ref[field]), (p.analysis_key, entry["omitted"], field)
            compared += 1
    assert compared == 3 + 4  # post-ASCT PFS (3 trials) and all-settings PFS (4)


@pytest.mark.parametrize("how", ["rscript", "source"])
def test_the_script_finds_its_files_in_a_folder_with_a_space(pooled, tmp_path: Path,
                                                             rscript: str, how: str) -> None:
    """Run without arguments, the script reads and writes beside itself: by Rscript from
    another folder (which writes the space as "~+~" in --file=) and by source() (RStudio's
    Source button: no --file= at all)."""
    folder = tmp_path / "My Exports"
    r_path = write_metafor_export(pooled, folder)[1]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = [rscript, str(r_path)] if how == "rscript" else [
        rscript, "-e", f'source("{r_path.as_posix()}")']
    proc = subprocess.run(command, cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with (folder / "mmlr-metafor-results.csv").open(encoding="utf-8") as fh:
        assert len(list(csv.DictReader(fh))) == 5
    assert not list(elsewhere.iterdir())


def _same(ours: float | None, theirs: str) -> bool:
    """Our number and R's (as written to its CSV) agree to 1e-6; R's NA is our None (no
    prediction interval under a common effect, no I² from one trial's Q)."""
    if theirs == "NA":
        return ours is None or math.isnan(ours)
    return ours is not None and ours == pytest.approx(float(theirs), abs=1e-6, rel=1e-6)


def test_export_errors(ctx, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no pooled analyses"):
        write_metafor_export(ctx, tmp_path)
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(ValidationError, match="takes a folder"):
        write_metafor_export(ctx, target)


def test_a_file_that_cannot_be_replaced_leaves_the_folder_as_it_was(pooled,
                                                                   tmp_path: Path) -> None:
    # The script's name taken by a folder: the CSV was written before the script failed.
    out = tmp_path / "out"
    (out / "mmlr-metafor.R").mkdir(parents=True)
    with pytest.raises(ValidationError, match=r"mmlr-metafor.R: it is a folder, not a regular"):
        write_metafor_export(pooled, out)
    assert sorted(p.name for p in out.iterdir()) == ["mmlr-metafor.R"]


def test_default_folder_is_in_the_data_dir(pooled) -> None:
    paths = write_metafor_export(pooled, None)
    assert paths[0].parent == pooled.settings.data_dir / "exports"


@pytest.mark.parametrize("where", ["file/metafor", "file/sub/metafor", "/proc/mmlr-metafor"])
def test_a_folder_that_cannot_be_made_is_one_line(pooled, tmp_path: Path, where: str) -> None:
    (tmp_path / "file").write_text("x")
    folder = tmp_path / where  # an absolute ``where`` stays itself
    with pytest.raises(ValidationError) as err:
        write_metafor_export(pooled, folder)
    line = err.value.one_line()
    assert line.startswith(f"cannot write the metafor export to {folder}: ")
    if where.startswith("file/"):
        assert f"{tmp_path / 'file'} is not a folder" in line
    assert "--out takes a folder" in line and (tmp_path / "file").read_text() == "x"


def test_cli_metafor_into_an_impossible_folder_is_one_line(tmp_path: Path) -> None:
    from conftest import assert_one_line_error, cli_env, run_cli

    (tmp_path / "file").write_text("x")
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "d"),
                  MMLR_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    proc = run_cli("export", "metafor", "--out", str(tmp_path / "file" / "m"), env=env)
    assert_one_line_error(proc, f"{tmp_path / 'file'} is not a folder")
