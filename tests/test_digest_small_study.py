"""The digest's small-study effects line: said for an analysis with 10+ trials when it reached
10 trials, when Egger's p crossed 0.10, or when trim-and-fill fills another number of trials;
never from a snapshot without the assessment (unknown), never below 10 trials, and escaped."""

from __future__ import annotations

import math
from typing import Any

from markupsafe import escape
from sqlmodel import select
from test_pool import add_estimate, add_trial

from reports.digest import build_digest, is_unchanged
from reports.pool import pool_all
from reports.selection import latest_results
from store.models import Digest, PooledResult

KEY = "thalidomide/PFS/post_asct"
LABEL = "Thalidomide, PFS, post-ASCT"
LINE = "Small-study effects: "

#: Ten thalidomide trials of different sizes (HR, CI): the tenth makes the funnel readable.
TRIALS = [("0.80", "0.66", "0.97"), ("0.70", "0.50", "0.98"), ("0.60", "0.38", "0.95"),
          ("0.90", "0.78", "1.04"), ("0.55", "0.30", "1.01"), ("0.75", "0.60", "0.94"),
          ("0.65", "0.40", "1.06"), ("0.85", "0.72", "1.00"), ("0.50", "0.25", "1.00"),
          ("0.78", "0.68", "0.90")]


def funnel(k: int, *, p: float | None = 0.30, k0: int | None = 0, side: str = "left",
           hr: float = 0.80, ci: tuple[float, float] = (0.70, 0.92)) -> dict[str, Any]:
    """A ``result["small_study"]`` of the shape ``reports.small_study`` stores, with the numbers
    a test needs (Egger's p, trim-and-fill's k0) chosen rather than computed."""
    return {
        "k": k, "k_sufficient": k >= 10, "available": k >= 3,
        "egger": None if p is None else {"bias": -1.2, "stat": -1.5, "df": k - 2, "p": p,
                                         "limit_hr": 0.9, "limit_hr_ci_low": 0.7,
                                         "limit_hr_ci_high": 1.1},
        "trim_fill": None if k0 is None else {"side": side, "k0": k0, "converged": True,
                                              "hr": hr, "hr_ci_low": ci[0],
                                              "hr_ci_high": ci[1]},
        "errors": {}, "summary": "",
    }


def snapshot(k: int, small_study: dict[str, Any] | None, *, label: str = LABEL,
             shift: float = 0.0) -> PooledResult:
    """A stored snapshot of KEY pooling ``k`` trials; ``shift`` moves the estimate (another
    pooled result), None for ``small_study`` is a snapshot from before the assessment."""
    est = math.log(0.75) + shift
    result: dict[str, Any] = {"leave_one_out": []}
    if small_study is not None:
        result["small_study"] = small_study
    return PooledResult(
        analysis_key=KEY, analysis_label=label, k=k, estimate=est, se=0.05,
        ci_low=est - 0.098, ci_high=est + 0.098, tau2=0.0, i2=0.0, result=result,
        inputs=[{"trial": f"Trial {n}", "yi": est, "sei": 0.1 + n / 100, "hr": math.exp(est),
                 "ci_low": math.exp(est - 0.3), "ci_high": math.exp(est + 0.3)}
                for n in range(k)],
        inputs_hash=f"{k}:{shift}")


def store(ctx: Any, row: PooledResult) -> None:
    with ctx.sessions() as s:
        s.add(row)
        s.commit()


def two_digests(ctx: Any, first: PooledResult, second: PooledResult) -> tuple[Digest, Digest]:
    """The digest after ``first`` is stored, and the one after ``second`` replaces it."""
    store(ctx, first)
    before = build_digest(ctx)
    store(ctx, second)
    after = build_digest(ctx)
    assert after.id != before.id
    return before, after


def entry(digest: Digest) -> dict[str, Any]:
    return next(a for a in digest.summary["analyses"] if a["key"] == KEY)


def assert_no_line(digest: Digest) -> None:
    assert entry(digest)["small_study_change"] is None
    assert LINE not in digest.text and "Small-study effects" not in digest.html
    assert "small-study-change" not in digest.html


