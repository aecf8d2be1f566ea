"""Digests: what changed since the previous digest, idempotency, outbox delivery, rendering."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from conftest import assert_one_line_error, cli_env, run_cli
from sqlmodel import func, select

from reports.digest import (
    TWO_TRIALS_PI_NOTE,
    build_digest,
    crosses_one,
    deliver_digest,
    format_hr,
    is_unchanged,
    render_digest,
)
from store.errors import ConfigError, DeliveryError
from store.models import Alert, Decision, Delivery, Digest, PooledResult, Record
from store.settings import Settings

XSS_TITLE = ('Lenalidomide <script>alert(1)</script> maintenance '
             '<img src=x onerror="window.__xss=1"> & "quotes"')


def pooled(key: str, label: str, trials: list[tuple[str, float, float]], *, tau2: float = 0.0,
           i2: float = 0.0, inputs_hash: str | None = None) -> PooledResult:
    """A PooledResult pooled by fixed-effect inverse variance from (trial, hr, se) triples."""
    w = [1 / (se * se + tau2) for _, _, se in trials]
    est = sum(wi * math.log(hr) for wi, (_, hr, _) in zip(w, trials, strict=True)) / sum(w)
    se = math.sqrt(1 / sum(w))
    return PooledResult(
        analysis_key=key, analysis_label=label, k=len(trials), estimate=est, se=se,
        ci_low=est - 1.959964 * se, ci_high=est + 1.959964 * se, tau2=tau2, i2=i2,
        # the per-study shape reports.pool stores (weights left out: the digest derives them)
        inputs=[{"trial": t, "yi": math.log(hr), "sei": s, "hr": hr,
                 "ci_low": math.exp(math.log(hr) - 1.959964 * s),
                 "ci_high": math.exp(math.log(hr) + 1.959964 * s)} for t, hr, s in trials],
        inputs_hash=inputs_hash or "|".join(f"{t}:{hr}:{s}" for t, hr, s in trials),
    )


def seed(ctx) -> None:  # type: ignore[no-untyped-def]
    with ctx.sessions() as s:
        s.add(Record(pmid=90000001, title=XSS_TITLE, journal="Blood", year=2024, flagged=True,
                     score=0.97, publication_types=["Randomized Controlled Trial"]))
        s.add(Record(pmid=90000002, title="Thalidomide maintenance after ASCT", journal="Lancet",
                     year=2023, flagged=True, score=0.81, publication_types=["Journal Article"]))
        s.add(Record(pmid=90000003, title="A case report", journal="BMJ", year=2022,
                     flagged=False, score=0.02))
        s.add(Record(pmid=90000004, title="Deleted flagged record", flagged=True, score=0.9,
                     deleted=True))
        s.add(pooled("len_pfs_post_asct", "Lenalidomide, PFS, post-ASCT",
                     [("CALGB 100104", 0.48, 0.12), ("IFM 2005-02", 0.50, 0.10)], i2=0.0))
        s.add(pooled("thal_os_post_asct", "Thalidomide, OS, post-ASCT",
                     [("IFM 99-02", 0.80, 0.15), ("MRC IX", 0.95, 0.08)], i2=40.0))
        s.add(Alert(kind="retraction", pmid=90000002, message="Retracted: <b>bad data</b>",
                    in_analysis=True))
        s.add(Decision(pmid=90000001, decision="include"))
        s.add(Decision(pmid=90000003, decision="exclude"))
        s.commit()


def count(ctx, model) -> int:  # type: ignore[no-untyped-def]
    with ctx.sessions() as s:
        return int(s.exec(select(func.count()).select_from(model)).one())


# ----------------------------------------------------------------------------- formatting
def test_format_hr_two_decimals_and_en_dash() -> None:
    assert format_hr(math.log(0.57), math.log(0.46), math.log(0.71)) == "0.57 (0.46–0.71)"
    assert format_hr(math.log(1.234), None, None) == "1.23"
    assert format_hr(None, None, None) == "not estimable"
    # an HKSJ limit beyond the float range is infinity in words, not an OverflowError
    assert format_hr(0.5, -790.0, 790.0) == "1.65 (0.00–∞)"
    assert crosses_one(math.log(0.8), math.log(1.1)) is True
    assert crosses_one(math.log(0.5), math.log(0.9)) is False
    assert crosses_one(None, 0.1) is None


# ----------------------------------------------------------------------------- first digest
def test_first_digest_reports_everything_current(ctx) -> None:  # type: ignore[no-untyped-def]
    seed(ctx)
    digest = build_digest(ctx)
    s = digest.summary
    assert not is_unchanged(digest) and s["first"] is True
    # flagged records: both live ones, best score first; the deleted one is left out
    assert [r["pmid"] for r in s["new_flagged"]] == [90000001, 90000002]
    assert s["new_flagged"][0]["publication_types"] == ["Randomized Controlled Trial"]
    assert s["new_flagged"][0]["url"] == "https://pubmed.ncbi.nlm.nih.gov/90000001/"
    assert s["decisions"]["counts"] == {"exclude": 1, "include": 1}
    assert [r["pmid"] for r in s["decisions"]["includes"]] == [90000001]
    assert [a["kind"] for a in s["alerts"]] == ["retraction"]
    assert {a["key"]: a["status"] for a in s["analyses"]} == {
        "len_pfs_post_asct": "new", "thal_os_post_asct": "new"}
    # the digest freezes exactly the pooled results it reports
    with ctx.sessions() as sess:
        ids = sorted(r.id for r in sess.exec(select(PooledResult)).all())
        assert digest.pooled_result_ids == ids
        assert all(a.digest_id == digest.id for a in sess.exec(select(Alert)).all())
    len_pfs = next(a for a in s["analyses"] if a["key"] == "len_pfs_post_asct")
    # fixed-effect weights of se 0.12 vs 0.10: 1/0.0144 : 1/0.01 = 41.0% : 59.0%
    assert [(t["label"], t["weight"]) for t in len_pfs["added_trials"]] == [
        ("CALGB 100104", 41.0), ("IFM 2005-02", 59.0)]
    hr_text = len_pfs["new"]["hr_text"]
    assert hr_text == format_hr(len_pfs["new"]["estimate"], len_pfs["new"]["ci_low"],
                                len_pfs["new"]["ci_high"])
    assert hr_text in digest.html and hr_text in digest.text
    assert "CALGB 100104 (weight 41.0%)" in digest.text
    assert digest.subject.startswith(f"mmlr digest #{digest.id} ")
    assert "2 analyses changed" in digest.subject and "2 new flagged records" in digest.subject


def test_a_flagged_records_decision_is_in_both_parts(ctx) -> None:  # type: ignore[no-untyped-def]
    # The HTML part said "decision: exclude" beside a flagged record; the text part left it
    # out, so a reader of plain-text mail took it for one still to screen.
    seed(ctx)
    with ctx.sessions() as s:
        s.add(Record(pmid=90000005, title="Decided trial", journal="Blood", year=2024,
                     flagged=True, score=0.8, decision="exclude"))
        s.commit()
    digest = build_digest(ctx)
    assert {r["pmid"]: r["decision"] for r in digest.summary["new_flagged"]}[90000005] == \
        "exclude"
    assert "PMID 90000005 · decision: exclude" in digest.html
    assert "Blood. 2024; PMID 90000005; score 0.80; decision: exclude\n" in digest.text
    # an undecided one says nothing of a decision, in either part
    line = next(x for x in digest.text.splitlines() if "PMID 90000002" in x)
    assert "decision" not in line


def test_first_digest_of_an_empty_review_is_still_stored(ctx) -> None:  # type: ignore[no-untyped-def]
    digest = build_digest(ctx)
    assert digest.id is not None and not is_unchanged(digest)
    assert "No new flagged records." in digest.text
    assert "no changes" in digest.subject
    again = build_digest(ctx)
    assert again.id == digest.id and is_unchanged(again)


# ----------------------------------------------------------------------------- idempotency
def test_nothing_changed_returns_previous_and_delivers_nothing_twice(ctx) -> None:  # type: ignore[no-untyped-def]
    seed(ctx)
    first = build_digest(ctx)
    lines = deliver_digest(ctx, first)
    assert len(lines) == 1 and "written to" in lines[0]
    second = build_digest(ctx)
    assert second.id == first.id and is_unchanged(second)
    assert count(ctx, Digest) == 1
    again = deliver_digest(ctx, second)
    assert len(again) == 1 and "already in the outbox" in again[0]
    assert count(ctx, Delivery) == 1
    assert len(list(ctx.settings.outbox_dir.glob("digest-*.html"))) == 1
    # re-pooling the same inputs writes a new PooledResult row but changes no number
    with ctx.sessions() as s:
        s.add(pooled("len_pfs_post_asct", "Lenalidomide, PFS, post-ASCT",
                     [("CALGB 100104", 0.48, 0.12), ("IFM 2005-02", 0.50, 0.10)]))
        s.commit()
    third = build_digest(ctx)
    assert third.id == first.id and is_unchanged(third)


# ----------------------------------------------------------------------------- changes
def test_second_digest_says_what_changed(ctx) -> None:  # type: ignore[no-untyped-def]
    seed(ctx)
    first = build_digest(ctx)
    with ctx.sessions() as s:
        s.add(Record(pmid=90000010, title="Ixazomib maintenance: TOURMALINE-MM3",
                     journal="Lancet", year=2019, flagged=True, score=0.88))
        s.add(Decision(pmid=90000002, decision="include"))
        s.add(Decision(pmid=90000010, decision="exclude"))
        s.add(Decision(pmid=90000010, decision="include"))  # changed mind: latest counts
        s.add(Alert(kind="erratum", pmid=90000001, message="Erratum in Blood 2025"))
        # a third, null trial widens the lenalidomide CI across 1
        s.add(pooled("len_pfs_post_asct", "Lenalidomide, PFS, post-ASCT",
                     [("CALGB 100104", 0.48, 0.40), ("IFM 2005-02", 0.50, 0.40),
                      ("NEW-TRIAL", 1.40, 0.20)], i2=55.0))
        s.commit()
    second = build_digest(ctx)
    s2 = second.summary
    assert second.id != first.id and not is_unchanged(second)
    assert second.period_start == first.period_end
    assert [r["pmid"] for r in s2["new_flagged"]] == [90000010]
    assert s2["decisions"]["total"] == 3
    assert s2["decisions"]["counts"] == {"exclude": 1, "include": 2}
    assert sorted(r["pmid"] for r in s2["decisions"]["includes"]) == [90000002, 90000010]
    assert [a["kind"] for a in s2["alerts"]] == ["erratum"]
    by_key = {a["key"]: a for a in s2["analyses"]}
    assert by_key["thal_os_post_asct"]["status"] == "unchanged"
    len_pfs = by_key["len_pfs_post_asct"]
    assert len_pfs["status"] == "updated" and not len_pfs["same_numbers"]
    assert "estimate unchanged" not in second.text
    assert len_pfs["old"]["k"] == 2 and len_pfs["new"]["k"] == 3
    assert len_pfs["old"]["id"] in first.pooled_result_ids
    assert len_pfs["new"]["id"] in second.pooled_result_ids
    assert len_pfs["crossing"] == "now crosses 1"
    # 1/0.16 : 1/0.16 : 1/0.04 -> NEW-TRIAL carries 4/6 of the weight
    assert [(t["label"], t["weight"]) for t in len_pfs["added_trials"]] == [("NEW-TRIAL", 66.7)]
    assert "The CI now crosses 1." in second.text
    assert "Newly added: NEW-TRIAL (weight 66.7%)" in second.text
    assert f"{len_pfs['old']['hr_text']} -> {len_pfs['new']['hr_text']}" in second.text
    assert "CI now crosses 1" in second.html
    # repeated testing: a crossing is a reason to look, said in both parts, once
    from reports.digest import CROSSING_CAVEAT
    assert second.text.count(CROSSING_CAVEAT) == 1 and "crossing-caveat" in second.html
    assert "not a new test result" in second.html
    # the unchanged analyses one per line, each with its HR, in the plain-text part
    thal = by_key["thal_os_post_asct"]["new"]["hr_text"]
    assert (f"\nUnchanged (1), HR (95% CI):\n- Thalidomide, OS, post-ASCT: {thal}\n"
            in second.text)
    assert "1 analysis changed" in second.subject and "1 alert" in second.subject


def test_a_new_estimate_is_named_with_its_pmid_and_data_cut_date(ctx) -> None:  # type: ignore[no-untyped-def]
    """The digest says which publication moved an analysis: the PMID of the report of a trial
    that joined or came with a new data cut (linked to PubMed in the HTML part), and a cut
    entered with both a date and a label keeps its date (which decides the cut pooled)."""
    def analysis(calgb: dict[str, object], extra: list[dict[str, object]]) -> PooledResult:
        trials = [("CALGB 100104", float(calgb["hr"]), 0.12), ("IFM 2005-02", 0.50, 0.10)]  # type: ignore[arg-type]
        trials += [(str(e["trial"]), float(e["hr"]), 0.2) for e in extra]  # type: ignore[arg-type]
        row = pooled("len_pfs_post_asct", "Lenalidomide, PFS, post-ASCT", trials)
        assert row.inputs is not None
        row.inputs = [{**row.inputs[0], **calgb}, {**row.inputs[1], "estimate_id": 7},
                      *({**i, **e} for i, e in zip(row.inputs[2:], extra, strict=True))]
        return row

    early = {"estimate_id": 3, "hr": 0.48, "data_cut": "2011-10-01",
             "data_cut_label": "interim", "pmid": 22571201}
    with ctx.sessions() as s:
        s.add(analysis(early, []))
        s.commit()
    build_digest(ctx)
    late = {"estimate_id": 11, "hr": 0.61, "data_cut": "2016-03-01",
            "data_cut_label": "median follow-up <b>91</b> months", "pmid": 28826616}
    joins = {"trial": "SYN-MM17 & <i>Co</i>", "estimate_id": 12, "hr": 0.68, "pmid": 90000083}
    with ctx.sessions() as s:
        s.add(analysis(late, [joins]))
        s.commit()
    second = build_digest(ctx)
    (entry,) = second.summary["analyses"]
    assert [(t["label"], t["pmid"]) for t in entry["added_trials"]] == [
        ("SYN-MM17 & <i>Co</i>", 90000083)]
    (changed,) = entry["changed_trials"]
    assert (changed["old_pmid"], changed["pmid"]) == (22571201, 28826616)
    assert ("New estimate: CALGB 100104: HR 0.48 (0.38–0.61), data cut 2011-10-01 (interim), "
            "PMID 22571201 → HR 0.61 (0.48–0.77), data cut 2016-03-01 (median follow-up <b>91</b> "
            "months), PMID 28826616") in second.text
    assert "Newly added: SYN-MM17 & <i>Co</i> (PMID 90000083; weight" in second.text
    assert '<a href="https://pubmed.ncbi.nlm.nih.gov/28826616/"' in second.html
    assert '<a href="https://pubmed.ncbi.nlm.nih.gov/90000083/"' in second.html
    assert "SYN-MM17 &amp; &lt;i&gt;Co&lt;/i&gt; (<a" in second.html
    assert "&lt;b&gt;91&lt;/b&gt;" in second.html and "<b>91" not in second.html


def test_a_new_data_cut_of_a_pooled_trial_is_named(ctx) -> None:  # type: ignore[no-untyped-def]
    """Same trials, one new estimate: the digest names the trial and both estimates (the HR
    alone would only say the pooled number moved)."""
    def analysis(calgb: tuple[int, float, str]) -> PooledResult:
        row = pooled("len_pfs_post_asct", "Lenalidomide, PFS, post-ASCT",
                     [("CALGB 100104", calgb[1], 0.12), ("IFM 2005-02", 0.50, 0.10)])
        assert row.inputs is not None
        row.inputs = [{**row.inputs[0], "estimate_id": calgb[0], "data_cut_label": calgb[2]},
                      {**row.inputs[1], "estimate_id": 7, "data_cut": "2012-05-10"}]
        return row

    with ctx.sessions() as s:
        s.add(analysis((3, 0.48, "median follow-up 34 months")))
        s.commit()
    build_digest(ctx)
    with ctx.sessions() as s:
        s.add(analysis((11, 0.61, "2017 update <b>91 months</b>")))
        s.commit()
    second = build_digest(ctx)
    (entry,) = second.summary["analyses"]
    assert entry["status"] == "updated" and entry["added_trials"] == []
    assert entry["changed_trials"] == [{
        "label": "CALGB 100104",
        "old": "HR 0.48 (0.38–0.61), data cut median follow-up 34 months",
        "new": "HR 0.61 (0.48–0.77), data cut 2017 update <b>91 months</b>", "back": False,
        "old_pmid": None, "pmid": None}]
    assert ("New estimate: CALGB 100104: HR 0.48 (0.38–0.61), data cut median follow-up 34 "
            "months → HR 0.61 (0.48–0.77), data cut 2017 update <b>91 months</b>") in second.text
    assert "&lt;b&gt;91 months&lt;/b&gt;" in second.html and "<b>91" not in second.html
    assert "IFM 2005-02:" not in second.text  # its estimate did not change
    assert "back to an earlier estimate" not in second.text

    # the 2017 cut is withdrawn: the trial goes back to the 2012 one, which is not new
    with ctx.sessions() as s:
        s.add(analysis((3, 0.48, "median follow-up 34 months")))
        s.commit()
    third = build_digest(ctx)
    (entry,) = third.summary["analyses"]
    assert [(t["label"], t["back"]) for t in entry["changed_trials"]] == [("CALGB 100104", True)]
    assert ("data cut 2017 update <b>91 months</b> → HR 0.48 (0.38–0.61), data cut median "
            "follow-up 34 months (back to an earlier estimate: the later one was withdrawn or "
            "unverified)") in third.text
    assert "(back to an earlier estimate" in third.html


def test_full_text_verdicts_of_the_period_are_reported(ctx) -> None:  # type: ignore[no-untyped-def]
    from store.fulltext import REASONS, assess
    from store.models import User

    seed(ctx)
    with ctx.sessions() as s:
        user = User(email="ft@example.org", role="curator")
        s.add(user)
        for pmid in (90000001, 90000002):
            s.get(Record, pmid).decision = "include"  # type: ignore[union-attr]
        s.commit()
        assess(s, screeners_per_record=1, user=user, pmid=90000001,
               verdict="eligible")
        s.commit()
    first = build_digest(ctx)
    ft = first.summary["fulltext"]
    assert ft["total"] == 1 and [r["pmid"] for r in ft["eligible"]] == [90000001]
    assert ft["now"]["sought"] == 2 and ft["now"]["awaiting"] == 1
    # the PubMed title is escaped in the HTML part
    section = first.html.split('id="fulltext"')[1].split("</div>")[0]
    assert "<script>alert(1)</script>" not in section and "&lt;script&gt;" in section
    # nothing new: no new digest; a verdict alone is a change
    assert is_unchanged(build_digest(ctx))
    with ctx.sessions() as s:
        user = s.exec(select(User)).one()
        assess(s, screeners_per_record=1, user=user, pmid=90000002,
               verdict="excluded", reason="not_randomised")
        s.commit()
    second = build_digest(ctx)
    assert second.id != first.id
    ft = second.summary["fulltext"]
    assert ft["total"] == 1 and ft["counts"] == {"excluded": 1} and ft["eligible"] == []
    assert [(r["pmid"], r["reason"]) for r in ft["excluded"]] == [
        (90000002, REASONS["not_randomised"])]
    assert (f"- excluded ({REASONS['not_randomised']}): Thalidomide maintenance after ASCT"
            in second.text)
    assert "Now: 2 reports sought, 0 not settled" in second.text
    assert "FULL-TEXT ASSESSMENT (1)" in second.text
    assert second.summary["fulltext"]["linked_though_ruled_out"] == [] and "CHECK:" not in \
        second.text
    # One report judged twice in a period is one report, counted by its verdict now: the
    # judgements were counted ("eligible: 1 · excluded: 1" beside "Now: 0 eligible").
    with ctx.sessions() as s:
        user = s.exec(select(User)).one()
        for verdict, reason in (("not_retrieved", None), ("excluded", "population")):
            assess(s, screeners_per_record=1, user=user, pmid=90000001, verdict=verdict,
                   reason=reason)
            s.commit()
    third = build_digest(ctx)
    ft = third.summary["fulltext"]
    assert ft["total"] == 2 and ft["counts"] == {"excluded": 1} and ft["eligible"] == []
    assert "2 judgements recorded; reports settled: excluded 1" in third.text
    assert "reports settled: excluded <strong>1</strong>" in third.html


def test_an_excluded_report_still_linked_to_a_trial_is_flagged(ctx) -> None:  # type: ignore[no-untyped-def]
    """Settled as excluded, yet a trial's report: every digest says so until it is fixed."""
    from store.fulltext import assess
    from store.models import Trial, TrialReport, User

    seed(ctx)
    with ctx.sessions() as s:
        user = User(email="ft@example.org", role="curator")
        trial = Trial(name="Linked trial", drug="lenalidomide", setting="post_asct")
        s.add_all([user, trial])
        s.get(Record, 90000002).decision = "include"  # type: ignore[union-attr]
        s.flush()
        s.add(TrialReport(trial_id=trial.id, pmid=90000002, citation="x"))
        s.commit()
        assess(s, screeners_per_record=1, user=user, pmid=90000002, verdict="excluded",
               reason="not_maintenance")
        s.commit()
    digest = build_digest(ctx)
    assert [r["pmid"] for r in digest.summary["fulltext"]["linked_though_ruled_out"]] == [
        90000002]
    assert "CHECK: settled as excluded or not retrieved, yet still a trial's report" in \
        digest.text and "(PMID 90000002," in digest.text
    section = digest.html.split('id="fulltext"')[1].split("</div>")[0]
    assert 'class="ft-check-record"' in section and "<script>" not in section
    with ctx.sessions() as s:  # read again: eligible after all — the check goes away
        assess(s, screeners_per_record=1, user=s.exec(select(User)).one(), pmid=90000002,
               verdict="eligible")
        s.commit()
    assert build_digest(ctx).summary["fulltext"]["linked_though_ruled_out"] == []


