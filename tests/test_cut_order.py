"""Which data cut of a trial is the latest (selection rule 5) when some estimates have only
their report's year, and when a whole-trial estimate gives way to its strata (rule 6): the
rules on plain candidates, no database."""

from __future__ import annotations

from datetime import date

import pytest

from reports.analyses import Analysis, Candidate, select_inputs

POST = Analysis("lenalidomide", "post_asct", "PFS")
ALL = Analysis("lenalidomide", "all", "PFS")


def cand(estimate_id: int, cut: date | None = None, year: int | None = None, *,
         setting: str = "post_asct", endpoint: str = "PFS") -> Candidate:
    return Candidate(estimate_id=estimate_id, trial_id=1, trial_name="CALGB-like",
                     drug="lenalidomide", is_strategy=False, endpoint=endpoint, setting=setting,
                     comparison="maintenance vs control", log_hr=-0.5, se=0.1, verified=True,
                     data_cut=cut, report_year=year)


def chosen_and_reasons(analysis: Analysis, *cands: Candidate) -> tuple[list[int], dict[int, str]]:
    selection = select_inputs(analysis, cands)
    return ([c.estimate_id for c in selection.chosen],
            {c.estimate_id: reason for c, reason in selection.dropped})


def test_a_later_report_with_a_dated_cut_replaces_an_undated_one_of_the_year_before() -> None:
    # The 2017 report's cut came before it was printed; the 2018 report's cut is mid-2017.
    # Read as 31 December 2017, the older report would keep the newer one out of the pool.
    chosen, reasons = chosen_and_reasons(POST, cand(1, year=2017), cand(2, date(2017, 6, 30), 2018))
    assert chosen == [2]
    assert reasons[1] == ("superseded by estimate 2 (latest verified data cut, judged by the "
                          "report years: estimate 1 has no data cut date, only its report's year "
                          "2017; enter its data cut to be sure)")


def test_an_undated_cut_of_a_later_report_replaces_a_dated_one_printed_earlier() -> None:
    chosen, reasons = chosen_and_reasons(POST, cand(1, date(2016, 6, 1), 2016), cand(2, year=2017))
    assert chosen == [2]
    assert "judged by the report years: estimate 2 has no data cut date" in reasons[1]


@pytest.mark.parametrize("first_dated", [True, False])
def test_cuts_no_year_can_order_go_to_the_estimate_entered_last(first_dated: bool) -> None:
    dated = date(2017, 6, 30)  # no report: printed in 2017 or later, unknown
    a, b = ((cand(1, dated), cand(2, year=2017)) if first_dated else
            (cand(1, year=2017), cand(2, dated)))
    chosen, reasons = chosen_and_reasons(POST, a, b)
    assert chosen == [2]
    assert "(latest verified data cut, as far as can be told: estimate " in reasons[1]
    assert "has no data cut date, only its report's year 2017; enter its data cut" in reasons[1]


@pytest.mark.parametrize(("cands", "expected"), [
    # a cut after the undated report's year is later for certain
    ((cand(1, year=2017), cand(2, date(2018, 1, 2))), [2]),
    # no date at all is oldest
    ((cand(1, date(2001, 1, 1)), cand(2)), [1]),
    # both dated: the dates decide, whatever the report years
    ((cand(1, date(2016, 1, 1), 2016), cand(2, date(2015, 6, 1), 2018)), [1]),
    # both undated: the report years
    ((cand(1, year=2019), cand(2, year=2012)), [1]),
])
def test_certain_orders_are_plain(cands: tuple[Candidate, ...], expected: list[int]) -> None:
    chosen, reasons = chosen_and_reasons(POST, *cands)
    assert chosen == expected
    (reason,) = reasons.values()
    assert reason == f"superseded by estimate {expected[0]} (latest verified data cut)"


def test_report_years_that_contradict_the_dates_fall_back_to_the_years_as_bounds() -> None:
    # 1 is later than 3 (later report), 3 than 2 (later report), 2 than 1 (later date):
    # no estimate is later than both others, so the years count as 31 December.
    chosen, reasons = chosen_and_reasons(POST, cand(1, date(2015, 6, 1), 2018),
                                         cand(2, date(2016, 1, 1), 2016), cand(3, year=2017))
    assert chosen == [3]
    assert "each report's year read as 31 December: estimate 3 has no data cut" in reasons[1]
    assert "judged by the report years" in reasons[2]


def test_same_cut_keeps_pfs_before_efs_then_the_estimate_entered_last() -> None:
    """Nothing orders two cuts of the same date: the reason says what decided instead, not
    "latest data cut" (which of the two is the later was never known)."""
    cut = date(2014, 3, 1)
    chosen, reasons = chosen_and_reasons(POST, cand(2, cut, endpoint="EFS"), cand(1, cut))
    assert chosen == [1]
    assert reasons[2] == ("superseded by estimate 1 (the same data cut as estimate 2, "
                          "2014-03-01: PFS preferred to EFS)")
    chosen, reasons = chosen_and_reasons(POST, cand(1, cut), cand(2, cut))
    assert chosen == [2]
    assert reasons[1] == ("superseded by estimate 2 (the same data cut as estimate 1, "
                          "2014-03-01: the estimate entered later)")
    # no dates, the same report year (or none): the same words of what decided
    assert chosen_and_reasons(POST, cand(1, year=2017), cand(2, year=2017))[1][1] == (
        "superseded by estimate 2 (no data cut date on either it or estimate 1, and the same "
        "report year 2017: the estimate entered later)")
    assert chosen_and_reasons(POST, cand(1), cand(2))[1][1] == (
        "superseded by estimate 2 (no data cut date nor report year on either it or estimate 1: "
        "the estimate entered later)")


def test_both_strata_cut_later_than_the_whole_trial_replace_it_in_all_settings() -> None:
    whole = cand(1, date(2010, 1, 1), setting="mixed")
    post, non = (cand(2, date(2015, 1, 1)),
                 cand(3, date(2015, 1, 1), setting="non_transplant"))
    chosen, reasons = chosen_and_reasons(ALL, whole, post, non)
    assert sorted(chosen) == [2, 3]
    assert reasons == {1: "the strata's later cuts (estimates 2 and 3) used instead of the "
                          "whole-trial estimate"}
    # the by-setting analysis pools the same cut as the all-settings one
    assert chosen_and_reasons(POST, whole, post, non)[0] == [2]


def test_one_later_stratum_cannot_replace_the_whole_trial() -> None:
    whole = cand(1, date(2010, 1, 1), setting="mixed")
    post, non = (cand(2, date(2015, 1, 1)),
                 cand(3, date(2009, 1, 1), setting="non_transplant"))
    chosen, reasons = chosen_and_reasons(ALL, whole, post, non)
    assert chosen == [1]
    assert reasons == {2: "whole-trial estimate used instead of the stratum (a later cut of one "
                          "stratum alone cannot replace the whole trial)",
                       3: "whole-trial estimate used instead of the stratum"}


def test_a_whole_trial_estimate_later_than_its_strata_stands_for_the_trial() -> None:
    chosen, reasons = chosen_and_reasons(
        ALL, cand(1, date(2016, 1, 1), setting="mixed"), cand(2, date(2015, 1, 1)),
        cand(3, date(2015, 1, 1), setting="non_transplant"),
        cand(4, date(2012, 1, 1), setting="mixed"))
    assert chosen == [1]
    assert reasons[2] == reasons[3] == "whole-trial estimate used instead of the stratum"
    assert reasons[4] == "superseded by estimate 1 (latest verified data cut)"