# ----------------------------------------------------------------------------- the triggers
def test_reaching_ten_trials_is_said_with_the_stored_egger_p(ctx: Any) -> None:
    # End to end: the assessment reports.pool stores, not one made up for the test.
    with ctx.sessions() as s:
        for n, (hr, lo, hi) in enumerate(TRIALS[:9]):
            add_estimate(s, add_trial(s, f"Trial {n}"), hr, lo, hi, year=2000 + n)
        s.commit()
    pool_all(ctx)
    nine = build_digest(ctx)
    assert entry(nine)["new"]["k"] == 9
    assert entry(nine)["new"]["small_study"]["k_sufficient"] is False
    assert_no_line(nine)  # fewer than 10 trials: nothing to read yet

    with ctx.sessions() as s:
        add_estimate(s, add_trial(s, "Trial 9"), *TRIALS[9], year=2009)
        s.commit()
    pool_all(ctx)
    ten = build_digest(ctx)
    with ctx.sessions() as s:
        stored = {r.analysis_key: r for r in latest_results(s)}[KEY].result["small_study"]
    assert stored["k"] == 10 and stored["k_sufficient"] and stored["egger"] is not None
    p = stored["egger"]["p"]
    expected = ("now 10+ trials: funnel asymmetry can be assessed — Egger's test p = "
                f"{p:.3f}{' (asymmetry)' if p < 0.10 else ''}; trim-and-fill: ")
    change = entry(ten)["small_study_change"]
    assert change is not None and change.startswith(expected)
    assert f"  {LINE}{change}.\n" in ten.text
    assert f"{escape(LINE + change)}.</td></tr>" in ten.html
    assert '<tr class="small-study-change"><td colspan="3"' in ten.html
    # body only: the analysis is counted in the subject as changed already
    assert "funnel" not in ten.subject and "analyses changed" in ten.subject


def test_a_new_analysis_with_ten_trials_is_said(ctx: Any) -> None:
    store(ctx, snapshot(12, funnel(12, p=0.04, k0=2, side="left")))
    first = build_digest(ctx)
    assert entry(first)["small_study_change"] == (
        "now 10+ trials: funnel asymmetry can be assessed — Egger's test p = 0.040 "
        "(asymmetry); trim-and-fill: 2 trials filled on the side of more benefit (left), "
        "adjusted HR 0.80 (0.70–0.92)")
    assert (f"  {LINE}now 10+ trials: funnel asymmetry can be assessed — Egger's test "
            "p = 0.040 (asymmetry); trim-and-fill: 2 trials filled on the side of more benefit "
            "(left), adjusted HR 0.80 (0.70–0.92).\n") in first.text


def test_a_tiny_p_and_no_trial_filled_read_as_words(ctx: Any) -> None:
    store(ctx, snapshot(10, funnel(10, p=0.0004, k0=0)))
    assert entry(build_digest(ctx))["small_study_change"] == (
        "now 10+ trials: funnel asymmetry can be assessed — Egger's test p < 0.001 "
        "(asymmetry); trim-and-fill: no trial filled")


def test_egger_p_crossing_010_is_said_both_ways(ctx: Any) -> None:
    _, appeared = two_digests(ctx, snapshot(12, funnel(12, p=0.30)),
                              snapshot(13, funnel(13, p=0.04), shift=0.1))
    assert entry(appeared)["small_study_change"] == (
        "Egger's test p = 0.300 → p = 0.040: funnel asymmetry appeared (threshold p < 0.10)")
    assert (f"  {LINE}Egger's test p = 0.300 → p = 0.040: funnel asymmetry appeared "
            "(threshold p < 0.10).\n") in appeared.text
    assert escape(f"{LINE}Egger's test p = 0.300 → p = 0.040: funnel asymmetry appeared") \
        in appeared.html

    store(ctx, snapshot(14, funnel(14, p=0.0004), shift=0.2))  # stays asymmetric: not said
    assert_no_line(build_digest(ctx))
    store(ctx, snapshot(15, funnel(15, p=0.12), shift=0.3))
    gone = build_digest(ctx)
    assert entry(gone)["small_study_change"] == (
        "Egger's test p < 0.001 → p = 0.120: funnel asymmetry no longer detected "
        "(threshold p < 0.10)")
    assert LINE + "Egger's test p < 0.001 → p = 0.120: funnel asymmetry no longer detected" \
        in gone.text


