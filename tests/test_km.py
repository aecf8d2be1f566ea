"""A hazard ratio from published Kaplan–Meier curves (Guyot 2012, ``reports.km``).

The reconstruction is checked the way its authors checked theirs, on trials whose truth we
know: individual data are simulated for two arms (exponential times, staggered entry and
drop-out), their KM curves and at-risk tables computed exactly, 40 points of each curve given
to the reconstruction, and the reconstructed curves and HR compared with the true ones. The
Cox fit itself is checked against R's ``survival::coxph`` on the reconstructed data.
"""

from __future__ import annotations

import csv
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from reports import derive, km
from reports.km import KmInputError
from store.errors import ValidationError

N_ARM = 150
CONTROL_MEDIAN = 24.0  # months
TRUE_HR = 0.6
AT_RISK_EVERY = 6.0
POINTS = 40


# ----------------------------------------------------------------------------- a known truth
def _simulate(rng: np.random.Generator, hazard: float) -> tuple[np.ndarray, np.ndarray]:
    """One arm: exponential event times; entry uniform over 36 months with the analysis at
    60 (administrative censoring between 24 and 60) and drop-out at 1% a month."""
    event_time = rng.exponential(1 / hazard, N_ARM)
    censor = np.minimum(60.0 - rng.uniform(0, 36, N_ARM), rng.exponential(100.0, N_ARM))
    return np.round(np.minimum(event_time, censor), 6), event_time <= censor


