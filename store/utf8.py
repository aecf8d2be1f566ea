"""Text made from bytes that are not UTF-8.

Command-line arguments and environment values that are not UTF-8 reach Python as lone
surrogates (PEP 383, "\\udcff"). A path made of them still names its file, but no database,
hash, e-mail or UTF-8 stream takes them: each check refuses them where the value comes in,
and messages show them escaped.
"""

from __future__ import annotations


def is_utf8(text: str) -> bool:
    """Whether ``text`` holds no lone surrogate (it can be written as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escaped(text: str) -> str:
    """``text`` with every lone surrogate written out ("\\udcff"), for a message or a log."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