def test_a_change_of_trim_and_fill_k0_is_said_with_the_adjusted_hr(ctx: Any) -> None:
    _, more = two_digests(ctx, snapshot(12, funnel(12, k0=0)),
                          snapshot(13, funnel(13, k0=2, side="left", hr=0.84, ci=(0.71, 0.99)),
                                   shift=0.1))
    assert entry(more)["small_study_change"] == (
        "trim-and-fill: 0 → 2 trials filled on the side of more benefit (left), "
        "adjusted HR 0.84 (0.71–0.99)")
    assert (f"  {LINE}trim-and-fill: 0 → 2 trials filled on the side of more benefit (left), "
            "adjusted HR 0.84 (0.71–0.99).\n") in more.text
    assert (f"{LINE}trim-and-fill: 0 → 2 trials filled on the side of more benefit "
            "(left)") in more.html

    store(ctx, snapshot(14, funnel(14, k0=0), shift=0.2))
    none = build_digest(ctx)
    # nothing filled: the "adjusted" HR would be the primary one, already in the table
    assert entry(none)["small_study_change"] == "trim-and-fill: 2 → 0 trials filled"


def test_both_changes_make_one_line(ctx: Any) -> None:
    _, both = two_digests(ctx, snapshot(12, funnel(12, p=0.30, k0=0)),
                          snapshot(13, funnel(13, p=0.02, k0=1, side="right", hr=1.10,
                                              ci=(0.90, 1.35)), shift=0.1))
    assert entry(both)["small_study_change"] == (
        "Egger's test p = 0.300 → p = 0.020: funnel asymmetry appeared (threshold p < 0.10); "
        "trim-and-fill: 0 → 1 trial filled on the side of less benefit (right), "
        "adjusted HR 1.10 (0.90–1.35)")
    assert both.text.count(LINE) == 1


def test_a_funnel_change_without_a_new_estimate_makes_a_digest_once(ctx: Any) -> None:
    # Same inputs and numbers, re-pooled by new code of reports/small_study.py: the estimate
    # is unchanged, the funnel assessment is not.
    _, second = two_digests(ctx, snapshot(12, funnel(12, k0=0)),
                                snapshot(12, funnel(12, k0=3, side="left")))
    assert not is_unchanged(second)
    assert entry(second)["status"] == "unchanged"
    assert entry(second)["small_study_change"] == (
        "trim-and-fill: 0 → 3 trials filled on the side of more benefit (left), "
        "adjusted HR 0.80 (0.70–0.92)")
    assert (f"Small-study effects changed while the pooled estimate did not:\n* {LABEL}: "
            "trim-and-fill: 0 → 3 trials filled on the side of more benefit (left)") in second.text
    assert 'class="small-study-only"' in second.html
    assert "1 funnel assessment changed" in second.subject  # not "no changes"
    again = build_digest(ctx)
    assert again.id == second.id and is_unchanged(again)


# ----------------------------------------------------------------------------- no line
def test_an_unchanged_assessment_gives_no_line(ctx: Any) -> None:
    _, moved = two_digests(ctx, snapshot(12, funnel(12, p=0.30, k0=1)),
                           snapshot(13, funnel(13, p=0.11, k0=1, hr=0.70), shift=0.1))
    assert entry(moved)["status"] == "updated"  # listed, but the funnel says the same
    assert_no_line(moved)
    store(ctx, snapshot(14, funnel(14, p=0.09, k0=1), shift=0.2))
    assert entry(build_digest(ctx))["small_study_change"] is not None  # 0.11 → 0.09 crosses
    store(ctx, snapshot(15, funnel(15, p=0.01, k0=1), shift=0.3))
    assert_no_line(build_digest(ctx))


def test_fewer_than_ten_trials_give_no_line(ctx: Any) -> None:
    # p crosses 0.10 and k0 changes, but with 9 trials neither can be read
    _, nine = two_digests(ctx, snapshot(5, funnel(5, p=0.30, k0=0)),
                          snapshot(9, funnel(9, p=0.01, k0=2), shift=0.1))
    assert entry(nine)["new"]["small_study"]["k_sufficient"] is False
    assert_no_line(nine)
    # back below 10 from 12: nothing to read now either
    store(ctx, snapshot(12, funnel(12, p=0.30, k0=0), shift=0.2))
    build_digest(ctx)
    store(ctx, snapshot(9, funnel(9, p=0.01, k0=3), shift=0.3))
    assert_no_line(build_digest(ctx))