def _true_km(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The KM estimate by its definition, one event time at a time (independent of km.py)."""
    times = np.unique(time[event])
    survival, s = [], 1.0
    for t in times:
        s *= 1 - np.sum((time == t) & event) / np.sum(time >= t)
        survival.append(s)
    return times, np.array(survival)


def _step(times: np.ndarray, survival: np.ndarray, at: np.ndarray) -> np.ndarray:
    return np.concatenate(([1.0], survival))[np.searchsorted(times, at, side="right")]


def _digitised(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``POINTS`` points of the true curve, as a curator clicks them: the foot of evenly chosen
    drops, and the end of the curve's last flat part."""
    times, survival = _true_km(time, event)
    pick = np.unique(np.linspace(0, times.size - 1, POINTS - 1).round().astype(int))
    return (np.append(times[pick], time.max()), np.append(survival[pick], survival[-1]))


def _table(time: np.ndarray, end: float) -> tuple[np.ndarray, np.ndarray]:
    grid = np.arange(0.0, end + 1e-9, AT_RISK_EVERY)
    return grid, np.array([np.sum(time >= g) for g in grid])


def _trial(seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    control_hazard = math.log(2) / CONTROL_MEDIAN
    maintenance = _simulate(rng, control_hazard * TRUE_HR)
    control = _simulate(rng, control_hazard)
    return {"maintenance": maintenance, "control": control}


def _arm(arm: str, time: np.ndarray, event: np.ndarray, *, with_events: bool = True,
         noise: np.random.Generator | None = None) -> km.ArmInput:
    pt, ps = _digitised(time, event)
    if noise is not None:  # a digitiser's hand: survival ±0.008, time ±0.1 month, re-sorted
        ps = np.clip(ps + noise.uniform(-0.008, 0.008, ps.size), 0, 1)
        pt = np.sort(np.maximum(pt + noise.uniform(-0.1, 0.1, pt.size), 0))
    grid, numbers = _table(time, pt[-1])
    return km.arm_input(arm, pt, ps, grid, numbers, int(event.sum()) if with_events else None)


def _cox(data: dict[str, tuple[np.ndarray, np.ndarray]]) -> km.CoxFit:
    (tm, em), (tc, ec) = data["maintenance"], data["control"]
    return km.cox_two_groups(np.r_[tm, tc], np.r_[em, ec],
                             np.r_[np.ones(tm.size, int), np.zeros(tc.size, int)])


def _distances(ipd: km.ArmIPD, time: np.ndarray, event: np.ndarray) -> tuple[float, float]:
    """Largest |S_rec − S_true| while at least 10% of the arm is at risk (past that a single
    patient moves the curve by more than the tolerance), and the mean over all follow-up."""
    grid = np.linspace(0, time.max(), 2000)
    rec = km.survival_at(*km.kaplan_meier(ipd.time, ipd.event), grid)
    true = _step(*_true_km(time, event), grid)
    at_risk = np.array([np.sum(time >= g) for g in grid])
    gap = np.abs(rec - true)
    return float(gap[at_risk >= 0.1 * N_ARM].max()), float(gap.mean())


SEEDS = range(20)


# Measured on seeds 0–19 (and on 300 seeds, for the margins, while writing this test):
#   variant    |Δ log HR|       curve gap (≥10% at risk)  mean gap        SE off by
#   events     0.038 (0.054)    0.041 (0.044)             0.014 (0.016)   1.1% (1.8%)
#   no_events  0.043 (0.073)    0.041 (0.044)             0.014 (0.018)   1.2% (1.8%)
#   noise      0.043 (0.068)    0.069 (0.080)             0.016 (0.021)   1.3% (1.9%)
# The true SE is ~0.17: the reconstructed log HR is off by about a quarter of it at most, mostly
# because 40 points merge drops that the full curve keeps apart (see the next test).
@pytest.mark.parametrize(("variant", "hr_tol", "curve_tol"), [
    ("events", 0.06, 0.05), ("no_events", 0.08, 0.05), ("noise", 0.07, 0.09)])
def test_reconstruction_recovers_simulated_trials(variant: str, hr_tol: float,
                                                  curve_tol: float) -> None:
    worst_hr = worst_curve = worst_mean = worst_se = 0.0
    for seed in SEEDS:
        data = _trial(seed)
        noise = np.random.default_rng(1000 + seed) if variant == "noise" else None
        arms = {arm: _arm(arm, *data[arm], with_events=variant != "no_events", noise=noise)
                for arm in km.ARMS}
        result = km.hr_from_curves(arms["maintenance"], arms["control"])
        truth = _cox(data)
        worst_hr = max(worst_hr, abs(result.log_hr - truth.log_hr))
        worst_se = max(worst_se, abs(result.se / truth.se - 1))
        for ipd in (result.maintenance, result.control):
            time, event = data[ipd.arm]
            assert ipd.time.size == N_ARM  # every patient is somewhere
            table_times, table = _table(time, arms[ipd.arm].times[-1])
            rebuilt = [np.sum(ipd.time >= t) for t in table_times]
            assert np.max(np.abs(np.array(rebuilt) - table)) <= 1  # the table is kept
            if variant == "events":
                assert abs(ipd.events - int(event.sum())) <= 2
            sup, mean = _distances(ipd, time, event)
            worst_curve, worst_mean = max(worst_curve, sup), max(worst_mean, mean)
    assert worst_hr <= hr_tol
    assert worst_curve <= curve_tol
    assert worst_mean <= 0.02
    assert worst_se <= 0.03


def test_complete_curves_are_reconstructed_closely() -> None:
    """Every drop digitised (and no noise): the curves agree to about one patient, so what
    the 40-point test loses is the thinning."""
    data = _trial(7)
    arms = {}
    for arm, (time, event) in data.items():
        times, survival = _true_km(time, event)
        grid, numbers = _table(time, time.max())
        arms[arm] = km.arm_input(arm, np.append(times, time.max()),
                                 np.append(survival, survival[-1]), grid, numbers,
                                 int(event.sum()))
    result = km.hr_from_curves(arms["maintenance"], arms["control"])
    for ipd in (result.maintenance, result.control):
        sup, _ = _distances(ipd, *data[ipd.arm])
        assert sup <= 0.015
    assert result.log_hr == pytest.approx(_cox(data).log_hr, abs=0.04)


# ----------------------------------------------------------------------------- R's coxph
def _reconstructed(seed: int) -> km.KmHazardRatio:
    data = _trial(seed)
    arms = {arm: _arm(arm, *data[arm]) for arm in km.ARMS}
    return km.hr_from_curves(arms["maintenance"], arms["control"])


SMALL_TRIAL = {  # few points and a coarse table: many tied event times (Breslow matters)
    "curve_maintenance": "0,100\n3,96.5\n6,92.1\n9,88.0\n12,84.2\n18,77.9\n24,70.3\n30,66\n"
                         "36,61.8\n42,58\n48,57.1",
    "at_risk_maintenance": "0, 150\n12, 121\n24, 98\n36, 60",
    "curve_control": "0;1\n3;0.93\n6;0.85\n9;0.78\n12;0.71\n18;0.60\n24;0.50\n30;0.44\n36;0.39\n"
                     "42;0.33\n48;0.31",
    "at_risk_control": "0\t140\n12\t95\n24\t66\n36\t35",
}


def _small() -> km.KmHazardRatio:
    return km.hr_from_curves(
        km.read_arm("maintenance", SMALL_TRIAL["curve_maintenance"],
                    SMALL_TRIAL["at_risk_maintenance"]),
        km.read_arm("control", SMALL_TRIAL["curve_control"], SMALL_TRIAL["at_risk_control"], 84))


@pytest.mark.parametrize("case", ["simulated", "small"])
def test_cox_fit_equals_r_survival_coxph(case: str, tmp_path: Path,
                                         rscript_survival: str) -> None:
    result = _reconstructed(3) if case == "simulated" else _small()
    data = tmp_path / "ipd.csv"
    with data.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["time", "status", "maintenance"])
        for group, ipd in ((1, result.maintenance), (0, result.control)):
            for t, e in zip(ipd.time, ipd.event, strict=True):
                writer.writerow([repr(float(t)), int(e), group])
    # eps tightened from 1e-9 so R's estimate is the converged one to far below 1e-6
    script = f"""
suppressMessages(library(survival))
d <- read.csv("{data}")
fit <- coxph(Surv(time, status) ~ maintenance, data = d, ties = "breslow",
             control = coxph.control(eps = 1e-10, iter.max = 100))
km <- survfit(Surv(time, status) ~ 1, data = d[d$maintenance == 1, ])
cat(sprintf("%.17g %.17g\\n", coef(fit), sqrt(vcov(fit)[1, 1])))
cat(sprintf("%.17g", km$surv[km$n.event > 0]), "\\n")
"""
    proc = subprocess.run([rscript_survival, "-e", script], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()[:2]
    r_log_hr, r_se = (float(x) for x in first.split())
    assert result.log_hr == pytest.approx(r_log_hr, abs=1e-6, rel=0)
    assert result.se == pytest.approx(r_se, abs=1e-6, rel=0)
    # the KM estimate the curve comparisons use is R's too
    _, ours = km.kaplan_meier(result.maintenance.time, result.maintenance.event)
    assert ours == pytest.approx([float(x) for x in second.split()], abs=1e-12)


def test_arms_that_separate_completely_are_refused_not_a_crash() -> None:
    # One patient an arm, the maintenance one dying first: β runs off and the information
    # reaches 0 (a ZeroDivisionError, a 500 that lost the curves typed).
    with pytest.raises(ValidationError, match="the Cox model did not converge"):
        km.cox_two_groups([5.05, 8.05], [True, True], [1, 0])
    with pytest.raises(ValidationError, match="did not converge"):
        derive.from_km_curves("0,1\n5,1\n5.1,0\n", "0,1", "0,1\n8,1\n8.1,0", "0,1")


def test_cox_refuses_an_arm_without_events() -> None:
    with pytest.raises(ValidationError, match="no events in the control arm"):
        km.cox_two_groups([1, 2, 3, 4], [True, True, False, False], [1, 1, 0, 0])
    with pytest.raises(KmInputError, match=r"control arm, curve .* never drops") as caught:
        km.hr_from_curves(km.read_arm("maintenance", "0,1\n5,0.5", "0,10"),
                          km.read_arm("control", "0,1\n5,1", "0,10"))
    assert caught.value.field == "curve_control"


# ----------------------------------------------------------------------------- reading text
def test_what_a_digitiser_exports_is_read() -> None:
    comma = km.read_arm("maintenance", "x,y\n0,1.0\n2.5,0.9,\n5,0.8\n", "0,10\n2,8")
    semicolon = km.read_arm("maintenance", "# WebPlotDigitizer\n0;100\n2.5;90\n5;80", "0;10\n2;8")
    tab = km.read_arm("maintenance", "0\t1\r\n2.5\t0.9\r\n5\t0.8", "0\t10\r\n2\t8")
    blanks = km.read_arm("maintenance", "  0 1\n\n 2.5   0.9 \n5 0.8", "0 10\n2 8")
    for arm in (comma, semicolon, tab, blanks):
        # the at-risk time 2 gets a point at the curve's level there
        assert arm.times.tolist() == [0, 2, 2.5, 5]
        assert arm.survival == pytest.approx([1, 1, 0.9, 0.8])
        assert arm.risk_numbers.tolist() == [10, 8] and arm.points_typed == 3
    assert semicolon.notes[0] == "survival read as percentages (largest value 100)"
    assert comma.notes[0] == "survival read as proportions"


def test_clean_up_rule() -> None:
    """Noise within 0.02 is flattened by the running minimum, the start pinned at (0, 1),
    and a point added at an at-risk time between digitised points at the curve's level."""
    arm = km.read_arm("control", "0,0.99\n4,0.8\n6,0.81\n8,0.7\n10,-0.01", "0,50\n7,40")
    assert arm.times.tolist() == [0, 4, 6, 7, 8, 10]
    assert arm.survival == pytest.approx([1, 0.8, 0.8, 0.8, 0.7, 0])
    assert "1 point(s) above the curve before them lowered to it" in arm.notes[1]
    later = km.read_arm("control", "1,0.95\n4,0.8", "0,50")
    assert later.times.tolist() == [0, 1, 4] and later.survival[0] == 1
    # read at the table's ticks: the drop to 0.8 by month 6 came before the 40 at risk then
    ticks = km.read_arm("control", "0,1\n6,0.8\n12,0.6", "0,50\n6,40")
    assert ticks.times.tolist() == [0, math.nextafter(6, 0), 6, 12]
    assert ticks.survival == pytest.approx([1, 0.8, 0.8, 0.6])
    ipd = km.reconstruct_arm(ticks)
    assert int(np.sum(ipd.time >= 6)) == 40 and int(np.sum(ipd.event & (ipd.time < 6))) == 10


C, R, E = "curve", "at_risk", "events"
BAD_INPUTS = [
    # (curve, at-risk table, events, field kind, message)
    ("0,1", "0,10", None, C, "1 point(s) given; at least 2 are needed"),
    ("", "0,10", None, C, "0 point(s) given"),
    ("0,1\n5,1.3", "0,10", None, C, "line 2: survival 1.3 is outside 0–1"),
    ("0,100\n5,130", "0,10", None, C, "line 2: survival 130 is outside 0–100%"),
    ("0,1\n5,-0.1", "0,10", None, C, "line 2: survival -0.1 is outside 0–1"),
    ("0,1\n5,0.8\n10,0.85", "0,10", None, C, "line 3: survival rises to 0.85 from 0.8"),
    ("0,1\n5,0.9\n4,0.8", "0,10", None, C, "line 3: time 4 comes before 5"),
    ("-1,1\n5,0.9", "0,10", None, C, "line 1: time -1 is negative"),
    ("0,0.8\n5,0.7", "0,10", None, C, "line 1: survival 0.8 at time 0"),
    ("0,1\n5;0,9", "0,10", None, C, "line 2 ('5;0,9') is not two numbers (use a decimal point"),
    ("0,1\n5,0,9", "0,10", None, C, "line 2 ('5,0,9') is not two numbers (use a decimal point"),
    ("0,1\nfive,0.9", "0,10", None, C, "line 2 ('five,0.9') is not two numbers (one 'time, "),
    # float() would read these as 12 and 0.9 (an underscore, Arabic-Indic digits)
    ("0,1\n1_2,0.9", "0,10", None, C, "line 2 ('1_2,0.9') is not two numbers (one 'time, "),
    ("0,1\n5,\u0660.\u0669", "0,10", None, C, "line 2 ('5,\u0660.\u0669') is not two numbers"),
    ("0,1\n5,0.9", "0,10\n2,\u0668", None, R, "line 2 ('2,\u0668') is not two numbers"),
    ("0,1\n5,0.9", "", None, R, "no rows given"),
    ("0,1\n5,0.9", "0,10\n2,8\n4,9", None, R, "line 3: 9 at risk at 4 is more than 8 at 2"),
    ("0,1\n5,0.9", "1,10", None, R, "the first row is at time 1, not 0"),
    ("0,1\n5,0.9", "0,10\n2,8\n2,7", None, R, "line 3: time 2 does not come after 2"),
    ("0,1\n5,0.9", "0,10.5", None, R, "line 1: 10.5 is not a whole number of patients"),
    ("0,1\n5,0.9", "0,0", None, R, "the number at risk at time 0 (the arm size) is 0"),
    # one entry per patient: 10^12 asked numpy for terabytes (a 500), 1e30 overflowed the cast
    ("0,1\n5,0.9", "0,1000000000000", None, R,
     "line 1: 1e+12 at risk is more patients than any trial's arm (at most 100,000)"),
    ("0,1\n5,0.9", "0,1e30", None, R,
     "line 1: 1e+30 at risk is more patients than any trial's arm (at most 100,000)"),
    ("0,1\n5,0.9", "0,10\n6,3", None, R, "line 2: 3 at risk at 6, after the curve's last point"),
    # a first value in percent, the rest in proportions: read as percentages it fell to 0.9%
    ("0,100\n6,0.9\n12,0.8", "0,10", None, C,
     "line 1 gives survival 100 (a percentage) but every later line at most 1 (proportions): "
     "read as percentages the curve falls to 0.9% by time 6 (line 2); read as proportions its "
     "first value 100 is above 1 (give every survival value in one unit"),
    ("# x, y\n0, 98.5\n6, 0.9", "0,10", None, C, "line 2 gives survival 98.5 (a percentage)"),
    # the other way round (proportions, then percentages) rises: refused as such
    ("0,1\n6,90\n12,80", "0,10", None, C, "line 2: survival rises to 90 from 1"),
    ("0,1\n5,0.9", "0,10", 11, E, "11 events is more than the arm's 10 patients"),
    ("0,1\n5,0.9", "0,10", -1, E, "-1 is negative"),
]


@pytest.mark.parametrize(("curve", "table", "events", "kind", "message"), BAD_INPUTS)
@pytest.mark.parametrize("arm", km.ARMS)
def test_each_bad_input_names_arm_field_and_line(arm: str, curve: str, table: str,
                                                 events: int | None, kind: str,
                                                 message: str) -> None:
    with pytest.raises(KmInputError) as caught:
        km.read_arm(arm, curve, table, events)
    error = caught.value
    assert isinstance(error, ValidationError) and error.field == f"{kind}_{arm}"
    assert message in error.one_line()
    label = {C: "curve (time, survival)", R: "numbers at risk", E: "total events"}[kind]
    assert error.message.startswith(f"{arm} arm, {label}: ")


def test_rows_of_nobody_at_risk_after_the_curve_are_ignored() -> None:
    arm = km.read_arm("control", "0,1\n5,0.9", "0,10\n4,9\n8,0")
    assert arm.risk_times.tolist() == [0, 4]


# ----------------------------------------------------------------------------- as a derivation
def test_from_km_curves_is_approximate_and_rederivable() -> None:
    derived = derive.from_km_curves(
        SMALL_TRIAL["curve_maintenance"], SMALL_TRIAL["at_risk_maintenance"],
        SMALL_TRIAL["curve_control"], SMALL_TRIAL["at_risk_control"], events_control=84)
    assert derived.method == "km_curves" and derived.approximate
    assert (derived.log_hr, derived.se) == (_small().log_hr, _small().se)
    assert derived.hr < 1  # the maintenance curve lies above: the HR favours maintenance
    assert "survival read as percentages (largest value 100)" in derived.notes
    assert "84 events reconstructed (84 reported)" in derived.notes and "Breslow" in derived.notes
    for orientation in ("maint_vs_control", "control_vs_maint"):  # per arm: no orientation
        again = derive.derive_from_inputs("km_curves", {
            **SMALL_TRIAL, "events_control": 84, "orientation": orientation})
        assert (again.log_hr, again.se, again.notes) == (derived.log_hr, derived.se,
                                                         derived.notes)


def test_derive_from_inputs_names_missing_or_damaged_km_inputs() -> None:
    partial = {k: v for k, v in SMALL_TRIAL.items() if k != "at_risk_control"}
    with pytest.raises(ValidationError, match="the km_curves inputs lack 'at_risk_control'"):
        derive.derive_from_inputs("km_curves", partial)
    with pytest.raises(ValidationError, match="not numbers where needed"):
        derive.derive_from_inputs("km_curves", {**SMALL_TRIAL, "curve_control": [[0, 1]]})
    with pytest.raises(ValidationError, match="control arm, numbers at risk: line 1"):
        derive.derive_from_inputs("km_curves", {**SMALL_TRIAL, "at_risk_control": "0;x"})


def test_a_total_the_tail_cannot_reach_is_said_as_the_reconstructions_limit() -> None:
    """A curve falling to 0.8 after the table's only row cannot hold 50 events of 100: the
    warning says what would help (more points on the curve's end) rather than only that the
    inputs disagree, which exact inputs digitised at even steps also met."""
    arm = km.read_arm("control", "0,1\n5,0.9\n10,0.8", "0,100", 50)
    ipd = km.reconstruct_arm(arm)
    [warning] = ipd.warnings
    assert warning.startswith("control arm: ") and ", 50 reported: after the at-risk " \
        "table's last time the curve's points allow no closer number (digitise more points " \
        "on the end of the curve, at its steps, or check the curve, the table and the " \
        "events)" in warning
    assert int(ipd.event.sum()) < 40  # the reconstruction keeps to the curve


def test_a_curve_that_does_not_fit_its_table_by_far_is_refused() -> None:
    """Nobody left at risk where the table has 50, or 30 where it has 90: the curve and the
    table are not the same arm's (or unit's); the reconstruction was stored with warnings."""
    for curve, table, said in (
            ("0,1\n6,0.5\n12,0\n60,0", "0,150\n12,50\n24,40",
             "0 at risk at 12 in the reconstruction, 50 in the table: the curve's drop over "
             "0–12 is far from fitting the table"),
            ("0,1\n6,0.3\n24,0.2", "0,100\n6,90\n24,15",
             "30 at risk at 6 in the reconstruction, 90 in the table")):
        arm = km.read_arm("control", curve, table)
        with pytest.raises(KmInputError) as caught:
            km.reconstruct_arm(arm)
        assert caught.value.field == "at_risk_control"
        assert said in caught.value.one_line()
        assert "more than 25% off, or nobody left" in caught.value.one_line()
    # 30 where the table has 35: a few patients, as digitising noise leaves: a warning
    ipd = km.reconstruct_arm(km.read_arm("control", "0,1\n6,0.3\n24,0.2",
                                         "0,100\n6,35\n24,15"))
    assert any("30 at risk at 6 in the reconstruction, 35 in the table" in w
               for w in ipd.warnings)
    # so is a tail's 17 for 23 (26%, but 6 patients)
    assert not km._grossly_off(17, 23) and km._grossly_off(0, 3) and km._grossly_off(60, 90)
    assert not km._grossly_off(0, 1)  # one patient: within the noise of a warning


def test_a_total_below_the_events_before_the_tables_last_time_is_refused() -> None:
    """20 events by time 5 (the table's last row: 100 then 80 at risk) and 10 reported in all:
    no censoring afterwards takes events away, so the total is wrong, not the curve's tail
    (the warning said to digitise more points on the curve's end)."""
    curve, table = "0,1\n5,0.8\n10,0.7", "0,100\n5,80"
    with pytest.raises(KmInputError) as caught:
        km.reconstruct_arm(km.read_arm("control", curve, table, 10))
    assert caught.value.field == "events_control"
    assert caught.value.one_line() == (
        "control arm, total events: 10 events reported, but the curve and the at-risk table "
        "already give 20 events before time 5 (the table's last time) (check the events "
        "(this arm's, this endpoint's) against the curve and the table)")
    # a few events over (rounding at each point leaves up to 3 on exact curves): a warning
    # that says so, not the advice to digitise the tail
    ipd = km.reconstruct_arm(km.read_arm("control", curve, table, 17))
    assert ipd.warnings == (
        "control arm: 20 events in the reconstruction before time 5 (the at-risk table's last "
        "time), 17 reported in all: check the events against the curve and the table",)
