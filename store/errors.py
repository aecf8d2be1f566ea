"""The one exception hierarchy of mmlr.

    MmlrError                     base: a message a person can act on (+ optional hint)
    ├── ConfigError               a setting is missing, malformed or unsafe
    ├── IngestError               PubMed / E-utilities could not be read
    │   ├── EntrezError           the service answered with an error or never answered
    │   └── ParseError            a document is not the PubMed XML we expect
    ├── ScreeningError            the classifier or a dataset cannot be used
    ├── PoolingError              a meta-analysis cannot be computed from its inputs
    ├── DeliveryError             a digest could not be written or sent
    ├── ValidationError           user input is wrong (HTTP 400 / CLI exit 1)
    │   └── StateError            the request does not fit the object's state (HTTP 409)
    ├── StaleError                the object changed since the client read it (HTTP 412)
    ├── TooLargeError             the request body is over the size limit (HTTP 413)
    ├── NotFoundError             the object asked for does not exist (HTTP 404)
    ├── AuthError                 not logged in / bad credentials (HTTP 401)
    ├── PermissionDeniedError     logged in but the role does not allow it (HTTP 403)
    └── LockedError               another worker holds the lock for this job

The mapping to HTTP status codes lives in ``screening.web.errors``; the mapping to CLI exit
codes in ``monitor.cli``. Messages name the object and the fix, never a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping


class MmlrError(Exception):
    """Base class: ``message`` is shown to the user as one line; ``hint`` says what to do."""

    http_status: int = 500
    #: The exit code of a command that stops with it (``monitor.cli.main``).
    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = " ".join(self.message.split())
        if self.hint:
            text = f"{text} ({' '.join(self.hint.split())})"
        return text


class ConfigError(MmlrError):
    http_status = 500


class IngestError(MmlrError):
    http_status = 502


class EntrezError(IngestError):
    pass


class ParseError(IngestError):
    pass


class ScreeningError(MmlrError):
    http_status = 500


class PoolingError(MmlrError):
    http_status = 422


class DeliveryError(MmlrError):
    """The mail server or the connection failed; ``attempts``: how many times the message
    was tried before giving up (each connection counts), so the delivery row records the
    attempts its error speaks of."""

    http_status = 502

    def __init__(self, message: str, *, hint: str | None = None, attempts: int = 1) -> None:
        super().__init__(message, hint=hint)
        self.attempts = attempts


class ValidationError(MmlrError):
    http_status = 400


class UsageError(ValidationError):
    """Options of a command that do not go together (``export ris --excel``): a usage error,
    exit 2 as argparse's own, though only the command can tell."""

    exit_code = 2


class FieldsError(ValidationError):
    """Bad values in named fields of a form or JSON body; ``fields`` maps each field, named
    as in both, to its message. No hint: a form marks the fields under "Please correct the
    marked fields", and an API answer names each one (and lists them as ``fields``)."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.fields = dict(fields)
        super().__init__("; ".join(f"{name}: {text}" for name, text in self.fields.items()))


class Sentence(str):
    """A field's message that names the field in its own words ("two-sided P value must be …",
    "the HR derived from p_value and events is …"): a form shows it alone, not after the
    field's label as it shows "is required", which would name the field twice ("Two-sided P
    two-sided P value …"). Anywhere else (an API's ``fields``) it is the text it is."""


class Statement(str):
    """A field's message that is a statement of its own ("a trial named 'X' already exists"),
    not a predicate of the field as "is required" is: a form shows it after the field's label
    and a colon ("Name: a trial named …"), where it read "Name a trial named …". Anywhere else
    it is the text it is."""


class StateError(ValidationError):
    """Well-formed, but not now: a vote on a record already resolved, a resolution of one
    that two people have not assessed yet, …"""

    http_status = 409


class StaleError(MmlrError):
    """A write made from an old copy: the version the client read (``If-Match``, a trial's
    ``version``) is no longer the object's, so saving would overwrite someone's change."""

    http_status = 412


class TooLargeError(MmlrError):
    """A request body over the limit (``screening.web.body_limit``)."""

    http_status = 413


class NotFoundError(MmlrError):
    http_status = 404


class AuthError(MmlrError):
    http_status = 401


class PermissionDeniedError(MmlrError):
    http_status = 403


class LockedError(MmlrError):
    http_status = 409
