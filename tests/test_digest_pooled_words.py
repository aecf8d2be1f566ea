"""What the digest, the summary of findings and ``mmlr pool``'s table say beside a pooled
number: the fit's own notes on its CI, and the words of a change between two digests."""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, date, datetime

from test_pool import add_estimate, add_trial

from reports.digest import build_digest
from reports.export_sof import sof_markdown, write_sof_csv
from reports.pool import pool_all
from store.context import make_context
from store.models import Estimate, PooledResult, Trial

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


def test_a_change_of_pooling_method_is_not_reported_as_new_evidence(ctx) -> None:  # type: ignore[no-untyped-def]
    _agreeing_trials(ctx)
    pool_all(ctx)
    build_digest(ctx)
    adhoc = make_context(ctx.settings.model_copy(update={"pool_ci": "hksj-adhoc"}))
    try:  # its engine is closed at the end: a PostgreSQL connection left open fails a later test
        pool_all(adhoc)
        d = build_digest(adhoc)
        entry = _entry(d)
        assert entry["status"] == "updated" and entry["crossing"] == "now crosses 1"
        said = ("pooling method changed: REML + HKSJ → REML + HKSJ (ad hoc); "
                "same trials and estimates")
        assert entry["method_change"] == said
        assert f"Not new evidence: {said}." in d.text
        assert "The CI now crosses 1 (with the new method, not with new evidence)." in d.text
        assert f"Not new evidence: {said}" in d.html and "CI now crosses 1 (with the new method)" \
            in d.html
        # New evidence pooled with the same method is news again, without the words.
        with adhoc.sessions() as s:
            add_estimate(s, add_trial(s, "Trial D"), "0.60", "0.45", "0.80", cut=date(2014, 1, 1))
            s.commit()
        pool_all(adhoc)
        later = build_digest(adhoc)
        assert _entry(later)["method_change"] is None
        assert "Not new evidence" not in later.text + later.html
    finally:
        adhoc.dispose()


def _snapshot(hr: float, low: float, high: float, *, inputs_hash: str = "h1",
              code_version: str = "0.1.0", ci_method: str = "hksj") -> PooledResult:
    """A stored snapshot of three trials with the given pooled HR and CI."""
    return PooledResult(
        analysis_key=KEY, analysis_label="Thalidomide, PFS, post-ASCT", k=3, method="REML",
        ci_method=ci_method, estimate=math.log(hr), se=0.1, ci_low=math.log(low),
        ci_high=math.log(high), pi_low=math.log(low) - 0.2, pi_high=math.log(high) + 0.2,
        tau2=0.0, i2=0.0, inputs_hash=inputs_hash, settings={}, code_version=code_version,
        result={}, inputs=[{"trial": t, "trial_id": i, "estimate_id": i, "yi": math.log(hr),
                            "sei": 0.17, "hr": hr, "ci_low": low, "ci_high": high}
                           for i, t in enumerate(["A", "B", "C"], 1)])


def _digest_after(ctx, first: PooledResult, second: PooledResult):  # type: ignore[no-untyped-def]
    """The digest of ``second``, stored after a digest of ``first``."""
    for snapshot in (first, second):
        with ctx.sessions() as s:
            s.add(snapshot)
            s.commit()
        digest = build_digest(ctx)
    return digest


def test_a_new_code_version_with_the_same_inputs_says_so(ctx) -> None:  # type: ignore[no-untyped-def]
    d = _digest_after(ctx, _snapshot(0.90, 0.80, 1.02),
                      _snapshot(0.90, 0.80, 1.03, code_version="0.2.0"))
    assert _entry(d)["method_change"] == (
        "mmlr's computation changed (code 0.1.0 → 0.2.0); same trials, estimates and "
        "pooling method")
    assert "Not new evidence: mmlr's computation changed" in d.text