def test_ci_that_stops_crossing_one_and_removed_analysis(ctx) -> None:  # type: ignore[no-untyped-def]
    with ctx.sessions() as s:
        s.add(pooled("bort", "Bortezomib, PFS", [("A", 0.9, 0.3)]))
        s.add(pooled("gone", "Interferon, PFS", [("B", 0.9, 0.3)]))
        s.commit()
    build_digest(ctx)
    with ctx.sessions() as s:
        s.add(pooled("bort", "Bortezomib, PFS", [("A", 0.9, 0.3), ("C", 0.6, 0.05)]))
        old = s.exec(select(PooledResult).where(PooledResult.analysis_key == "gone")).one()
        s.delete(old)
        s.commit()
    d = build_digest(ctx)
    by_key = {a["key"]: a for a in d.summary["analyses"]}
    assert by_key["bort"]["crossing"] == "no longer crosses 1"
    assert by_key["gone"]["status"] == "removed" and by_key["gone"]["new"] is None
    assert "The CI no longer crosses 1." in d.text and "[no longer pooled]" in d.text
    assert "not a new test result" in d.text


def test_no_crossing_no_caveat_and_alerts_say_in_use(ctx) -> None:  # type: ignore[no-untyped-def]
    seed(ctx)
    first = build_digest(ctx)
    assert "not a new test result" not in first.text
    assert "not a new test result" not in first.html
    # Alert.in_analysis covers trial reports and included records: the label says so
    assert "(in use: a trial report or an included record)" in first.text
    assert "in a pooled analysis" not in first.text + first.html


