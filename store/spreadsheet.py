"""Text cells of CSV files people open in a spreadsheet."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: Written first in a CSV meant for Excel: without it Excel on Windows reads a UTF-8 file
#: as the local code page ("MÃ¼ller" for "Müller"). Only on request, because pandas keeps
#: it in the first column's name and other tools show it as a stray character.
EXCEL_BOM = "\ufeff"


def spreadsheet_safe(text: str) -> str:
    """Text a spreadsheet would run as a formula (=, +, -, @, tab, CR first: OWASP's "CSV
    injection") gets a leading apostrophe, which spreadsheets show as text; a number is
    left alone. mmlr's CSVs are for review panels, who open them in Excel."""
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text


def spreadsheet_row(cells: Iterable[Any]) -> list[Any]:
    """A CSV row whose text cells are :func:`spreadsheet_safe` (None becomes empty); numbers
    and numeric text stay as they are, so R and pandas read the same values."""
    return ["" if c is None else spreadsheet_safe(c) if isinstance(c, str) else c
            for c in cells]