def test_a_corrected_estimate_leaves_with_its_reason_and_comes_back_as_corrected(ctx) -> None:  # type: ignore[no-untyped-def]
    with ctx.sessions() as s:
        add_estimate(s, add_trial(s, "Trial A"), "0.60", "0.45", "0.80", cut=date(2010, 6, 1))
        b = add_trial(s, "Trial B")
        old = add_estimate(s, b, "0.72", "0.55", "0.94", cut=date(2011, 1, 1))
        add_estimate(s, add_trial(s, "Trial C"), "0.90", "0.70", "1.16", cut=date(2012, 1, 1))
        s.commit()
        old_id = old.id
    pool_all(ctx)
    build_digest(ctx)
    with ctx.sessions() as s:  # corrected (as the Correct form does): the new one unverified
        fix = add_estimate(s, s.get(Trial, b.id), "0.70", "0.55", "0.94",
                           cut=date(2011, 1, 1), verified=False)
        fix.supersedes_id = old_id
        was = s.get(Estimate, old_id)
        was.withdrawn_at = datetime(2024, 1, 2, tzinfo=UTC)
        was.withdrawn_reason = f"corrected by estimate {fix.id}"
        s.commit()
        fix_id = fix.id
    pool_all(ctx)
    d = build_digest(ctx)
    said = f"Trial B (withdrawn: corrected by estimate {fix_id}, awaiting verification)"
    assert _entry(d)["removed_trials"] == ["Trial B"]
    assert f"No longer pooled: {said}" in d.text and f"No longer pooled: {said}" in d.html
    with ctx.sessions() as s:
        s.get(Estimate, fix_id).verified = True
        s.commit()
    pool_all(ctx)
    back = build_digest(ctx)
    entry = _entry(back)
    assert entry["added_trials"] == []
    assert [t["label"] for t in entry["returning_trials"]] == ["Trial B"]
    assert "Back in the pool: Trial B (returns with a corrected estimate; weight" in back.text
    assert "Back in the pool:" in back.html and "returns with a corrected estimate" in back.html
    assert "Newly added" not in back.text + back.html


def test_a_trial_new_to_the_analysis_is_still_newly_added(ctx) -> None:  # type: ignore[no-untyped-def]
    with ctx.sessions() as s:
        add_estimate(s, add_trial(s, "Trial A"), "0.60", "0.45", "0.80", cut=date(2010, 6, 1))
        s.commit()
    pool_all(ctx)
    build_digest(ctx)
    with ctx.sessions() as s:
        add_estimate(s, add_trial(s, "Trial B"), "0.72", "0.55", "0.94", cut=date(2011, 1, 1))
        s.commit()
    pool_all(ctx)
    d = build_digest(ctx)
    assert "Newly added: Trial B (weight" in d.text and "Back in the pool" not in d.text


def test_a_pooled_limit_next_to_one_keeps_its_side_of_one(ctx) -> None:  # type: ignore[no-untyped-def]
    d = _digest_after(ctx, _snapshot(0.90, 0.80, 1.02),
                      _snapshot(0.90, 0.80, 0.9996, inputs_hash="h2"))
    entry = _entry(d)
    assert entry["crossing"] == "no longer crosses 1"
    assert entry["new"]["hr_text"] == "0.90 (0.80–0.9996)"
    assert "HR (95% CI): 0.90 (0.80–1.02) -> 0.90 (0.80–0.9996)" in d.text
    assert "0.80–1.00" not in d.text + d.html


def test_text_digest_has_the_prediction_interval_and_pool_writes_small_p(ctx) -> None:  # type: ignore[no-untyped-def]
    with ctx.sessions() as s:  # three discordant trials: Q's p is 1e-13
        for name, hr, lo, hi, year in [("Trial A", "0.30", "0.22", "0.41", 2010),
                                       ("Trial B", "1.10", "0.95", "1.27", 2011),
                                       ("Trial C", "0.70", "0.60", "0.82", 2012)]:
            add_estimate(s, add_trial(s, name), hr, lo, hi, cut=date(year, 1, 1))
        s.commit()
    run = pool_all(ctx)
    row = next(li for li in run.describe().splitlines() if li.startswith(KEY))
    assert "< 0.001" in row and "0.000" not in row
    d = build_digest(ctx)
    pi = _entry(d)["new"]["pi_text"]
    assert pi and f"95% prediction interval: - -> {pi}" in d.text
    assert pi in d.html
