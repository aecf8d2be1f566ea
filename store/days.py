"""The one rule for a day typed by a person: ``YYYY-MM-DD`` in ASCII digits, a real date.

``date.fromisoformat`` alone is not it: since Python 3.11 it also reads "2016W05" (an ISO
week, as 2016-02-01), "20160201" and other digits than 0-9, so a slip could be stored as a
different day than the form's "YYYY-MM-DD" promises."""

from __future__ import annotations

import re
from datetime import date

_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_day(text: str) -> date:
    """``text`` (spaces around it ignored) as a date, else ValueError."""
    value = text.strip()
    if not _DAY.fullmatch(value):
        raise ValueError(f"{value!r} is not YYYY-MM-DD")
    return date.fromisoformat(value)  # ValueError for a day that does not exist


__all__ = ["parse_day"]
