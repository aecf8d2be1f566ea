"""Text cells of CSV files people open in a spreadsheet."""

from __future__ import annotations


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
