"""The one rule for a typed number (store.numbers): what float() reads and a person would not
have meant is refused, with a hint where one helps; what papers print is read exactly."""

from __future__ import annotations

import math

import pytest

from store.numbers import as_float, is_decimal, parse_decimal
from store.spreadsheet import spreadsheet_safe


@pytest.mark.parametrize(("text", "value"), [
    ("0.75", 0.75), (" 0.75 ", 0.75), ("1", 1.0), ("+2", 2.0), ("-0.5", -0.5), (".5", 0.5),
    ("5.", 5.0), ("1.2e-5", 1.2e-5), ("3E2", 300.0), ("0.50", 0.5),
    ("0.5\u2009", 0.5),  # a thin space copied from a PDF around the number is only space
])
def test_numbers_as_papers_print_them_are_read(text: str, value: float) -> None:
    assert parse_decimal(text) == value


@pytest.mark.parametrize("text", ["inf", "-Infinity", "NaN"])
def test_inf_and_nan_are_read_so_that_callers_can_say_not_finite(text: str) -> None:
    assert not math.isfinite(parse_decimal(text))
    assert not is_decimal(text)


def test_a_parsed_integer_too_large_for_a_float_is_infinite_not_an_overflow() -> None:
    """float(10**400) raises OverflowError: a JSON body's 400-digit integer was a 500."""
    assert as_float(10**400) == math.inf and as_float(-(10**400)) == -math.inf
    assert as_float(3) == 3.0 and as_float(0.5) == 0.5


# float() reads the first four as numbers: each would have been stored.
@pytest.mark.parametrize(("text", "message"), [
    ("0.7_5", "'0.7_5' is not a number (write it without underscores)"),
    ("\u0663", "'\u0663' is not a number (write it with the digits 0-9)"),  # Arabic-Indic 3
    ("\uff10.5", "'\uff10.5' is not a number (write it with the digits 0-9)"),  # fullwidth 0
    ("2\u00b2", "'2\u00b2' is not a number (write it with the digits 0-9)"),  # superscript 2
    ("0,75", "'0,75' is not a number (use a decimal point, not a comma)"),
    ("abc", "'abc' is not a number"), ("", "'' is not a number"), ("1e", "'1e' is not a number"),
    ("0x10", "'0x10' is not a number"), ("1.2.3", "'1.2.3' is not a number"),
    ("x" * 40, "'" + "x" * 30 + "' is not a number"),
])
def test_what_float_reads_and_a_person_did_not_mean_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_decimal(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(("cell", "safe"), [
    ("-0.5", "-0.5"), ("+1e3", "+1e3"), ("-1_0", "'-1_0"), ("-\u0661", "'-\u0661"),
    ("=1+1", "'=1+1"), ("-inf", "'-inf"),
])
def test_a_spreadsheet_cell_is_left_alone_only_when_it_is_a_plain_number(cell: str,
                                                                          safe: str) -> None:
    assert spreadsheet_safe(cell) == safe
