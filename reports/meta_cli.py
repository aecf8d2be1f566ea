"""``mmlr meta FILE.csv``: pool arbitrary rows so anyone can audit a number.

The CSV has a header and one row per study: ``study, yi, sei`` (log HR and its SE) or
``study, hr, ci_low, ci_high`` (HR with a 95% CI, maintenance vs control), optionally
``subgroup`` and ``date`` (YYYY, YYYY-MM or YYYY-MM-DD, for the cumulative analysis). Each
subgroup is pooled on its own, then all rows together, followed by the test for subgroup
differences. Any bad cell stops the run with a ValidationError naming file, line (the line a
row starts on) and column, and so does a number no trial reports (an HR or CI limit outside
1e-4–1e4, a log HR beyond ±9.21, an SE of the log HR outside 1e-4–10: see
``reports.bounds``). So does a header that leaves unsaid which numbers to pool: a column given
twice (case and surrounding spaces do not count), one not listed above (one without a name
must be empty), or columns of both scales (refused, not checked for agreement: the user says
which numbers are meant). Broken CSV (an unclosed quote, a cell over the csv module's 131072
characters) is named by its line.
"""

from __future__ import annotations

import calendar
import csv
import difflib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from reports.bounds import (
    HR_RANGE,
    LOG_HR_MAX,
    SE_RANGE,
    plausible_hr,
    plausible_log_hr,
    plausible_se,
)
from reports.derive import from_ci
from reports.meta import (
    MetaResult,
    SubgroupTest,
    clean_json,
    meta_analysis,
    subgroup_test,
    subgroup_test_undefined,
)
from reports.presentation import has_heterogeneity, i2_text
from reports.words import interval_text, rounded
from store.errors import ValidationError
from store.infile import input_file_problem
from store.numbers import parse_decimal
from store.spreadsheet import CsvLines

# [0-9], not \d: other scripts' digits (Arabic-Indic ٢٠١٠) matched \d and then sorted
# wrongly in the cumulative view.
_DATE = re.compile(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?")

def _last_day(text: str) -> date:
    """The last day a checked ``date`` cell (``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``) can mean."""
    found = _DATE.fullmatch(text)
    if found is None:  # read_meta_csv refused it already
        raise ValueError(f"not a date cell: {text!r}")
    year, month, day = found.groups()
    y, m = int(year), int(month or 12)
    return date(y, m, int(day) if day else calendar.monthrange(y, m)[1])


#: The columns read, of the two scales and in all; any other in the header is refused.
LOG_COLUMNS = ("yi", "sei")
HR_COLUMNS = ("hr", "ci_low", "ci_high")
COLUMNS = ("study", *LOG_COLUMNS, *HR_COLUMNS, "subgroup", "date")

# The bounds are reports.bounds': the trial page's form and the API refuse the same numbers,
# so an estimate stored there is one this command would read.


@dataclass
class CsvStudy:
    line: int
    study: str
    yi: float
    sei: float
    subgroup: str | None = None
    date: str | None = None


#: Decimals of ``mmlr meta``'s table: the log scale, the HR scale.
_LOG, _HR = 4, 3


@dataclass
class MetaCsvResult:
    path: Path
    method: str
    ci: str
    analyses: list[tuple[str, MetaResult]]  # subgroups in order of appearance, then "all"
    subgroup_test: SubgroupTest | None
    subgroup_test_note: str | None
    studies: list[CsvStudy]
    warnings: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.path.name}"

    @property
    def overall(self) -> MetaResult:
        return dict(self.analyses)["all"]

    def cumulative(self) -> list[tuple[str, MetaResult]]:
        """All rows added by date (only when every row has one), a year or a month read as
        its last day, as the pool reads a report year (31 December: the evidence was not
        public before): sorted as text, "2005" came before "2005-03-01"."""
        if not self.studies or any(s.date is None for s in self.studies):
            return []
        return self.overall.cumulative([_last_day(str(s.date)) for s in self.studies])

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "method": self.method,
            "ci": self.ci,
            "analyses": [res.to_json(name) for name, res in self.analyses],
            "subgroup_test": self.subgroup_test.to_json() if self.subgroup_test else None,
            "subgroup_test_note": self.subgroup_test_note,
            "warnings": self.warnings,
        }
        cumulative = self.cumulative()
        if cumulative:
            doc["cumulative"] = [{"added": name, "k": r.k, "estimate": r.estimate,
                                  "ci_low": r.ci_low, "ci_high": r.ci_high}
                                 for name, r in cumulative]
        return clean_json(doc)

    def describe(self) -> str:
        # One precision per kind of number, every column alike (rounded half-up,
        # reports.words): the log scale (log HR, SE, τ²) to 4 decimals, the HR scale (HR, CI,
        # PI) to 3, I² to 0, Q to 2, p to 3. One trial has no PI, I² or Q to speak of.
        lines = [f"{self.path}: {len(self.studies)} rows, {self.method} + {self.ci}"]
        header = (f"{'analysis':20} {'k':>3} {'log HR':>8} {'SE':>7} {'HR':>6} "
                  f"{'95% CI':>13} {'95% PI':>13} {'tau2':>7} {'I2':>5} {'p(Q)':>6}")
        lines += [header, "-" * len(header)]
        for name, r in self.analyses:
            several = has_heterogeneity(r.k)
            pi = (interval_text(rounded(r.hr_pi_low, _HR), rounded(r.hr_pi_high, _HR))
                  if several and math.isfinite(r.pi_low) else "—")
            ci = interval_text(rounded(r.hr_ci_low, _HR), rounded(r.hr_ci_high, _HR))
            i2 = i2_text(r.i2) if several else "—"
            q_p = rounded(r.q_p, 3) if several else "—"
            lines.append(
                f"{name[:20]:20} {r.k:>3} {rounded(r.estimate, _LOG):>8} "
                f"{rounded(r.se, _LOG):>7} {rounded(r.hr, _HR):>6} {ci:>13} {pi:>13} "
                f"{rounded(r.tau2, _LOG):>7} {i2:>5} {q_p:>6}"
            )
        if self.subgroup_test:
            t = self.subgroup_test
            lines.append(f"Test for subgroup differences: Q = {rounded(t.q, 2)}, df = {t.df}, "
                         f"p = {rounded(t.p, 3)}")
        if self.subgroup_test_note:
            lines.append(f"note: {self.subgroup_test_note}")
        for name, r in self.analyses:
            lines += [f"note ({name}): {n}" for n in r.notes]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _number(path: Path, line: int, column: str, text: str) -> float:
    value = (text or "").strip()
    if not value:
        raise ValidationError(f"{path}, line {line}, column {column}: empty cell",
                              hint="every row needs a number here")
    try:
        number = parse_decimal(value)
    except ValueError as exc:
        raise ValidationError(f"{path}, line {line}, column {column}: {exc}") from None
    if not math.isfinite(number):
        raise ValidationError(f"{path}, line {line}, column {column}: {value!r} is not finite")
    return number


