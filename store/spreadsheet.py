"""Text cells of CSV files people open in a spreadsheet, and reading such files back with the
file line each row starts on."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

from store.numbers import is_decimal

#: Written first in a CSV meant for Excel: without it Excel on Windows reads a UTF-8 file
#: as the local code page ("MÃ¼ller" for "Müller"). Only on request, because pandas keeps
#: it in the first column's name and other tools show it as a stray character.
EXCEL_BOM = "\ufeff"


def spreadsheet_safe(text: str) -> str:
    """Text a spreadsheet would run as a formula (=, +, -, @, tab, CR first: OWASP's "CSV
    injection") gets a leading apostrophe, which spreadsheets show as text; a number is
    left alone. mmlr's CSVs are for review panels, who open them in Excel."""
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not is_decimal(text):
        return "'" + text
    return text


def spreadsheet_row(cells: Iterable[Any]) -> list[Any]:
    """A CSV row whose text cells are :func:`spreadsheet_safe` (None becomes empty); numbers
    and numeric text stay as they are, so R and pandas read the same values."""
    return ["" if c is None else spreadsheet_safe(c) if isinstance(c, str) else c
            for c in cells]


def r_row(cells: Iterable[Any]) -> list[Any]:
    """A CSV row for R's ``read.csv`` (the inputs of the exported metafor scripts): text as
    typed (the csv module quotes what needs it), None empty (NA in a numeric column). Not
    :func:`spreadsheet_safe`: R would read its apostrophe as part of the name ("'-")."""
    return ["" if c is None else c for c in cells]


class CsvLines:
    """The rows of a CSV text, each with the file line it starts on (``start``).

    ``csv.reader``'s ``line_num`` is the line a row *ends* on: a quoted cell with newlines
    (an abstract, a study name pasted from a paper) makes a row span several lines, and a
    message naming its last line sends the user past the row. Blank lines are skipped (as
    ``csv.DictReader`` skips them) but counted. When the reader raises ``csv.Error``,
    ``start`` is the first line of the row it was reading, which is where an unclosed quote
    that swallowed the rest of the file was opened. ``strict`` is ``csv.reader``'s: a quote
    that is never closed, or text after a closing quote, is an error instead of being read
    into the cell.
    """

    def __init__(self, text: str, *, strict: bool = False) -> None:
        # newline="": the csv module itself splits lines, so a quoted newline stays in its
        # cell and a row is not cut at characters str.splitlines() also breaks at (\x0c,
        # U+2028, …), which would make the line numbers disagree with an editor's.
        self._reader = csv.reader(io.StringIO(text, newline=""), strict=strict)
        self.start = 1

    def __iter__(self) -> Iterator[list[str]]:
        return self

    def __next__(self) -> list[str]:
        while True:
            self.start = self._reader.line_num + 1
            row = next(self._reader)
            if row:
                return row
