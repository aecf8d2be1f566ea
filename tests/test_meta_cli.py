"""`mmlr meta FILE.csv`: parsing, JSON shape, subgroups, and one-line errors (exit 1)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, assert_one_line_error, cli_env, run_cli

from monitor.cli import main
from reports.meta import meta_analysis
from reports.meta_cli import meta_from_csv
from store.errors import ValidationError

ROWS = """study,hr,ci_low,ci_high,subgroup,date
CALGB 100104,0.57,0.46,0.71,post_asct,2017
RV-MM-PI-209,0.47,0.33,0.65,mixed,2014
CEMSG,0.55,0.36,0.86,non_transplant,2009
TOURMALINE-MM4,0.659,0.542,0.801,non_transplant,2020
"""


def write(tmp_path: Path, text: str, name: str = "rows.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_hr_rows_with_subgroups(tmp_path: Path) -> None:
    result = meta_from_csv(write(tmp_path, ROWS), method="REML", ci="hksj")
    assert [name for name, _ in result.analyses] == ["post_asct", "mixed", "non_transplant",
                                                      "all"]
    overall = result.overall
    yi = [math.log(h) for h in (0.57, 0.47, 0.55, 0.659)]
    assert overall.k == 4 and overall.yi == pytest.approx(yi)
    ref = meta_analysis(overall.yi, overall.sei)
    assert overall.estimate == pytest.approx(ref.estimate)
    assert result.subgroup_test is not None and result.subgroup_test.df == 2
    assert [name for name, _ in result.cumulative()] == ["CEMSG", "RV-MM-PI-209",
                                                         "CALGB 100104", "TOURMALINE-MM4"]


def test_cli_json_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, ROWS)
    assert main(["meta", str(path), "--method", "DL", "--ci", "wald", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["method"] == "DL" and doc["ci"] == "wald"
    assert [a["name"] for a in doc["analyses"]] == ["post_asct", "mixed", "non_transplant",
                                                    "all"]
    for entry in doc["analyses"]:
        assert {"name", "k", "estimate", "se", "ci_low", "ci_high", "pi_low", "pi_high", "hr",
                "hr_ci_low", "hr_ci_high", "tau2", "i2", "q", "q_p"} <= set(entry)
    assert set(doc["subgroup_test"]) == {"q", "df", "p"} and doc["subgroup_test"]["df"] == 2
    allrow = doc["analyses"][-1]
    cis = ((0.57, 0.46, 0.71), (0.47, 0.33, 0.65), (0.55, 0.36, 0.86), (0.659, 0.542, 0.801))
    ref = meta_analysis([math.log(h) for h, _, _ in cis],
                        [(math.log(hi) - math.log(lo)) / (2 * 1.959964) for _, lo, hi in cis],
                        method="DL", ci="wald")
    assert allrow["estimate"] == pytest.approx(ref.estimate)
    assert allrow["i2"] == pytest.approx(ref.i2)


def test_cli_table_and_yi_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "study,yi,sei\na,-0.5,0.1\nb,-0.2,0.2\n\nc,-0.4,0.15\n")
    assert main(["meta", str(path)]) == 0
    out = capsys.readouterr().out
    assert "all" in out and "REML + hksj" in out
    result = meta_from_csv(path)
    assert result.subgroup_test is None and [n for n, _ in result.analyses] == ["all"]
    assert result.to_json()["subgroup_test"] is None


@pytest.mark.parametrize(("text", "match"), [
    ("study,yi\na,0.1\n", r"line 1: needs columns yi and sei"),
    ("name,yi,sei\na,0.1,0.1\n", r"line 1: no 'study' column"),
    ("study,yi,sei\na,0.1,0.1\nb,zero,0.1\n", r"line 3, column yi: 'zero' is not a number"),
    ("study,yi,sei\na,0.1,0\n", r"line 2, column sei: standard error 0 must be positive"),
    ("study,yi,sei\na,0.1,-0.2\n", r"line 2, column sei"),
    ("study,yi,sei\na,0.1,\n", r"line 2, column sei: empty cell"),
    ("study,hr,ci_low,ci_high\na,0.5,0.6,0.9\n", r"line 2, column hr: HR 0.5 is outside"),
    ("study,hr,ci_low,ci_high\na,0,0.6,0.9\n", r"line 2, column hr: 0 must be > 0"),
    ("study,hr,ci_low,ci_high\na,-1,0.6,0.9\n", r"line 2, column hr"),
    ("study,hr,ci_low,ci_high\na,0.5,0.9,0.4\n", r"line 2, column ci_high"),
    ("study,yi,sei\n", r"no data rows"),
    ("", r"empty file"),
    ("study,yi,sei\n,0.1,0.1\n", r"line 2, column study: empty"),
    ("study,yi,sei,subgroup\na,0.1,0.1,\n", r"line 2, column subgroup: empty"),
    ("study,yi,sei,date\na,0.1,0.1,last year\n", r"line 2, column date"),
    ("study,yi,sei\na,0.1,0.1,extra\n", r"line 2: more cells"),
])
def test_bad_csv(tmp_path: Path, text: str, match: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValidationError, match=match) as info:
        meta_from_csv(path)
    assert str(path) in info.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="file not found"):
        meta_from_csv(tmp_path / "nope.csv")


def test_cli_error_is_one_line_exit_1(tmp_path: Path) -> None:
    path = write(tmp_path, "study,yi,sei\na,0.1,0.1\nb,x,0.1\n")
    proc = run_cli("meta", str(path), env=cli_env(MMLR_DATA_DIR=str(tmp_path / "d")))
    assert_one_line_error(proc, f"{path}, line 3, column yi: 'x' is not a number")


def test_cli_via_console_script_json(tmp_path: Path) -> None:
    path = write(tmp_path, ROWS)
    proc = subprocess.run([sys.executable, "-c", "import sys; from monitor.cli import main; "
                           "sys.exit(main(sys.argv[1:]))", "meta", str(path), "--json"],
                          capture_output=True, text=True, cwd=ROOT,
                          env=cli_env(MMLR_DATA_DIR=str(tmp_path / "d")), timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["analyses"][-1]["name"] == "all" and doc["analyses"][-1]["k"] == 4


def test_asymmetric_ci_is_reported_not_hidden(tmp_path: Path) -> None:
    path = write(tmp_path, "study,hr,ci_low,ci_high\na,0.50,0.45,0.90\nb,0.6,0.5,0.72\n")
    result = meta_from_csv(path)
    assert len(result.warnings) == 1 and "line 2 (a)" in result.warnings[0]
    assert "warning: line 2 (a)" in result.describe()