def _plausible_se(path: Path, line: int, column: str, se: float, shown: str) -> None:
    if not plausible_se(se):
        plural = "s" if " and " in column else ""
        raise ValidationError(
            f"{path}, line {line}, column{plural} {column}: standard error {shown} of the log "
            f"HR is implausible (outside {SE_RANGE})",
            hint="a log HR's standard error is about 2/√(events)")


def _not_csv(path: Path, line: int, exc: csv.Error) -> ValidationError:
    """``exc`` of the row starting on ``line`` in words: the csv module's own are for a
    programmer ("unexpected end of data")."""
    detail = str(exc)
    if detail == "unexpected end of data":  # strict: the text ended inside a quoted cell
        return ValidationError(
            f"{path}, line {line}: unterminated quote (a quoted cell in the row starting here "
            "runs to the end of the file)", hint="close the quote, or remove it")
    if "field limit" in detail:  # csv.field_size_limit(), 131072 characters
        # No study name or number is that long: the limit stays, and it is most likely a
        # quote opened in this row and closed much later, swallowing the rows between.
        hint = "no cell of a study is that long: look for a quote opened in that row and not closed"
    else:
        hint = "quote a cell whole, and double a quote inside it (\"\")"
    return ValidationError(f"{path}, line {line}: not valid CSV ({detail})", hint=hint)


def _rows(path: Path, records: CsvLines) -> Iterator[list[str]]:
    """The rows of ``records``, a ``csv.Error`` as a ValidationError naming the line."""
    while True:
        try:
            cells = next(records)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _not_csv(path, records.start, exc) from None
        yield cells


