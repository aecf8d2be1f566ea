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


def test_dates_of_every_precision_and_a_leap_day_are_accepted(tmp_path: Path) -> None:
    text = ("study,yi,sei,date\na,0.1,0.1,2024-02-29\nb,0.2,0.1,2023\nc,0.3,0.1,2023-12\n"
            "d,0.4,0.1,2000-02-29\n")
    result = meta_from_csv(write(tmp_path, text))
    assert [name for name, _ in result.cumulative()] == ["d", "b", "c", "a"]
    # a year is its last day, as the pool reads a report year: sorted as text, 2005 came
    # before 2005-03-01
    year = meta_from_csv(write(tmp_path, "study,yi,sei,date\nA,0.1,0.1,2005\n"
                                         "B,0.2,0.1,2005-03-01\nC,0.3,0.1,2004-06\n"))
    assert [name for name, _ in year.cumulative()] == ["C", "B", "A"]
    with pytest.raises(ValidationError) as info:
        meta_from_csv(write(tmp_path, "study,yi,sei,date\na,0.1,0.1,2023-02-30\n"))
    assert info.value.one_line().endswith(
        "(write it as YYYY, YYYY-MM or YYYY-MM-DD with the digits 0-9, e.g. 2023-02-28)")


def test_a_subgroup_of_identical_rows_has_no_subgroup_test_and_says_why(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It raised: exit 1, and none of the file's analyses shown."""
    path = write(tmp_path, "study,hr,ci_low,ci_high,subgroup\na,0.60,0.45,0.80,x\n"
                           "b,0.60,0.45,0.80,x\nc,0.75,0.60,0.94,y\nd,0.70,0.50,0.98,y\n")
    assert main(["meta", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [a["name"] for a in doc["analyses"]] == ["x", "y", "all"]
    assert doc["subgroup_test"] is None
    assert doc["subgroup_test_note"].startswith("no test for subgroup differences: subgroup "
                                                "'x' has a zero standard error")
    assert main(["meta", str(path)]) == 0
    assert "note: no test for subgroup differences" in capsys.readouterr().out


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
    # \d took other scripts' digits (then sorted as text) and no calendar was checked
    ("study,yi,sei,date\na,0.1,0.1,2010\nb,0.2,0.1,\u0662\u0660\u0661\u0660\n",
     r"line 3, column date: '\u0662\u0660\u0661\u0660' is not YYYY, YYYY-MM or YYYY-MM-DD$"),
    ("study,yi,sei,date\na,0.1,0.1,2024-13-45\n",
     r"line 2, column date: '2024-13-45' has month 13, not one of 01-12"),
    ("study,yi,sei,date\na,0.1,0.1,2024-00\n", r"line 2, column date: '2024-00' has month 00"),
    ("study,yi,sei,date\na,0.1,0.1,2023-02-30\n",
     r"line 2, column date: '2023-02-30' has day 30, not one of 01-28 of 2023-02"),
    ("study,yi,sei,date\na,0.1,0.1,2023-02-29\n", r"'2023-02-29' has day 29, not one of 01-28"),
    ("study,yi,sei,date\na,0.1,0.1,2023-04-00\n", r"'2023-04-00' has day 00, not one of 01-30"),
    ("study,yi,sei\na,0.1,0.1,extra\n", r"line 2: more cells"),
    # implausible for any trial (and beyond them the pooling overflows or divides by zero)
    ("study,hr,ci_low,ci_high\nb,0.5,0.4,0.6\na,1e-320,1e-321,1e-319\n",
     r"line 3, column hr: 1e-320 is implausible for a hazard ratio \(outside 0\.0001–10000\)"),
    ("study,hr,ci_low,ci_high\na,0.5,0.00009,0.9\n", r"line 2, column ci_low: 0\.00009 is impl"),
    ("study,hr,ci_low,ci_high\na,5000,4000,20000\n", r"line 2, column ci_high: 20000 is impl"),
    ("study,hr,ci_low,ci_high\na,0.5,0.49999,0.50001\n",
     r"line 2, columns ci_low and ci_high: standard error 1\.02e-05 \(from the CI "
     r"0\.49999–0\.50001\) of the log HR is implausible"),
    ("study,yi,sei\na,0.1,1e-300\n", r"line 2, column sei: standard error 1e-300 .*implausible"),
    ("study,yi,sei\na,0.1,0.00009\n", r"line 2, column sei: standard error 0\.00009 "),
    ("study,yi,sei\na,0.1,1e300\n", r"line 2, column sei: standard error 1e300 .*implausible"),
    ("study,yi,sei\na,0.1,10.5\n", r"line 2, column sei: standard error 10\.5 .*\(outside"),
    ("study,yi,sei\na,0.1,inf\n", r"line 2, column sei: 'inf' is not finite"),
    ("study,yi,sei\na,0.1,0.1_0\n", r"line 2, column sei: '0.1_0' is not a number \(write it "
     r"without underscores\)"),
    ("study,yi,sei\na,\u0660.1,0.1\n", r"line 2, column yi: '\u0660.1' is not a number \(write "
     r"it with the digits 0-9\)"),
    ("study,yi,sei\na,1e308,0.1\n", r"line 2, column yi: log HR 1e308 is implausible \(outside "
     r"±9\.21, an HR outside 0\.0001–10000\)"),
    ("study,yi,sei\na,-9.22,0.1\n", r"line 2, column yi: log HR -9\.22 is implausible"),
])
def test_bad_csv(tmp_path: Path, text: str, match: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValidationError, match=match) as info:
        meta_from_csv(path)
    assert str(path) in info.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="does not exist"):
        meta_from_csv(tmp_path / "nope.csv")


