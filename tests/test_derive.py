"""Log HR and SE from a CI, a P value and events, O−E and V, and medians."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest
from scipy import stats

from reports.derive import (
    derive_from_inputs,
    from_ci,
    from_hr_p_value,
    from_medians,
    from_o_minus_e,
    from_p_value,
    printed_decimals,
    typed_hr_mismatch,
)
from store.errors import ValidationError


def test_from_ci_reproduces_the_printed_ci() -> None:
    d = from_ci("0.57", "0.46", "0.71")  # CALGB 100104 TTP (HOLSTEIN2017)
    assert d.method == "reported_ci" and not d.approximate and d.warnings == []
    assert d.log_hr == pytest.approx(math.log(0.57))
    assert d.se == pytest.approx((math.log(0.71) - math.log(0.46)) / (2 * 1.959964))
    assert round(d.ci_low, 2) == 0.46 or round(d.ci_high, 2) == 0.71


def test_inversion_of_control_vs_maintenance() -> None:
    d = from_ci("2.43", "1.10", "5.35", orientation="control_vs_maint")  # GBRAM0001 interim
    assert d.hr == pytest.approx(1 / 2.43)
    assert d.ci_low == pytest.approx(1 / 5.35, rel=0.02)
    assert d.ci_high == pytest.approx(1 / 1.10, rel=0.02)
    assert d.orientation_entered == "control_vs_maint"


def test_asymmetric_ci_warns_but_rounding_does_not() -> None:
    assert from_ci("0.659", "0.542", "0.801").warnings == []
    assert from_ci(0.47, 0.33, 0.65).warnings == []
    warned = from_ci("0.50", "0.45", "0.90")
    assert len(warned.warnings) == 1 and "not symmetric" in warned.warnings[0]


@pytest.mark.parametrize(("hr", "lo", "hi"), [
    ("1.00", "0.50", "1.10"),  # off by 0.30 on the log scale
    ("0.80", "0.40", "1.00"),
    ("0.47", "0.20", "0.57"),
])
def test_trailing_zeros_are_printed_digits_and_do_not_widen_the_rounding(
        hr: str, lo: str, hi: str) -> None:
    """A trailing zero is a printed digit: "1.00" is rounded to ±0.005, not to ±0.5 (which
    would have let any asymmetry through)."""
    assert [printed_decimals(v) for v in ("0.50", "1.00", "1", "0.659")] == [2, 2, 0, 3]
    (warning,) = from_ci(hr, lo, hi).warnings
    bound = float(warning.split("rounding explains at most ")[1].split(")")[0])
    assert bound < 0.05


@pytest.mark.parametrize(("args", "match"), [
    (("0", "0.5", "0.9"), "HR must be a positive"),
    (("-0.5", "0.5", "0.9"), "HR must be a positive"),
    (("0.5", "0.6", "0.9"), "outside its CI"),
    (("0.5", "0.9", "0.4"), "must be below"),
    (("abc", "0.4", "0.9"), "HR must be a number"),
    (("nan", "0.4", "0.9"), "HR must be a positive"),
])
def test_from_ci_rejects(args, match) -> None:
    with pytest.raises(ValidationError, match=match):
        from_ci(*args)


def test_from_ci_rejects_unknown_orientation() -> None:
    with pytest.raises(ValidationError, match="orientation"):
        from_ci("0.5", "0.4", "0.6", orientation="unclear")


def test_p_value_events_one_to_one() -> None:
    d = from_p_value("0.0068", 100, favours="maintenance")
    v = 100 / 4
    z = stats.norm.isf(0.0068 / 2)
    assert d.log_hr == pytest.approx(-z * math.sqrt(v) / v)
    assert d.se == pytest.approx(1 / math.sqrt(v))
    assert d.method == "p_value_events" and d.approximate and "1:1" in d.notes
    # A P value reproduces itself: 2·(1 − Φ(|ln HR|/SE)) = P.
    assert 2 * stats.norm.sf(abs(d.log_hr) / d.se) == pytest.approx(0.0068)
    assert from_p_value(0.2, 100, favours="control").log_hr > 0


@pytest.mark.parametrize("p", ["1", "1.00", 1.0])
def test_a_p_value_of_1_gives_a_log_hr_of_0_with_the_se_of_the_events(p: object) -> None:
    """P = 1 is z = 0, so O−E = 0 and ln HR = 0; the SE, 1/√V with V = events·r(1−r), never
    used z (Tierney 2007): it was refused as not strictly between 0 and 1."""
    for favours in ("maintenance", "control"):
        d = from_p_value(p, 100, favours=favours)  # type: ignore[arg-type]
        assert d.log_hr == 0.0 and math.copysign(1, d.log_hr) == 1  # not -0.0
        assert d.se == pytest.approx(1 / math.sqrt(100 / 4)) and d.hr == 1.0
    arms = from_p_value(p, 120, favours="maintenance", n_maint=425, n_control=281)  # type: ignore[arg-type]
    assert arms.se == pytest.approx(1 / math.sqrt(120 * (425 / 706) * (281 / 706)))


def test_p_value_events_with_arm_sizes() -> None:
    d = from_p_value(0.01, 120, favours="maintenance", n_maint=425, n_control=281)
    r = 425 / 706
    assert d.se == pytest.approx(1 / math.sqrt(120 * r * (1 - r)))


def test_a_p_value_the_events_cannot_give_is_refused() -> None:
    # 3 events, all in one arm of two equal ones: |z| at most √3, P at least 0.083 (R's
    # survdiff says 0.08); P = 1e-10 made HR 1750 (182–16824)
    with pytest.raises(ValidationError, match=r"two-sided P value 1e-10 is smaller than 3 "
                       r"events can give: even with every event in the maintenance arm the "
                       r"log-rank test gives P = 0.083"):
        from_p_value("1e-10", 3, favours="control")
    assert from_p_value("0.084", 3, favours="control").hr > 1  # what 3 events can give
    # unequal arms: the bound follows the allocation (every event in control, r = 0.8)
    with pytest.raises(ValidationError, match="every event in the control arm"):
        from_p_value("1e-6", 4, favours="maintenance", n_maint=400, n_control=100)
    assert from_p_value("0.001", 40, favours="maintenance", n_maint=400,
                        n_control=100).hr < 1


@pytest.mark.parametrize(("p", "kwargs", "match"), [
    ("<0.001", {}, "bound"),
    ("1.2", {}, "more than 0 and at most 1, got 1.2"),
    ("0", {}, "more than 0 and at most 1, got 0"),
    ("1e-400", {}, "more than 0 and at most 1, got 0"),
    ("0.01", {"n_maint": 100}, "both arm sizes"),
])
def test_p_value_rejects(p, kwargs, match) -> None:
    with pytest.raises(ValidationError, match=match):
        from_p_value(p, 100, favours="maintenance", **kwargs)
    with pytest.raises(ValidationError, match="favours"):
        from_p_value("0.01", 100, favours="neither")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="events"):
        from_p_value("0.01", 0, favours="maintenance")


def test_o_minus_e() -> None:
    d = from_o_minus_e(-12.5, 40.0)
    assert d.log_hr == pytest.approx(-12.5 / 40) and d.se == pytest.approx(1 / math.sqrt(40))
    assert d.method == "o_minus_e" and not d.approximate
    with pytest.raises(ValidationError, match="variance"):
        from_o_minus_e(-1, 0)
    with pytest.raises(ValidationError, match="O−E"):
        from_o_minus_e("x", 3)  # type: ignore[arg-type]
    # integers too large for a float (a JSON body's) are refused as numbers, not OverflowError
    with pytest.raises(ValidationError, match="O−E must be finite"):
        from_o_minus_e(10**400, 3)
    with pytest.raises(ValidationError, match="log-rank variance V must be a positive"):
        from_o_minus_e(-1, 10**400)


def test_medians_exponential() -> None:
    d = from_medians(41.9, 21.6, events_maint=60, events_control=90)
    assert d.hr == pytest.approx(21.6 / 41.9)
    assert d.se == pytest.approx(math.sqrt(1 / 60 + 1 / 90))
    assert d.method == "medians" and d.approximate and "exponential" in d.notes
    total = from_medians(41.9, 21.6, events=150)
    assert total.se == pytest.approx(math.sqrt(4 / 150)) and "assumed" in total.notes
    with pytest.raises(ValidationError, match="events are needed"):
        from_medians(41.9, 21.6)
    with pytest.raises(ValidationError, match="both arms"):
        from_medians(41.9, 21.6, events_maint=60)
    with pytest.raises(ValidationError, match="maintenance median"):
        from_medians(0, 21.6, events=10)


# ----------------------------------------------------------------------------- HR and its P
def test_hr_with_its_p_value_keeps_the_hr_and_takes_the_se_from_p() -> None:
    """Tierney 2007: an HR printed with its P value and no CI keeps the HR; SE = |ln HR|/z."""
    z = NormalDist().inv_cdf(1 - 0.01 / 2)
    d = from_hr_p_value("0.80", "0.01")
    assert d.method == "hr_p_value" and d.approximate
    assert d.log_hr == pytest.approx(math.log(0.80), abs=1e-15)
    assert d.se == pytest.approx(abs(math.log(0.80)) / z, rel=1e-12)
    # the stored 95% CI is rebuilt from it, 1.96·SE either side
    assert math.log(d.ci_high) - d.log_hr == pytest.approx(1.959964 * d.se, rel=1e-6)
    # printed as control vs maintenance: inverted, the SE unchanged
    inverted = from_hr_p_value("1.25", "0.01", orientation="control_vs_maint")
    assert inverted.log_hr == pytest.approx(-math.log(1.25), abs=1e-15)
    assert inverted.se == pytest.approx(math.log(1.25) / z, rel=1e-12)
    # an HR above 1 gives the same SE as its inverse
    assert from_hr_p_value("1.25", "0.01").se == pytest.approx(inverted.se, rel=1e-12)
    # the same inputs, stored, re-derive the same number
    again = derive_from_inputs("hr_p_value", {"orientation": "control_vs_maint", "hr": 1.25,
                                              "p_value": "0.01"})
    assert (again.log_hr, again.se) == (inverted.log_hr, inverted.se)


@pytest.mark.parametrize(("hr", "p", "match"), [
    ("1", "0.03", "an HR of 1 with its P value gives no standard error"),
    ("1.00", "0.5", "an HR of 1 with its P value gives no standard error"),
    ("0.7", "1", "a P value of 1 gives no standard error"),
    ("0.7", "1.00", "a P value of 1 gives no standard error"),
    ("0.7", "<0.01", "is a bound"),
    ("0.7", "0", "more than 0 and at most 1"),
])
def test_hr_with_its_p_value_refuses_what_gives_no_se(hr: str, p: str, match: str) -> None:
    with pytest.raises(ValidationError, match=match) as caught:
        from_hr_p_value(hr, p)
    if "no standard error" in match:
        assert "P value and the number of events" in str(caught.value.hint)


def test_a_typed_hr_far_from_the_one_derived_from_p_and_events_warns() -> None:
    """The P-value-and-events method uses a typed HR only for its direction: P 0.01 with 210
    events derives 0.70, not the 0.80 printed; the warning names both and the other method."""
    derived = from_p_value("0.01", 210, favours="maintenance")
    assert derived.hr == pytest.approx(0.701, abs=5e-4)
    warning = typed_hr_mismatch("0.80", derived)
    assert warning is not None
    assert "0.701" in warning and "0.80" in warning and "(SE from P)" in warning
    # P = 1 derives HR 1 whatever the HR typed: 0.7 is far from it
    assert typed_hr_mismatch("0.7", from_p_value("1", 210, favours="maintenance")) is not None
    # within the typed HR's rounding widened by 10%, [(h − 0.005)/1.1, (h + 0.005)·1.1]:
    assert typed_hr_mismatch("0.70", derived) is None
    assert typed_hr_mismatch("0.77", derived) is None  # from 0.765/1.1 = 0.695
    assert typed_hr_mismatch("0.78", derived) is not None  # from 0.775/1.1 = 0.705
    assert typed_hr_mismatch("0.64", derived) is None  # up to 0.645·1.1 = 0.710
    assert typed_hr_mismatch("0.63", derived) is not None  # up to 0.635·1.1 = 0.699
    # the typed HR read in the orientation entered: 1/0.701 = 1.43
    assert typed_hr_mismatch("1.43", derived, "control_vs_maint") is None
    assert typed_hr_mismatch("1.80", derived, "control_vs_maint") is not None
    # an HR of 1 printed with a small P: no method keeps it, so none is suggested
    one = typed_hr_mismatch("1.00", derived)
    assert one is not None and "SE from P" not in one and "check the P value" in one