def _columns(path: Path, line: int, header: list[str]) -> list[str]:
    """The header's column names as the rows are read (case and surrounding spaces do not
    count); refuse what would make a row mean something other than the user meant."""
    names = [cell.strip().lower() for cell in header]
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if not name:  # checked on each row: only an empty column may go without a name
            continue
        if name in first:
            # Reading on would take one of the two silently (csv.DictReader takes the last).
            j = first[name]
            spelt = f" ({header[j]!r} and {header[i]!r})" if header[j] != header[i] else ""
            raise ValidationError(
                f"{path}, line {line}: column {name!r} is given twice, as columns {j + 1} "
                f"and {i + 1}{spelt}", hint="keep one: which to pool cannot be guessed")
        first[name] = i
    # A file saved with ';' between cells (a spreadsheet in a locale with decimal commas) has
    # one column, "study;yi;sei".
    separator = "the separator must be a comma; this header has ';'"
    if "study" not in first:
        raise ValidationError(
            f"{path}, line {line}: no 'study' column",
            hint=separator if any(";" in name for name in names)
            else "header must be study,yi,sei or study,hr,ci_low,ci_high")
    for i, name in enumerate(names):
        if name and name not in COLUMNS:
            # An unknown column would be ignored with all it holds: a misspelt "subgroup"
            # pooled every row together.
            if ";" in name:
                hint = separator
            else:
                close = difflib.get_close_matches(name, COLUMNS, n=1)
                known = f"the columns are {', '.join(COLUMNS)}"
                hint = f"did you mean {close[0]!r}? {known}" if close else known
            raise ValidationError(
                f"{path}, line {line}, column {i + 1}: unknown column {header[i].strip()!r}",
                hint=hint)
    log = [c for c in LOG_COLUMNS if c in first]
    hr = [c for c in HR_COLUMNS if c in first]
    if log and hr:
        # Two numbers for one study and no way to tell which the user meant to pool.
        raise ValidationError(
            f"{path}, line {line}: both the log scale ({', '.join(log)}) and the HR scale "
            f"({', '.join(hr)}) are given",
            hint="keep the columns of one scale: study,yi,sei or study,hr,ci_low,ci_high")
    return names


def _label(text: str) -> str:
    """A study or subgroup name on one line: a quoted cell may span lines (the name pasted
    from a paper), and the table and forest plot show one line per row."""
    return " ".join(text.split())