# ----------------------------------------------------------------------------- escaping
def test_pubmed_text_is_escaped_in_html(ctx) -> None:  # type: ignore[no-untyped-def]
    seed(ctx)
    html = build_digest(ctx).html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=" in html
    assert "<b>bad data</b>" not in html and "&lt;b&gt;bad data&lt;/b&gt;" in html


# ----------------------------------------------------------------------------- optional parts
def test_forest_plot_per_changed_analysis(ctx) -> None:  # type: ignore[no-untyped-def]
    import importlib.util

    from conftest import need

    need(importlib.util.find_spec("reports.forest") is not None, "reports.forest (H3) is missing")
    seed(ctx)
    d = build_digest(ctx)
    assert d.html.count('class="forest" src="data:image/png;base64,') == 2


def test_forest_plot_failure_is_noted_not_fatal(ctx, caplog) -> None:  # type: ignore[no-untyped-def]
    import importlib.util

    from conftest import need

    need(importlib.util.find_spec("reports.forest") is not None, "reports.forest (H3) is missing")
    with ctx.sessions() as s:  # a snapshot whose inputs lack the HR columns the plot needs
        s.add(PooledResult(analysis_key="odd", analysis_label="Odd", k=1, estimate=-0.2,
                           ci_low=-0.4, ci_high=0.0, inputs=[{"trial": "X", "sei": 0.1}]))
        s.commit()
    d = build_digest(ctx)
    assert "forest plot could not be rendered (details in the log)" in d.html
    assert "forest plot could not be rendered" in d.text
    assert 'class="forest"' not in d.html
    assert d.summary["analyses"][0]["forest_note"].startswith("forest plot could not")
    assert "forest plot of odd failed" in caplog.text