def test_a_folder_or_a_binary_file_is_named_as_such(tmp_path: Path) -> None:
    # A folder was "cannot be read as UTF-8 text (IsADirectoryError)".
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "d"))
    assert_one_line_error(run_cli("meta", str(tmp_path), env=env), f"{tmp_path}: is not a file")
    binary = tmp_path / "rows.csv"
    binary.write_bytes(b"study,yi,sei\n\xff\xfe,0.1,0.1\n")
    proc = run_cli("meta", str(binary), env=env)
    assert_one_line_error(proc, f"{binary}: not UTF-8 text (save it as UTF-8 CSV)")
    assert "Error" not in proc.stderr  # no Python exception names


def test_a_file_name_too_long_is_one_line(tmp_path: Path) -> None:
    # Path.exists() raised ENAMETOOLONG: an internal error
    path = tmp_path / f"{'a' * 300}.csv"
    proc = run_cli("meta", str(path), env=cli_env(MMLR_DATA_DIR=str(tmp_path / "d")))
    assert_one_line_error(proc, f"mmlr: error: {path}: cannot be read: File name too long")


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


def test_a_study_name_on_two_rows_is_warned_and_both_rows_pool(tmp_path: Path) -> None:
    # The same trial pasted twice counted its patients twice without a word.
    path = write(tmp_path, "study,yi,sei\nCALGB 100104,-0.5,0.2\nIFM 2005-02,-0.3,0.15\n"
                           "calgb  100104,-0.5,0.2\n")
    result = meta_from_csv(path)
    assert result.warnings == [
        "line 4 (calgb 100104): the same study name as line 2: one trial on two rows counts "
        "its patients twice in the pooled total (different comparisons need different names)"]
    assert result.overall.k == 3  # warned, not dropped: the rows may be meant
    assert "warning: line 4 (calgb 100104): the same study name as line 2" in result.describe()
    distinct = meta_from_csv(write(tmp_path, "study,yi,sei\nA,-0.5,0.2\nB,-0.5,0.2\n"))
    assert distinct.warnings == []


@pytest.mark.parametrize(("rows", "method", "fragment"), [
    ("study,hr,ci_low,ci_high\na,1e-320,1e-321,1e-319\nb,0.5,0.4,0.6\n", "REML",
     "line 2, column hr: 1e-320 is implausible"),
    ("study,yi,sei\na,0.1,1e-300\nb,0.2,0.1\n", "REML", "line 2, column sei"),
    ("study,yi,sei\na,1e308,0.1\nb,0.2,0.1\n", "REML", "line 2, column yi"),
    ("study,yi,sei\na,0.1,1e300\nb,0.2,0.1\n", "REML", "line 2, column sei"),
    # FE used to exit 0 printing "inf nan–inf"
    ("study,yi,sei\na,1e308,0.1\nb,0.2,0.1\n", "FE", "line 2, column yi"),
])
def test_cli_implausible_rows_are_one_line_without_numpy_warnings(
        tmp_path: Path, rows: str, method: str, fragment: str) -> None:
    path = write(tmp_path, rows)
    proc = run_cli("meta", str(path), "--method", method,
                   env=cli_env(MMLR_DATA_DIR=str(tmp_path / "d")))
    assert_one_line_error(proc, f"{path}, {fragment}", "implausible")
    assert "Warning" not in proc.stderr and proc.stdout == ""


