"""E-mail addresses: the one rule for what mmlr accepts as an address (user accounts and
digest subscribers alike) and how it is normalised before it is stored or compared."""

from __future__ import annotations

import re

from store.errors import ValidationError

#: RFC 5321's limit on a forward path; longer ones are refused by mail servers anyway.
EMAIL_MAX = 254

# Deliberately permissive (e-mail syntax is a swamp) but it must have one @, no spaces and no
# characters that would break HTML or a mail header (no quotes, commas, angle brackets, CR/LF).
# "admin@localhost" is valid: it is the default first admin.
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"
)
_EXAMPLE = "e.g. jane@example.org"


def normalise_email(email: str) -> str:
    """Stripped and lower-case: addresses are stored and compared in this form."""
    return email.strip().lower()


def check_email(email: object) -> str:
    """The normalised address, or ValidationError saying what is wrong with it."""
    text = email.strip() if isinstance(email, str) else ""
    if not text:
        raise ValidationError("an e-mail address is required", hint=_EXAMPLE)
    shown = text if len(text) <= 80 else text[:77] + "..."
    if len(text) > EMAIL_MAX:
        raise ValidationError(f"{shown!r} is not an e-mail address: it is longer than "
                              f"{EMAIL_MAX} characters", hint=_EXAMPLE)
    if text.count("@") != 1:
        what = "it has no @" if "@" not in text else "it has more than one @"
        raise ValidationError(f"{shown!r} is not an e-mail address: {what}", hint=_EXAMPLE)
    if any(ch.isspace() for ch in text):
        raise ValidationError(f"{shown!r} is not an e-mail address: it contains a space",
                              hint=_EXAMPLE)
    address = normalise_email(text)
    if not _EMAIL.match(address):
        raise ValidationError(f"{shown!r} is not an e-mail address", hint=_EXAMPLE)
    return address