def test_screening_health_is_reported(ctx) -> None:  # type: ignore[no-untyped-def]
    from screening.health import screening_health

    seed(ctx)
    d = build_digest(ctx, health=screening_health)
    health = d.summary["screening_health"]
    assert health is not None and health["records"] == 3  # the deleted record is not counted
    assert "estimated recall: -" in d.text  # no audit sample screened yet: said, not guessed
    assert "assumption: The audit sample is a random sample" in d.text
    assert "Assumptions:" in d.html


def test_digest_says_when_screening_may_stop_and_when_no_longer(ctx) -> None:  # type: ignore[no-untyped-def]
    from reports.digest import stopping_change
    from screening.health import screening_health

    seed(ctx)
    first = build_digest(ctx, health=screening_health)
    assert first.summary["screening_health"]["may_stop"] is False
    assert first.summary["screening_health_change"] is None  # nothing to compare with
    assert "may stop: no" in first.text
    with ctx.sessions() as s:  # every live record screened
        for pmid, label in ((90000001, "include"), (90000002, "include"),
                            (90000003, "exclude")):
            r = s.get(Record, pmid)
            r.decision = label
            s.add(r)
            s.add(Decision(pmid=pmid, decision=label))
        s.commit()
    second = build_digest(ctx, health=screening_health)
    assert "Screening may stop: every record has been screened." in second.text
    assert "<strong>Screening may stop: every record has been screened." in second.html
    assert "may stop: yes" in second.text
    with ctx.sessions() as s:  # a new flagged record arrives: no screening has seen it yet
        s.add(Record(pmid=90000020, title="New maintenance trial", flagged=True, score=0.95))
        s.commit()
    third = build_digest(ctx, health=screening_health)
    assert ("Screening can no longer stop: cannot yet claim recall ≥ 95%: no record has been "
            "screened since the last unscreened record arrived.") in third.text
    # a digest stored before the verdict existed is not compared
    assert stopping_change({"stopping_p_value": 0.9}, second.summary["screening_health"]) is None


