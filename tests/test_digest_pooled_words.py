"""What the digest, the summary of findings and ``mmlr pool``'s table say beside a pooled
number: the fit's own notes on its CI, and the words of a change between two digests."""

from __future__ import annotations

import csv
import io
from datetime import date

from test_pool import add_estimate, add_trial

from reports.digest import build_digest
from reports.export_sof import sof_markdown, write_sof_csv
from reports.pool import pool_all

KEY = "thalidomide/PFS/post_asct"
NARROW = "HKSJ multiplier s²w = 0.00156 < 1 narrows the CI below Wald's; hksj-adhoc would not"


def _agreeing_trials(ctx) -> None:  # type: ignore[no-untyped-def]
    """Three trials that agree almost exactly: Hartung–Knapp's multiplier is far below 1 and
    its CI (0.69–0.71) narrower than any trial's."""
    with ctx.sessions() as s:
        for name, hr, lo, hi, year in [("Trial A", "0.70", "0.55", "0.90", 2010),
                                       ("Trial B", "0.70", "0.50", "0.98", 2011),
                                       ("Trial C", "0.71", "0.45", "1.12", 2012)]:
            add_estimate(s, add_trial(s, name), hr, lo, hi, cut=date(year, 1, 1))
        s.commit()


def _entry(digest, key: str = KEY) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return next(a for a in digest.summary["analyses"] if a["key"] == key)


def test_a_narrow_hksj_ci_carries_the_fits_note_everywhere_it_is_shown(ctx) -> None:  # type: ignore[no-untyped-def]
    _agreeing_trials(ctx)
    run = pool_all(ctx)
    table = run.describe()
    assert "0.69–0.71" in table
    assert f"note from the fit: {NARROW}" in table
    # beside the analysis it belongs to, not once at the end
    lines = table.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith(KEY))
    assert any(NARROW in line for line in lines[row + 1:row + 4])

    d = build_digest(ctx)
    assert _entry(d)["new"]["fit_notes"] == [NARROW]
    text = d.text
    at = text.index("HR (95% CI): - -> 0.70 (0.69–0.71)")
    assert text.index(f"Note from the fit: {NARROW}.") - at < 200
    # escaped in HTML (the note has a "<"), next to the HR
    assert "s²w = 0.00156 &lt; 1 narrows the CI below Wald" in d.html
    assert "0.00156 < 1" not in d.html
    assert 'class="fit-note"' in d.html

    with ctx.sessions() as s:
        markdown = sof_markdown(s)
        out = io.StringIO()
        write_sof_csv(s, out)
    line = next(li for li in markdown.splitlines() if "0.70 (0.69–0.71)" in li)
    assert "note from the fit: HKSJ multiplier s²w = 0.00156 &lt; 1 narrows" in line
    row_csv = next(r for r in csv.DictReader(io.StringIO(out.getvalue())) if r["analysis"] == KEY)
    assert row_csv["fit_notes"] == NARROW


def test_two_trials_say_their_t_with_one_df_and_one_trial_says_nothing(ctx) -> None:  # type: ignore[no-untyped-def]
    with ctx.sessions() as s:
        add_estimate(s, add_trial(s, "Trial A"), "0.60", "0.45", "0.80", cut=date(2010, 6, 1))
        add_estimate(s, add_trial(s, "Trial B"), "0.72", "0.55", "0.94", cut=date(2011, 1, 1))
        add_estimate(s, add_trial(s, "Solo", drug="lenalidomide"), "0.57", "0.46", "0.71",
                     cut=date(2017, 1, 1))
        s.commit()
    run = pool_all(ctx)
    d = build_digest(ctx)
    two = _entry(d)["new"]["fit_notes"]
    assert any("t with 1 df under HKSJ, critical value 12.7" in note for note in two)
    assert "critical value 12.7" in d.text and "critical value 12.7" in d.html
    # One trial: its HR and CI are the paper's; its Wald interval's note is not shown.
    solo = _entry(d, "lenalidomide/PFS/post_asct")["new"]
    assert solo["k"] == 1 and solo["fit_notes"] == []
    table = run.describe()
    assert "Wald (z) interval used" not in table and "critical value 12.7" in table
    with ctx.sessions() as s:
        markdown = sof_markdown(s)
    solo_line = next(li for li in markdown.splitlines() if "(1) |" in li)
    assert "note from the fit" not in solo_line