def test_rows_at_the_bounds_pool_without_a_numpy_warning(tmp_path: Path) -> None:
    # The most extreme rows allowed, together: the bounds are tight enough for the pooling's
    # arithmetic (an overflow would print numpy's RuntimeWarning with its source line).
    from reports.bounds import HR_MAX, HR_MIN, LOG_HR_MAX, SE_MAX, SE_MIN

    path = write(tmp_path, f"study,yi,sei\na,{-LOG_HR_MAX!r},{SE_MIN!r}\n"
                           f"b,{LOG_HR_MAX!r},{SE_MIN!r}\nc,0,{SE_MAX!r}\nd,{LOG_HR_MAX!r},{SE_MAX!r}\n")
    for method in ("REML", "DL", "PM", "FE"):
        proc = run_cli("meta", str(path), "--method", method,
                       env=cli_env(MMLR_DATA_DIR=str(tmp_path / "d")))
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        assert "inf" not in proc.stdout and "nan" not in proc.stdout
    hr = write(tmp_path, f"study,hr,ci_low,ci_high\na,{HR_MIN!r},{HR_MIN!r},{2 * HR_MIN!r}\n"
                         f"b,{HR_MAX!r},{HR_MAX / 2!r},{HR_MAX!r}\nc,1,{HR_MIN!r},{HR_MAX!r}\n",
               name="hr.csv")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any numpy RuntimeWarning fails the test
        for method in ("REML", "DL", "PM", "FE"):
            result = meta_from_csv(hr, method=method)
            assert all(math.isfinite(r.estimate) and math.isfinite(r.ci_high)
                       for _, r in result.analyses)
            result.describe()


def test_table_has_one_precision_per_kind_of_number(tmp_path: Path) -> None:
    """HR, CI and PI to 3 decimals alike (the PI had 2), Q to 2 and p to 3 (had 4); one trial
    has no PI, I² or Q to show."""
    path = write(tmp_path, "study,hr,ci_low,ci_high,subgroup\na,0.60,0.45,0.80,x\n"
                           "b,0.72,0.55,0.94,x\nc,1.025,0.789,1.332,y\n")
    lines = {line.split()[0]: line for line in meta_from_csv(path).describe().splitlines()}
    assert lines["x"].split()[5:7] == ["0.208–2.101", "0.208–2.101"]
    assert lines["y"].split()[1:] == ["1", "0.0247", "0.1336", "1.025", "0.789–1.332", "—",
                                      "0.0000", "—", "—"]
    assert lines["all"].split()[5:7] == ["0.389–1.506", "0.227–2.578"]
    assert lines["Test"].endswith("Q = 7.34, df = 1, p = 0.007")


def _cli_error(tmp_path: Path, text: str) -> tuple[Path, str]:
    """Run ``mmlr meta`` on ``text``; the one line it printed on stderr (exit 1), with the
    file's path and the prefix taken off for an exact comparison."""
    path = write(tmp_path, text)
    proc = run_cli("meta", str(path), env=cli_env(MMLR_DATA_DIR=str(tmp_path / "d")))
    assert_one_line_error(proc)
    assert proc.stdout == ""
    line = proc.stderr.strip()
    assert line.startswith(f"mmlr: error: {path}, line "), line
    return path, line.removeprefix(f"mmlr: error: {path}, ")


@pytest.mark.parametrize("name", ["a" * 200_000, '"' + "a" * 200_000 + '"'])
def test_a_cell_beyond_the_csv_field_limit_names_its_line(tmp_path: Path, name: str) -> None:
    # Was "internal error in `meta`": the csv module's "field larger than field limit".
    _, line = _cli_error(tmp_path, f"study,yi,sei\na,0.1,0.1\n{name},0.2,0.1\n")
    assert line == ("line 3: not valid CSV (field larger than field limit (131072)) (no cell of "
                    "a study is that long: look for a quote opened in that row and not closed)")