def test_failing_screening_health_is_said_not_skipped(ctx, caplog) -> None:  # type: ignore[no-untyped-def]
    # Fault injection at the package seam: the digest must survive an optional part failing.
    def broken(session, **options):  # type: ignore[no-untyped-def]
        raise ZeroDivisionError("internal detail")

    d = build_digest(ctx, health=broken)
    assert d.summary["screening_health"] is None
    assert "screening health could not be computed (details in the log)" in d.text
    assert "internal detail" not in d.html
    assert "screening health failed" in caplog.text


# ----------------------------------------------------------------------------- delivery
def test_outbox_files_and_delivery_row(ctx) -> None:  # type: ignore[no-untyped-def]
    import email
    from email import policy

    seed(ctx)
    d = build_digest(ctx)
    [line] = deliver_digest(ctx, d)
    [html_path] = ctx.settings.outbox_dir.glob(f"digest-{d.id}-*.html")
    eml_path = html_path.with_suffix(".eml")
    assert str(html_path) in line
    assert html_path.read_text(encoding="utf-8") == d.html
    msg = email.message_from_bytes(eml_path.read_bytes(), policy=policy.default)
    assert msg["Subject"] == d.subject and msg.get_content_type() == "multipart/alternative"
    with ctx.sessions() as s:
        [row] = s.exec(select(Delivery)).all()
    assert (row.channel, row.status, row.attempts, row.path) == ("outbox", "sent", 1,
                                                                 str(html_path))
    assert row.message_id == msg["Message-ID"]


def test_unwritable_outbox_fails_clearly_and_loses_nothing(ctx) -> None:  # type: ignore[no-untyped-def]
    seed(ctx)
    d = build_digest(ctx)
    ctx.settings.outbox_dir.parent.mkdir(parents=True, exist_ok=True)
    ctx.settings.outbox_dir.write_text("a file where the outbox folder should be")
    with pytest.raises(DeliveryError) as err:
        deliver_digest(ctx, d)
    assert "cannot write to" in err.value.one_line() and "\n" not in err.value.one_line()
    with ctx.sessions() as s:
        [row] = s.exec(select(Delivery)).all()
        assert row.status == "failed" and row.error
    ctx.settings.outbox_dir.unlink()
    [line] = deliver_digest(ctx, d)  # the same digest, retried
    assert "written to" in line
    with ctx.sessions() as s:
        [row] = s.exec(select(Delivery)).all()
        assert (row.status, row.attempts, row.error) == ("sent", 2, None)


def test_smtp_without_recipients_is_a_config_error(ctx) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(**{**ctx.settings.model_dump(), "smtp_url": "smtp://127.0.0.1:9"})
    smtp_ctx = dataclasses.replace(ctx, settings=settings)
    d = build_digest(smtp_ctx)
    with pytest.raises(ConfigError, match="MMLR_DIGEST_TO"):
        deliver_digest(smtp_ctx, d)
    assert count(ctx, Delivery) == 0


# ----------------------------------------------------------------------------- rendering
def test_render_is_reproducible_from_the_stored_summary(ctx) -> None:  # type: ignore[no-untyped-def]
    seed(ctx)
    d = build_digest(ctx)
    with ctx.sessions() as s:
        stored = s.get(Digest, d.id)
    # The text part depends on the stored summary only (forest images live in the HTML).
    _, text = render_digest(stored, base_url=ctx.settings.base_url)
    assert text == d.text


