"""What no trial reports: the plausibility bounds of a hazard ratio and its standard error.

One set of rules for every way a number enters mmlr: ``mmlr meta`` refuses a CSV row beyond
them (``reports.meta_cli``), and the trial page's extraction form and ``POST /api/estimates``
(``screening.web.extraction``) refuse an estimate beyond them, so nothing is stored that the
pooling would refuse to read back.
"""

from __future__ import annotations

import math

# What no real trial reports, so a number beyond it is a typo or a unit mix-up (a percentage,
# a log taken twice) and is refused rather than pooled; beyond these bounds the arithmetic of
# the pooling also overflows or divides by zero (a 1e-300 SE, a 1e308 log HR).
# - A hazard ratio and its CI limits lie in 1e-4..1e4: the most extreme HRs randomised trials
#   report are around 0.01 and 100, and a limit two orders of magnitude further out would take
#   a fraction of an event.
# - A log HR lies within the same bounds, ±ln(1e4) ≈ ±9.21.
# - The SE of a log HR is about 2/√(events): 1e-4 would take 4·10⁸ events (more patients than
#   any trial has had), and one event per arm already gives only 1.4, so 10 is a hundredth of
#   an event. A CI (or any other input) from which a smaller or larger SE follows is refused
#   the same way.
HR_MIN, HR_MAX = 1e-4, 1e4
LOG_HR_MAX = math.log(HR_MAX)
SE_MIN, SE_MAX = 1e-4, 10.0

#: The bounds in words, as the messages give them.
HR_RANGE = f"{HR_MIN:g}–{HR_MAX:g}"
SE_RANGE = f"{SE_MIN:g}–{SE_MAX:g}"


def plausible_hr(value: float) -> bool:
    """A hazard ratio (or a CI limit) some trial could report."""
    return HR_MIN <= value <= HR_MAX


def plausible_log_hr(value: float) -> bool:
    """A log hazard ratio some trial could report (NaN is not)."""
    return abs(value) <= LOG_HR_MAX


def plausible_se(value: float) -> bool:
    """A standard error of a log HR some trial could report (NaN is not)."""
    return SE_MIN <= value <= SE_MAX