def test_an_unterminated_quote_is_named_where_it_opens(tmp_path: Path) -> None:
    # Was "line 3, column yi: empty cell": the quoted cell took the rest of the file.
    _, line = _cli_error(tmp_path, 'study,yi,sei\na,0.1,0.1\n"b,0.2,0.1\nc,0.3,0.1\n')
    assert line == ("line 3: unterminated quote (a quoted cell in the row starting here runs "
                    "to the end of the file) (close the quote, or remove it)")
    # Long enough for the field limit to come first: still the row where the quote opened.
    _, line = _cli_error(tmp_path, 'study,yi,sei\na,0.1,0.1\n"b,0.2,0.1\n'
                         + "c,0.3,0.1\n" * 20_000)
    assert line.startswith("line 3: not valid CSV (field larger than field limit")


def test_text_after_a_closing_quote_is_refused(tmp_path: Path) -> None:
    # Was read as the study "a et al" (the csv module's default drops the quotes).
    _, line = _cli_error(tmp_path, 'study,yi,sei\nb,0.2,0.1\n"a" et al,0.1,0.1\n')
    assert line == ("line 3: not valid CSV (',' expected after '\"') (quote a cell whole, and "
                    "double a quote inside it (\"\"))")


def test_rows_spanning_lines_are_named_by_their_first_line(tmp_path: Path) -> None:
    # A quoted study name over two lines: the rows start on lines 2 and 4; the line of their
    # end (reader.line_num) was named instead.
    rows = 'study,hr,ci_low,ci_high\n"a\nlong name",0.50,0.45,0.90\n"b\nname",0.6,0.5,0.72\n'
    result = meta_from_csv(write(tmp_path, rows))
    assert [(s.line, s.study) for s in result.studies] == [(2, "a long name"), (4, "b name")]
    assert result.warnings[0].startswith("line 2 (a long name): ")
    _, line = _cli_error(tmp_path, 'study,yi,sei\n"a\nb",0.1,0.1\n\n"c\nd",zero,0.1\n')
    assert line == "line 5, column yi: 'zero' is not a number"


@pytest.mark.parametrize(("header", "message"), [
    # the second "yi" was pooled, silently
    ("study,yi,sei,yi", "line 1: column 'yi' is given twice, as columns 2 and 4 (keep one: "
                        "which to pool cannot be guessed)"),
    ("study,yi,sei,YI ", "line 1: column 'yi' is given twice, as columns 2 and 4 ('yi' and "
                         "'YI ') (keep one: which to pool cannot be guessed)"),
    # ignored, so the rows were pooled without their subgroups
    ("study,yi,sei,subgrup", "line 1, column 4: unknown column 'subgrup' (did you mean "
                             "'subgroup'? the columns are study, yi, sei, hr, ci_low, "
                             "ci_high, subgroup, date)"),
    ("study,yi,sei,notes", "line 1, column 4: unknown column 'notes' (the columns are study, "
                           "yi, sei, hr, ci_low, ci_high, subgroup, date)"),
    # yi and sei were pooled, the HR and CI ignored
    ("study,yi,sei,hr,ci_low,ci_high", "line 1: both the log scale (yi, sei) and the HR scale "
     "(hr, ci_low, ci_high) are given (keep the columns of one scale: study,yi,sei or "
     "study,hr,ci_low,ci_high)"),
    ("study,hr,ci_low,ci_high,sei", "line 1: both the log scale (sei) and the HR scale (hr, "
     "ci_low, ci_high) are given (keep the columns of one scale: study,yi,sei or "
     "study,hr,ci_low,ci_high)"),
    # was "no 'study' column" with no word of the separator
    ("study;yi;sei", "line 1: no 'study' column (the separator must be a comma; this header "
                     "has ';')"),
    ("study,yi;sei", "line 1, column 2: unknown column 'yi;sei' (the separator must be a "
                     "comma; this header has ';')"),
])
def test_a_header_that_does_not_say_which_numbers_to_pool_is_refused(
        tmp_path: Path, header: str, message: str) -> None:
    _, line = _cli_error(tmp_path, f"{header}\na,0.1,0.1,0.1,0.2,0.3\n")
    assert line == message


def test_a_column_without_a_name_must_be_empty(tmp_path: Path) -> None:
    # A spreadsheet's trailing commas are no data to lose.
    result = meta_from_csv(write(tmp_path, "study,yi,sei,\na,0.1,0.1,\nb,0.2,0.1\n"))
    assert [s.study for s in result.studies] == ["a", "b"]
    _, line = _cli_error(tmp_path, "study,yi,sei,\na,0.1,0.1,\nb,0.2,0.1, x\n")
    assert line == ("line 3, column 4: 'x' is in a column with no name in the header (name "
                    "the column, or empty it)")