@pytest.mark.browser
def test_digest_renders_in_chromium(ctx, chromium_path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    seed(ctx)
    build_digest(ctx)
    with ctx.sessions() as s:
        s.add(pooled("len_pfs_post_asct", "Lenalidomide, PFS, post-ASCT",
                     [("CALGB 100104", 0.48, 0.40), ("IFM 2005-02", 0.50, 0.40),
                      ("NEW-TRIAL", 1.40, 0.20)]))
        s.add(Record(pmid=90000010, title="Ixazomib maintenance", journal="Lancet", year=2019,
                     flagged=True, score=0.88))
        s.commit()
    d = build_digest(ctx)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path,
            args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        try:
            page = browser.new_page(viewport={"width": 720, "height": 900})
            page.set_content(d.html)
            assert page.inner_text("#digest-title") == f"mmlr digest #{d.id}"
            assert page.locator("table.analysis").count() == 1
            analysis = page.locator("table.analysis").first
            assert analysis.get_attribute("data-key") == "len_pfs_post_asct"
            assert analysis.locator(".crossing").inner_text() == "CI now crosses 1"
            assert "NEW-TRIAL (weight" in analysis.locator(".added").inner_text()
            assert page.locator("tr.record").count() == 1
            assert page.locator("tr.record a.title").inner_text() == "Ixazomib maintenance"
            width = page.evaluate("document.querySelector('table.digest').offsetWidth")
            assert 600 <= width <= 640
            page.screenshot(path=str(tmp_path / "digest.png"), full_page=True)
            # the first digest carried the malicious title: it must not run there either
            with ctx.sessions() as s:
                first = s.exec(select(Digest).order_by(Digest.id)).first()
            page.set_content(first.html)
            assert page.evaluate("() => window.__xss === undefined")
            assert page.locator("script").count() == 0
            assert "<script>alert(1)</script>" in page.inner_text("tr.record[data-pmid='90000001']")
        finally:
            browser.close()
    assert (tmp_path / "digest.png").stat().st_size > 10_000


# ----------------------------------------------------------------------------- CLI
def test_cli_digest_twice_writes_the_outbox_once(db_url: str, tmp_path: Path) -> None:
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "cli"), MMLR_DATABASE_URL=db_url)
    first = run_cli("digest", env=env)
    assert first.returncode == 0, first.stderr
    assert "digest #1 written to" in first.stdout
    second = run_cli("digest", "--send", env=env)
    assert second.returncode == 0, second.stderr
    assert "already in the outbox" in second.stdout
    assert len(list((tmp_path / "cli" / "outbox").glob("digest-1-*.html"))) == 1


def test_cli_digest_send_with_bad_smtp_url_is_one_line(db_url: str, tmp_path: Path) -> None:
    proc = run_cli("digest", "--send", env=cli_env(MMLR_DATA_DIR=str(tmp_path / "cli"),
                                                   MMLR_DATABASE_URL=db_url,
                                                   MMLR_SMTP_URL="smtp://user:hunter2@mail:notaport"))
    assert_one_line_error(proc, "MMLR_SMTP_URL", "port")
    assert "hunter2" not in proc.stderr


def test_cli_confirm_received_is_alone_and_says_what_it_found(db_url: str,
                                                              tmp_path: Path) -> None:
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "cli"), MMLR_DATABASE_URL=db_url)
    proc = run_cli("digest", "--confirm-received", "a@example.org", "--send", env=env)
    assert_one_line_error(proc, "--confirm-received", "builds and sends nothing", code=2)
    proc = run_cli("digest", "--confirm-received", "a@example.org", env=env)
    assert_one_line_error(proc, "no digest's delivery to a@example.org is unknown",
                          "no digest was sent to it")


def test_a_digest_being_built_elsewhere_is_not_built_twice(ctx) -> None:  # type: ignore[no-untyped-def]
    from sqlmodel import select

    from reports.digest import build_digest
    from store.errors import LockedError
    from store.locks import job_lock
    from store.models import Digest

    with job_lock(ctx.engine, "digest"), pytest.raises(LockedError, match="digest"):
        build_digest(ctx)
    with ctx.sessions() as s:
        assert s.exec(select(Digest)).all() == []
    assert build_digest(ctx).id is not None  # free again once the other holder is done


def test_without_a_health_provider_the_digest_says_so(ctx) -> None:  # type: ignore[no-untyped-def]
    seed(ctx)
    d = build_digest(ctx)  # reports import store only: the caller supplies the health
    assert d.summary["screening_health"] is None
    assert "screening health was not computed for this digest" in d.text


@pytest.mark.parametrize(("where", "expected"), [
    ("folder", "{out}: it is a folder, not a regular file"),
    ("file/digest.html", "{tmp}/file is not a folder"),
    ("file/sub/digest.html", "{tmp}/file is not a folder"),
    ("link.html", "{out}: it is a symbolic link, not a regular file"),
    ("/proc/mmlr-digest.html", "{out}: "),  # a folder nobody may create files in
])
def test_cli_digest_out_that_cannot_be_written_is_one_line(db_url: str, tmp_path: Path,
                                                           where: str, expected: str) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    (tmp_path / "elsewhere.html").write_text("kept")
    (tmp_path / "link.html").symlink_to(tmp_path / "elsewhere.html")
    out = tmp_path / where  # an absolute ``where`` stays itself
    proc = run_cli("digest", "--out", str(out),
                   env=cli_env(MMLR_DATA_DIR=str(tmp_path / "cli"), MMLR_DATABASE_URL=db_url))
    assert_one_line_error(proc, f"cannot write the digest to {out}",
                          expected.format(out=out, tmp=tmp_path), "--out takes")
    assert (tmp_path / "folder").is_dir() and (tmp_path / "file").read_text() == "x"
    assert (tmp_path / "link.html").is_symlink()
    assert (tmp_path / "elsewhere.html").read_text() == "kept"


def test_one_trial_has_no_prediction_interval_or_i2(ctx) -> None:  # type: ignore[no-untyped-def]
    """A single trial's fit returns a "prediction interval" equal to its CI and I² = 0%: the
    digest must not show them as if one trial said anything about heterogeneity (the summary
    of findings shows "—" for both)."""
    one = pooled("ixa_os_post_asct", "Ixazomib, OS, post-ASCT",
                 [("TOURMALINE-MM3", 1.025, 0.1336)])
    one.pi_low, one.pi_high, one.q_p = one.ci_low, one.ci_high, 1.0  # as the fit stores k=1
    two = pooled("len_pfs_post_asct", "Lenalidomide, PFS, post-ASCT",
                 [("CALGB 100104", 0.48, 0.12), ("IFM 2005-02", 0.50, 0.10)], i2=12.0)
    two.pi_low, two.pi_high = two.ci_low - 0.1, two.ci_high + 0.1
    with ctx.sessions() as s:
        s.add_all([one, two])
        s.commit()
    digest = build_digest(ctx)
    by_key = {a["key"]: a for a in digest.summary["analyses"]}
    single = by_key["ixa_os_post_asct"]["new"]
    assert single["pi_text"] is None and single["i2_text"] == "—"  # a missing number
    assert by_key["len_pfs_post_asct"]["new"]["i2_text"] == "12%"
    assert by_key["len_pfs_post_asct"]["new"]["pi_text"] is not None
    # the HTML has one prediction-interval row: the two-trial analysis', saying what two
    # trials' interval is worth
    assert digest.html.count("95% prediction interval") == 1
    assert single["pi_note"] is None
    assert by_key["len_pfs_post_asct"]["new"]["pi_note"] == TWO_TRIALS_PI_NOTE
    assert digest.html.count(f'<span class="pi-note" style="color:#555;">{TWO_TRIALS_PI_NOTE}'
                             "</span>") == 1
    # I² of one trial is said not to apply, in words, not left as a dash beside a hyphen
    assert "I²: - -> not applicable (one trial); k: - -> 1" in digest.text
    assert "I²: - -> 12%; k: - -> 2" in digest.text
    assert digest.html.count("not applicable (one trial)") == 1