def read_meta_csv(path: Path) -> tuple[list[CsvStudy], list[str]]:
    """Parse and validate the rows (see the module docstring); return them and warnings."""
    # (a folder used to be reported as "cannot be read as UTF-8 text")
    if (problem := input_file_problem(path)) is not None:
        raise ValidationError(f"{path}: {problem}", hint="give the path of a CSV file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError(f"{path}: not UTF-8 text", hint="save it as UTF-8 CSV") from None
    except OSError as exc:
        raise ValidationError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    # strict: an unclosed quote is refused where it starts, instead of its cell taking the
    # rest of the file and the row being reported as missing a number.
    records = CsvLines(text, strict=True)
    rows = _rows(path, records)
    header = next(rows, None)
    if header is None:
        raise ValidationError(f"{path}: empty file", hint="the first line must be a header")
    at = records.start  # the header's line: 1 unless blank lines come first
    names = _columns(path, at, header)
    cols = set(names)
    if {"yi", "sei"} <= cols:
        kind = "yi"
    elif {"hr", "ci_low", "ci_high"} <= cols:
        kind = "hr"
    else:
        raise ValidationError(
            f"{path}, line {at}: needs columns yi and sei, or hr, ci_low and ci_high "
            f"(found {', '.join(names)})")
    unnamed = [i for i, name in enumerate(names) if not name]
    studies: list[CsvStudy] = []
    warnings: list[str] = []
    for cells in rows:
        n = records.start  # the row's first line (blank lines and quoted newlines counted)
        if len(cells) > len(names):
            raise ValidationError(f"{path}, line {n}: more cells than header columns")
        if all(not v.strip() for v in cells):
            continue
        for i in unnamed:
            if i < len(cells) and cells[i].strip():
                raise ValidationError(
                    f"{path}, line {n}, column {i + 1}: {cells[i].strip()!r} is in a column "
                    "with no name in the header", hint="name the column, or empty it")
        # A short row's missing cells are empty (every named column is unique by now).
        row = dict(zip(names, cells + [""] * (len(names) - len(cells)), strict=True))
        study = _label(row["study"])
        if not study:
            raise ValidationError(f"{path}, line {n}, column study: empty study name")
        if kind == "yi":
            yi = _number(path, n, "yi", row["yi"])
            sei = _number(path, n, "sei", row["sei"])
            if sei <= 0:
                raise ValidationError(
                    f"{path}, line {n}, column sei: standard error {row['sei'].strip()} "
                    "must be positive")
            if not plausible_log_hr(yi):
                raise ValidationError(
                    f"{path}, line {n}, column yi: log HR {row['yi'].strip()} is implausible "
                    f"(outside ±{LOG_HR_MAX:.2f}, an HR outside {HR_RANGE})",
                    hint="yi is the natural log of the hazard ratio")
            _plausible_se(path, n, "sei", sei, row["sei"].strip())
        else:
            values = {c: _number(path, n, c, row[c]) for c in ("hr", "ci_low", "ci_high")}
            for c, v in values.items():
                if v <= 0:
                    raise ValidationError(
                        f"{path}, line {n}, column {c}: {row[c].strip()} must be > 0 "
                        "(hazard ratios and their limits are positive)")
                if not plausible_hr(v):
                    raise ValidationError(
                        f"{path}, line {n}, column {c}: {row[c].strip()} is implausible for a "
                        f"hazard ratio (outside {HR_RANGE})")
            h, lo, hi = values["hr"], values["ci_low"], values["ci_high"]
            if not lo < hi:
                raise ValidationError(
                    f"{path}, line {n}, column ci_high: upper limit {row['ci_high'].strip()} "
                    f"is not above the lower limit {row['ci_low'].strip()}")
            if not lo <= h <= hi:
                raise ValidationError(
                    f"{path}, line {n}, column hr: HR {row['hr'].strip()} is outside its CI "
                    f"{row['ci_low'].strip()}–{row['ci_high'].strip()}")
            derived = from_ci(row["hr"].strip(), row["ci_low"].strip(), row["ci_high"].strip())
            yi, sei = derived.log_hr, derived.se
            _plausible_se(path, n, "ci_low and ci_high", sei,
                          f"{sei:.3g} (from the CI {row['ci_low'].strip()}–"
                          f"{row['ci_high'].strip()})")
            warnings += [f"line {n} ({study}): {w}" for w in derived.warnings]
        subgroup = None
        if "subgroup" in cols:
            subgroup = _label(row["subgroup"])
            if not subgroup:
                raise ValidationError(
                    f"{path}, line {n}, column subgroup: empty",
                    hint="name a subgroup on every row, or leave the column out")
            if subgroup == "all":
                raise ValidationError(f"{path}, line {n}, column subgroup: 'all' is reserved "
                                      "for the pooled total; rename the subgroup")
        when = None
        if "date" in cols and (row.get("date") or "").strip():
            when = row["date"].strip()
            if (problem := _date_problem(when)) is not None:
                raise ValidationError(f"{path}, line {n}, column date: {when!r} {problem}",
                                      hint="write it as YYYY, YYYY-MM or YYYY-MM-DD with the "
                                           "digits 0-9, e.g. 2023-02-28")
        studies.append(CsvStudy(n, study, yi, sei, subgroup, when))
    if not studies:
        raise ValidationError(f"{path}: no data rows after the header")
    return studies, warnings + _repeated_names(studies)


def _repeated_names(studies: list[CsvStudy]) -> list[str]:
    """A warning for each study name met before (case and spacing aside): one trial on two
    rows counts its patients twice in the pooled total, and two different comparisons with
    one name cannot be told apart in the table and plot. Warned, not refused: a row may be
    meant, e.g. the same trial's two comparisons in different subgroups."""
    first: dict[str, CsvStudy] = {}
    out: list[str] = []
    for study in studies:
        key = study.study.casefold()
        if key in first:
            out.append(f"line {study.line} ({study.study}): the same study name as line "
                       f"{first[key].line}: one trial on two rows counts its patients twice "
                       "in the pooled total (different comparisons need different names)")
        else:
            first[key] = study
    return out


def _date_problem(when: str) -> str | None:
    """Why ``when`` is not a date of the ``date`` column (YYYY, YYYY-MM or YYYY-MM-DD, a real
    day of the calendar), or None when it is one."""
    match = _DATE.fullmatch(when)
    if match is None:
        return "is not YYYY, YYYY-MM or YYYY-MM-DD"
    year, month, day = match.groups()
    if month is not None and not 1 <= int(month) <= 12:
        return f"has month {month}, not one of 01-12"
    if month is not None and day is not None:
        # monthrange knows the leap years: 2024-02-29 is a day, 2023-02-29 is not
        days = calendar.monthrange(int(year), int(month))[1]
        if not 1 <= int(day) <= days:
            return f"has day {day}, not one of 01-{days} of {year}-{month}"
    return None


def meta_from_csv(path: Path, *, method: str = "REML", ci: str = "hksj") -> MetaCsvResult:
    """Pool each subgroup of the CSV, then all rows, with ``method`` and ``ci``."""
    path = Path(path)
    studies, warnings = read_meta_csv(path)
    analyses: list[tuple[str, MetaResult]] = []
    groups = list(dict.fromkeys(s.subgroup for s in studies if s.subgroup is not None))
    for name in groups:
        part = [s for s in studies if s.subgroup == name]
        analyses.append((name, meta_analysis([s.yi for s in part], [s.sei for s in part],
                                             method=method, ci=ci,
                                             labels=[s.study for s in part])))
    analyses.append(("all", meta_analysis([s.yi for s in studies], [s.sei for s in studies],
                                          method=method, ci=ci,
                                          labels=[s.study for s in studies])))
    test = subgroup_test(analyses[:-1]) if len(groups) > 1 else None
    return MetaCsvResult(path=path, method=method, ci=ci, analyses=analyses,
                         subgroup_test=test, subgroup_test_note=subgroup_test_undefined(
                             analyses[:-1]) if len(groups) > 1 else None,
                         studies=studies, warnings=warnings)