def test_a_snapshot_without_the_assessment_before_gives_no_line(ctx: Any) -> None:
    # Stored before small-study effects existed: unknown, so no asymmetry "appears" ...
    _, after_old = two_digests(ctx, snapshot(12, None),
                               snapshot(13, funnel(13, p=0.01, k0=2), shift=0.1))
    assert entry(after_old)["old"]["small_study"] is None
    assert_no_line(after_old)
    assert "small-study" not in after_old.html


def test_an_old_snapshot_below_ten_trials_gives_no_line_either(ctx: Any) -> None:
    # ... and no "now 10+ trials" is claimed against it: which funnel it had is unknown.
    _, ten = two_digests(ctx, snapshot(9, None), snapshot(10, funnel(10, p=0.01), shift=0.1))
    assert_no_line(ten)


def test_a_snapshot_without_the_assessment_after_gives_no_line(ctx: Any) -> None:
    # asymmetric before: a missing assessment read as "p = None, nothing filled" would
    # claim a false "no longer detected" or "2 → 0"
    _, without = two_digests(ctx, snapshot(12, funnel(12, p=0.04, k0=2)),
                             snapshot(13, None, shift=0.1))
    assert entry(without)["new"]["small_study"] is None
    assert_no_line(without)


def test_a_digest_summary_without_the_assessment_gives_no_line(ctx: Any) -> None:
    # The "before" side comes from the previous digest's summary when its snapshot is gone;
    # a summary written before this feature has no "small_study" in its views.
    store(ctx, snapshot(12, funnel(12, p=0.30, k0=0)))
    first = build_digest(ctx)
    with ctx.sessions() as s:
        stored = s.get(Digest, first.id)
        summary = dict(stored.summary)
        summary["analyses"] = [{**a, "new": {k: v for k, v in a["new"].items()
                                              if k != "small_study"}}
                               for a in summary["analyses"]]
        stored.summary = summary
        s.add(stored)
        # Another snapshot keeps the highest id taken: SQLite hands a deleted highest id out
        # again, and a new snapshot with an old id would look frozen.
        s.add(PooledResult(analysis_key="bortezomib/OS/all", analysis_label="Other", k=0))
        for row in s.exec(select(PooledResult).where(PooledResult.analysis_key == KEY)):
            s.delete(row)
        s.commit()
    store(ctx, snapshot(13, funnel(13, p=0.01, k0=2), shift=0.1))
    second = build_digest(ctx)
    assert entry(second)["status"] == "updated" and entry(second)["old"]["k"] == 12
    assert_no_line(second)


# ----------------------------------------------------------------------------- escaping
def test_the_line_and_the_label_are_escaped_in_html(ctx: Any) -> None:
    evil = '<script>alert(1)</script> & "T"'
    _, second = two_digests(
        ctx, snapshot(12, funnel(12, k0=0), label=evil),
        snapshot(12, funnel(12, k0=1, side='<img src=x onerror="x()">'), label=evil))
    # the funnel-only list names the analysis by its label, the line carries the side
    assert "<script>" not in second.html and "<img src=x" not in second.html
    assert ("<strong>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;T&#34;</strong>: "
            "trim-and-fill: 0 → 1 trial filled on the &lt;img src=x onerror=&#34;x()&#34;&gt;"
            ) in second.html
    # the text part is not HTML: it is printed as is
    assert f'* {evil}: trim-and-fill: 0 → 1 trial filled on the <img src=x onerror="x()">' \
        in second.text

    store(ctx, snapshot(13, funnel(13, p=0.01, k0=2, side="<b>left</b>"), label=evil,
                        shift=0.1))
    third = build_digest(ctx)  # an updated analysis: the line is a row of its table
    assert "<b>left</b>" not in third.html
    assert "2 trials filled on the &lt;b&gt;left&lt;/b&gt;" in third.html
    assert "Egger&#39;s test p = 0.300 → p = 0.010" in third.html
    assert "<script>" not in third.html