def test_the_direction_of_the_hr_is_said_before_the_numbers(ctx) -> None:  # type: ignore[no-untyped-def]
    """A reader of either part meets the pooled HRs first: which way they point must be said
    there, not only in the footer."""
    seed(ctx)
    digest = build_digest(ctx)
    direction = "Hazard ratios of maintenance vs control: HR < 1 favours maintenance."
    text = digest.text
    assert text.index("POOLED ANALYSES THAT CHANGED\n" + direction + "\n") < text.index(
        "HR (95% CI):")
    html = digest.html
    assert html.index(direction.replace("<", "&lt;")) < html.index('class="hr-new"')


@pytest.mark.parametrize("provisional", [True, False])
def test_provisional_certainty_is_explained(ctx, provisional: bool) -> None:  # type: ignore[no-untyped-def]
    """"(provisional)" beside a suggested certainty is explained once, in both parts, and
    only when a certainty is provisional."""
    from reports.digest import PROVISIONAL_NOTE

    row = pooled("ixa_os_post_asct", "Ixazomib, OS, post-ASCT",
                 [("TOURMALINE-MM3", 1.025, 0.1336)])
    row.result = {"certainty": {"level": "moderate", "provisional": provisional}}
    with ctx.sessions() as s:
        s.add(row)
        s.commit()
    digest = build_digest(ctx)
    if not provisional:
        assert "-> moderate\n" in digest.text and PROVISIONAL_NOTE not in digest.text
        return
    assert "-> moderate (provisional)" in digest.text
    assert digest.text.count(PROVISIONAL_NOTE) == 1 and digest.html.count(PROVISIONAL_NOTE) == 1
    # a paragraph of its own, not indented as if it belonged to the last analysis
    assert f"\n\n(provisional) {PROVISIONAL_NOTE}\n" in digest.text


def test_a_renamed_trial_is_said_renamed_not_added_and_removed(ctx) -> None:  # type: ignore[no-untyped-def]
    """Renaming a pooled trial (Edit trial) changes its label in the next snapshot: matched by
    its trial id it is the same trial, not a new one joining and another leaving; its new
    estimate and RoB 2 change are still named."""
    def snapshot(label: str, hr: float, estimate_id: int, rob: str | None) -> PooledResult:
        row = pooled("dara_pfs", "Daratumumab, PFS",
                     [("CASSIOPEIA", 0.45, 0.12), (label, hr, 0.15)])
        row.inputs = [{**i, "trial_id": n, "subgroup": "post_asct", "estimate_id": 10 * n + (
            estimate_id if n == 2 else 0), "risk_of_bias": rob if n == 2 else "low"}
            for n, i in enumerate(row.inputs or [], start=1)]
        return row

    with ctx.sessions() as s:
        s.add(snapshot("Tab\tName", 0.80, 1, None))
        s.commit()
    build_digest(ctx)
    with ctx.sessions() as s:
        s.add(snapshot("Pipe | Trial", 0.75, 2, "high"))
        s.commit()
    digest = build_digest(ctx)
    (entry,) = [a for a in digest.summary["analyses"] if a["key"] == "dara_pfs"]
    assert entry["status"] == "updated"
    assert entry["renamed_trials"] == [{"old": "Tab\tName", "new": "Pipe | Trial"}]
    assert entry["added_trials"] == [] and entry["removed_trials"] == []
    assert [t["label"] for t in entry["changed_trials"]] == ["Pipe | Trial"]
    assert entry["bias_changes"] == ["Pipe | Trial: high (was: not assessed)"]
    assert "Renamed (the same trial): Tab\tName → Pipe | Trial" in digest.text
    assert "Newly added" not in digest.text and "No longer pooled" not in digest.text
    assert "Renamed (the same trial): Tab\tName → Pipe | Trial" in digest.html


def test_one_report_sought_is_one_report_and_grey_text_keeps_aa_contrast(ctx) -> None:  # type: ignore[no-untyped-def]
    from store.fulltext import assess
    from store.models import User

    seed(ctx)
    with ctx.sessions() as s:
        user = User(email="ft@example.org", role="curator")
        s.add(user)
        s.get(Record, 90000001).decision = "include"  # type: ignore[union-attr]
        s.commit()
        assess(s, screeners_per_record=1, user=user, pmid=90000001, verdict="eligible")
        s.commit()
    digest = build_digest(ctx)
    assert "Now: 1 report sought, 0 not settled" in digest.text
    assert "Now: 1 report sought, 0 not settled" in digest.html
    assert "color:#777" not in digest.html  # 4.48:1 on white, below WCAG AA's 4.5:1


def test_the_previous_versions_reports_are_not_news(ctx) -> None:  # type: ignore[no-untyped-def]
    """The seed evidence's reports stored as records score at the top (the classifier learns
    from them) but are already included: not among the likely maintenance RCTs, not in the
    health's counts; a curator's report of a new trial is."""
    from previous_reports import NEW_REPORT, ORDINARY, store_previous_reports

    from screening.health import screening_health

    with ctx.sessions() as s:
        pool = store_previous_reports(s)
    d = build_digest(ctx, health=screening_health)
    assert [r["pmid"] for r in d.summary["new_flagged"]] == [NEW_REPORT, *ORDINARY[:5]]
    assert d.summary["new_flagged_total"] == 6
    flagged_section = d.text.split("SCREENING DECISIONS")[0]
    assert "A new maintenance RCT" in flagged_section
    assert not any(f"Seed report {p}" in flagged_section for p in pool.previous)
    assert d.summary["screening_health"]["records"] == len(ORDINARY) + 1


