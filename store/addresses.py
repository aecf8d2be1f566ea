"""E-mail addresses: the one rule for what mmlr accepts as an address (user accounts and
digest subscribers alike) and how it is normalised before it is stored or compared."""

from __future__ import annotations

import re

from store.errors import ValidationError

#: RFC 5321's limit on a forward path; longer ones are refused by mail servers anyway.
EMAIL_MAX = 254

# Deliberately permissive (e-mail syntax is a swamp) but it must have one @, no spaces and no
# characters that would break HTML or a mail header (no quotes, commas, angle brackets, CR/LF).
# The local part is dot-separated atoms (no leading, trailing or doubled dot: RFC 5321's
# dot-string, which servers refuse otherwise); the domain is labels of letters, digits and
# inner hyphens. "admin@localhost" is valid: it is the default first admin.
_ATOM = r"[A-Za-z0-9!#$%&*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*$")
# An RFC 2047 encoded word ("=?utf-8?q?a=0D=0Ab?=") passes the atoms above, but the e-mail
# package decodes it when it builds the To header, CR/LF and all: the message cannot be built.
_ENCODED_WORD = re.compile(r"=\?.*\?=")
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
    if _ENCODED_WORD.search(address):
        raise ValidationError(f"{shown!r} is not an e-mail address: it contains an encoded "
                              "word (=?…?=)", hint=_EXAMPLE)
    if not _EMAIL.fullmatch(address):
        local, _, domain = address.partition("@")
        what = ""
        if local.startswith(".") or local.endswith(".") or ".." in local:
            what = ": a dot begins or ends the part before @, or two dots follow each other"
        elif any(not part or part.startswith("-") or part.endswith("-")
                 for part in domain.split(".")):
            what = ": a part of the domain is empty or begins or ends with a hyphen"
        raise ValidationError(f"{shown!r} is not an e-mail address{what}", hint=_EXAMPLE)
    return address


# "Name <address>" or a bare address, nothing before or after: a comma, a second <…> or a
# trailing word would be a second mailbox or a sender other than the one checked.
_SENDER = re.compile(r'(?P<name>[^<>]*?)\s*<(?P<addr>[^<>]*)>|(?P<bare>[^<>]*)')
_SENDER_EXAMPLE = "e.g. review@example.org or Living review <review@example.org>"


def parse_sender(value: str) -> tuple[str, str]:
    """(display name, address) of a sender (``MMLR_MAIL_FROM``): ``address`` or
    ``Name <address>``; ValidationError for anything else.

    The one parse every use of the sender goes through (the From header, the envelope's
    ``MAIL FROM``, the Message-ID's domain): ``parseaddr`` alone checked one address while
    the message went out with another — ``a@x.org <b@y.org>`` was checked as b@y.org and
    sent as a@x.org, ``"Evil" <r@x.org>, other@y.org`` had two From mailboxes, and a line
    break ended the first delivery with an internal error.
    """
    from email.utils import getaddresses

    text = value.strip()
    if not text:
        raise ValidationError("a sender address is required", hint=_SENDER_EXAMPLE)
    shown = text if len(text) <= 80 else text[:77] + "..."
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise ValidationError(f"{shown!r} is not a sender: it contains a line break or another "
                              "control character", hint=_SENDER_EXAMPLE)
    match = _SENDER.fullmatch(text)
    several = ValidationError(f"{shown!r} is not one sender: it names more than one mailbox "
                              "or has text outside <…>", hint=_SENDER_EXAMPLE)
    if match is None:
        raise several
    if match["bare"] is not None:
        if "," in text or ";" in text:
            raise several
        check_email(text)
        return "", text
    name = match["name"].strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1]
    if '"' in name or "\\" in name:
        raise ValidationError(f"{shown!r} is not a sender: its name has a quote or a "
                              "backslash inside", hint=_SENDER_EXAMPLE)
    if "@" in name:
        # "a@x.org <b@y.org>" reads as from a@x.org in a mail client, but is sent by b@y.org
        raise ValidationError(f"{shown!r} is not a sender: its name has an @, so it would "
                              "read as the address", hint=_SENDER_EXAMPLE)
    if len(getaddresses([text])) != 1:  # an unquoted comma in the name: two mailboxes
        raise several
    address = match["addr"].strip()
    check_email(address)
    return name, address
