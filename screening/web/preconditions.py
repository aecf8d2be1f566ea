"""Optimistic concurrency for the JSON API's edits (RFC 9110 §13.1.1, ``If-Match``).

A trial's ``version`` is the digest of its editable fields (``trials.trial_fingerprint``, the
same one the trial page's edit form carries in its hidden ``shown`` field). ``GET`` answers it
as the ``ETag`` header (``"<version>"``) and in the trial's JSON; an edit sent with
``If-Match: "<version>"`` — or with the trial's JSON sent back whole, ``version`` included — is
refused with 412 when the trial has changed since, instead of silently overwriting the other
person's change.

The precondition is optional: an edit with neither keeps the old last-write-wins behaviour.
Requiring it (428) would break every client and script written against the documented API,
which says a trial's JSON may be sent back; with ``version`` in that JSON, those clients are
protected without a change, and a client that sends only some fields opts in with
``If-Match``. The answer's ``changed`` and the audit log (``trial.edit``, old and new values)
still show what an unconditional edit replaced.
"""

from __future__ import annotations

import re
from typing import Any

from store.errors import StaleError, ValidationError

# An entity tag (RFC 9110 §8.8.3): optionally weak (W/), then quoted visible characters.
_TAG = r'(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"'
_IF_MATCH = re.compile(rf"\s*(?:\*|{_TAG}(?:\s*,\s*{_TAG})*)\s*")


def etag(version: str) -> str:
    """The ``ETag`` header of ``version`` (a strong tag)."""
    return f'"{version}"'


def if_match_holds(header: str, version: str) -> bool:
    """Whether ``If-Match: header`` holds for the object's current ``version``: ``*`` (it
    exists) or one of the listed tags, compared strongly (a weak ``W/"…"`` tag never matches,
    as RFC 9110 says for If-Match). Raises ValidationError when the header is not a list of
    entity tags (an unquoted version, say), rather than reading it as "stale"."""
    if not _IF_MATCH.fullmatch(header):
        raise ValidationError(f"If-Match {header!r} is not an entity tag",
                              hint='send the ETag as GET gave it, quotes included: '
                                   'If-Match: "<version>"')
    if header.strip() == "*":
        return True
    return any(tag == etag(version) for tag in re.findall(_TAG, header))


def check_version(what: str, version: str, *, if_match: str | None, sent: Any) -> None:
    """Refuse (412) an edit of ``what`` made from another version than ``version``: the
    ``If-Match`` header, and ``sent``, the ``version`` of the object's JSON sent back (None:
    not sent). Either may be missing; both must hold when both are there."""
    if sent is not None and not isinstance(sent, str):
        raise ValidationError("version must be a string",
                              hint=f"send back the version {what}'s JSON came with, or leave "
                                   "it out")
    stale = (if_match is not None and not if_match_holds(if_match, version)) or \
        (sent is not None and sent != version)
    if stale:
        raise StaleError(f"{what} has changed since you read it: nothing was saved",
                         hint="GET it again, apply your change to what it is now, and send the "
                              "edit with the new ETag or version")


__all__ = ["check_version", "etag", "if_match_holds"]