@pytest.mark.browser
def test_an_unclosed_override_in_a_title_reverses_nothing_after_it(ctx, chromium_path) -> None:  # type: ignore[no-untyped-def]
    # PubMed text is stored as written. A title ending inside a RIGHT-TO-LEFT OVERRIDE showed
    # the citation after it on the same line ("— Lancet. 2019;…") mirrored; each value the
    # digest prints has its levels closed (store.text.closed_bidi).
    from playwright.sync_api import sync_playwright

    seed(ctx)
    with ctx.sessions() as s:
        s.add(Record(pmid=90000011, title="Maintenance \u202eABC", journal="Lancet", year=2019,
                     flagged=True, score=0.9))
        s.add(Decision(pmid=90000011, decision="include"))
        s.commit()
    d = build_digest(ctx)
    assert "Maintenance \u202eABC\u202c</a>" in d.html
    assert "Maintenance \u202eABC\u202c" in d.text
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path,
                                    args=["--no-sandbox", "--headless", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.set_content(d.html)
            item = page.locator("li.include", has_text="ABC")
            assert item.count() == 1
            # x of the first and the last letter of "Lancet": left to right, L before t
            first, last = item.evaluate("""li => {
                const node = [...li.childNodes].find(n => n.nodeType === 3
                                                         && n.textContent.includes('Lancet'));
                const at = node.textContent.indexOf('Lancet'), range = document.createRange();
                const x = i => { range.setStart(node, at + i); range.setEnd(node, at + i + 1);
                                 return range.getBoundingClientRect().x; };
                return [x(0), x(5)];
            }""")
            assert first < last
        finally:
            browser.close()


def test_an_inclusion_a_digest_announced_is_withdrawn_by_name(ctx) -> None:  # type: ignore[no-untyped-def]
    """A subscriber read "included: <title>"; when a curator reverses it the next digest names
    the record and the digest that announced it, once; a record included and excluded within
    one period was never announced and is only counted."""
    seed(ctx)
    first = build_digest(ctx)
    assert [r["pmid"] for r in first.summary["decisions"]["includes"]] == [90000001]
    with ctx.sessions() as s:
        s.add(Decision(pmid=90000001, decision="exclude"))
        s.add(Decision(pmid=90000002, decision="include"))  # never announced: only counted
        s.add(Decision(pmid=90000002, decision="exclude"))
        s.commit()
    second = build_digest(ctx)
    withdrawn = second.summary["decisions"]["no_longer_included"]
    assert [(r["pmid"], r["announced_in"]) for r in withdrawn] == [(90000001, first.id)]
    assert (f"- no longer included: {' '.join(XSS_TITLE.split())} "
            f"(https://pubmed.ncbi.nlm.nih.gov/90000001/), announced as included in digest "
            f"#{first.id}") in second.text
    assert "No longer included" in second.html and "<script>alert" not in second.html
    assert "1 inclusion withdrawn" in second.subject
    with ctx.sessions() as s:  # excluded again: already withdrawn, not said twice
        s.add(Decision(pmid=90000001, decision="exclude"))
        s.commit()
    third = build_digest(ctx)
    assert third.summary["decisions"]["no_longer_included"] == []
    assert "withdrawn" not in third.subject and "no longer included" not in third.text
    with ctx.sessions() as s:  # included again, announced, then reversed again
        s.add(Decision(pmid=90000001, decision="include"))
        s.commit()
    fourth = build_digest(ctx)
    with ctx.sessions() as s:
        s.add(Decision(pmid=90000001, decision="exclude"))
        s.commit()
    fifth = build_digest(ctx)
    assert [(r["pmid"], r["announced_in"]) for r in
            fifth.summary["decisions"]["no_longer_included"]] == [(90000001, fourth.id)]


# ----------------------------------------------------------------------------- certainty
def _with_certainty(row: PooledResult, level: str, provisional: bool = False) -> PooledResult:
    row.result = {**row.result, "certainty": {"level": level, "provisional": provisional,
                                              "downgrades": 0, "domains": [], "text": ""}}
    return row


def test_a_certainty_change_without_a_new_estimate_is_said_once(ctx) -> None:  # type: ignore[no-untyped-def]
    """The same inputs re-pooled under new rules (a printed CI limit of 1.00 now includes HR
    1): the estimate is unchanged, the suggested certainty moderate → low. The digest said
    "no changes", or nothing at all."""
    from test_digest_small_study import KEY, LABEL, snapshot, two_digests

    _, second = two_digests(ctx, _with_certainty(snapshot(3, None), "moderate"),
                            _with_certainty(snapshot(3, None), "low", provisional=True))
    entry = next(a for a in second.summary["analyses"] if a["key"] == KEY)
    assert entry["status"] == "unchanged"
    assert entry["certainty_change"] == "moderate → low (provisional)"
    assert ("Suggested certainty (GRADE starting point) changed while the pooled estimate did "
            f"not:\n* {LABEL}: certainty moderate → low (provisional).") in second.text
    assert 'class="certainty-only"' in second.html
    assert "certainty moderate → low (provisional)" in second.html
    assert "1 suggested certainty changed" in second.subject
    again = build_digest(ctx)
    assert again.id == second.id and is_unchanged(again)


def test_only_a_change_of_level_is_a_certainty_change(ctx) -> None:  # type: ignore[no-untyped-def]
    from test_digest_small_study import KEY, snapshot, two_digests

    _, second = two_digests(ctx, _with_certainty(snapshot(3, None), "moderate"),
                            _with_certainty(snapshot(3, None, shift=0.2), "moderate", True))
    entry = next(a for a in second.summary["analyses"] if a["key"] == KEY)
    assert entry["status"] == "updated" and entry["certainty_change"] is None
    # the changed analysis' own row says old and new as before
    assert "Suggested certainty (GRADE starting point): moderate -> moderate (provisional)" \
        in second.text
    # no certainty before (a snapshot from before it existed): no change claimed
    from reports.digest import _certainty_change
    assert _certainty_change({"certainty_text": None}, {"certainty_text": "low"}) is None
    assert _certainty_change(None, {"certainty_text": "low"}) is None
