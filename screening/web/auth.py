"""Users, passwords, API tokens and the login throttle.

Passwords are hashed with scrypt (memory-hard, in the standard library) and a per-user random
salt; verification is constant-time. API tokens are long random strings, so a plain SHA-256
of the token is enough to store them (there is nothing to brute-force), and a SHA-256 lets the
token be looked up by an indexed equality query. A token works for ``MMLR_API_TOKEN_DAYS``
after it is issued (``users.api_token_expires_at``): a leaked token stops working on its own.
Expiry is checked when the token is used, not by a job; an expired token keeps its hash, so
its holder is told it expired rather than that it is unknown.

The throttle counts failed logins in the audit log (``auth.login_failed``) rather than in
process memory, so it holds across restarts and across several web instances. It has two
independent limits: per account (guessing one password) and per client address (spraying a
few guesses over many accounts). The account limit must not let anyone lock the real user out
for good by failing five times every quarter of an hour: from an address the user has logged
in from within ``KNOWN_ADDRESS_AGE``, only the failures from that address count against the
account; from any other address, all of them do. A password check in progress counts as a
failure until it ends (``login_attempts``, charged under a lock before the check:
``start_attempt``), so parallel attempts cannot pass the count together.

The address is ``request.client.host``: behind a reverse proxy uvicorn already rewrites it
from ``X-Forwarded-For``, but only for proxies listed in its ``FORWARDED_ALLOW_IPS`` (default
127.0.0.1 and ::1), so a client cannot forge it with a header.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from reports.words import plural
from store.addresses import check_email, normalise_email
from store.audit import audit
from store.errors import AuthError, NotFoundError, ValidationError
from store.locks import transaction_lock
from store.models import AuditLog, LoginAttempt, User, utcnow
from store.utf8 import is_utf8

log = logging.getLogger(__name__)

ROLES: tuple[str, ...] = ("viewer", "curator", "admin")
_RANK = {role: i for i, role in enumerate(ROLES)}

# scrypt cost: OWASP's minimum for password storage is a table of forms it rates alike, block
# size 8 and memory traded for passes: 2**17 x 1, 2**16 x 2, 2**15 x 3, 2**14 x 5, 2**13 x 10
# (N x p). 2**14 x 5 is used: 16 MiB per login instead of 2**17's 128 MiB, so a burst of
# logins on a small server (the web app checks them in a thread pool) cannot exhaust its
# memory, for about 0.25 s of CPU here. Whatever the constants say, a stored hash of another
# cost (mmlr used 2**14 x 8 x 1, scrypt's author's interactive-login proposal, until 2026-12)
# is redone at the next login (needs_rehash). tests/test_web_security.py holds the constants
# to OWASP's table.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P, _SCRYPT_LEN = 2**14, 8, 5, 32
# Python refuses more than 32 MiB by default, which 2**15 x 8 already needs: the ceiling is
# raised so that another of OWASP's forms is one edit above, and bounded so a stored hash cannot
# ask for more than the machine should give one login.
_SCRYPT_MAXMEM = 256 * 1024 * 1024
# The same for time: memory bounds n x r, not p, and a stored hash of p = 10**6 would hold a
# login thread for hours. A hash asking for more than 16 times the work of OWASP's 2**17 x 8 x 1
# is a failed login.
_SCRYPT_MAX_WORK = 16 * 2**17 * 8
# NIST SP 800-63B-4 (2025), section 3.1.1.2: a password that is the only factor, as here, is
# at least 15 characters; no composition rules; a password is compared with context-specific
# words (the account's name) and repetitive or sequential characters. Long passphrases pass.
MIN_PASSWORD_LENGTH = 15
#: The shortest name part of an e-mail address a password may not contain (shorter ones,
#: "al@…", occur by chance in ordinary words).
MIN_NAME_IN_PASSWORD = 4
MAX_FAILED_LOGINS = 5  # per account within THROTTLE_WINDOW
MAX_FAILED_LOGINS_PER_CLIENT = 20  # per client address, across all accounts, same window
THROTTLE_WINDOW = timedelta(minutes=15)
#: An address the user logged in from this recently is theirs: others' failures do not hold
#: it back (the account limit still counts that address's own failures).
KNOWN_ADDRESS_AGE = timedelta(days=30)
TOKEN_PREFIX = "mmlr_"  # noqa: S105 - a public prefix, not a secret


class ThrottledError(AuthError):
    """Too many failed logins for one account or from one address: HTTP 429 until the window
    has passed."""

    http_status = 429


class PasswordFieldError(ValidationError):
    """A password-change form error; ``field`` names the form field at fault."""

    def __init__(self, field: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.field = field


# ----------------------------------------------------------------------------- passwords
def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R,
                            p=_SCRYPT_P, dklen=_SCRYPT_LEN, maxmem=_SCRYPT_MAXMEM)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a ``hash_password`` string."""
    try:
        scheme, n, r, p, salt_hex, digest_hex = stored.split("$")
        if scheme != "scrypt":
            return False
        salt, expected = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
        if int(n) * int(r) * int(p) > _SCRYPT_MAX_WORK:
            log.warning("a stored password hash asks for more scrypt work than allowed: "
                        "n=%s r=%s p=%s", n, r, p)
            return False
        digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=int(n), r=int(r),
                                p=int(p), dklen=len(expected), maxmem=_SCRYPT_MAXMEM)
    except ValueError:
        return False
    return hmac.compare_digest(digest, expected)


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` is not a hash of the current scheme and cost: then the password is
    hashed again when the user next logs in (the one time mmlr sees it)."""
    prefix = f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}$"
    return not stored.startswith(prefix)


def _dummy_hash() -> str:
    """A hash of nothing in particular, checked when the account does not exist so that the
    response time does not tell an attacker which addresses have accounts. Made at each use from
    the constants, so it costs what a real login costs whatever cost is in force (the test suite
    lowers it: tests/conftest.py)."""
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}$" + "00" * 16 + "$" + "00" * 32


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def password_or_generated(password: str | None) -> tuple[str, str | None]:
    """The password to store, and the same again when it was generated (the caller shows it
    once), else None: ``add_user`` and ``reset_password`` both take an optional password."""
    if password is None:
        generated = generate_password()
        return generated, generated
    return password, None


def check_password_strength(password: str, email: str = "") -> None:
    """Refuse a chosen password that is too short, contains the account's e-mail address or
    its name part, or is one character repeated or a run such as "abcdef…" or "98765…".
    Generated passwords are not checked: they are random and long enough by construction."""
    # Bytes that are not UTF-8 (typed in a terminal of another encoding) reach Python as lone
    # surrogates, which cannot be hashed (an internal error) nor typed again at the login.
    if not is_utf8(password):
        raise ValidationError("the password is not valid UTF-8 text",
                              hint="type it in a UTF-8 terminal, or leave it out to have one "
                                   "generated")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"the password is too short: {plural(len(password), 'character')}",
            hint=f"use at least {MIN_PASSWORD_LENGTH} characters; a few words make one",
        )
    folded, address = password.casefold(), email.strip().casefold()
    name = address.partition("@")[0]
    if address and address in folded:
        raise ValidationError("the password contains the account's e-mail address",
                              hint="choose one that does not name the account")
    if address and len(name) >= MIN_NAME_IN_PASSWORD and name in folded:
        # "mark" in "my bookmarks ..." was called "the e-mail address": say what matched
        raise ValidationError(f"the password contains {name!r}, the name part of the "
                              "account's e-mail address",
                              hint="choose one that does not name the account")
    steps = {ord(b) - ord(a) for a, b in pairwise(folded)}
    if steps in ({0}, {1}, {-1}):
        raise ValidationError("the password is one character repeated or a run of "
                              "consecutive characters", hint="choose a few words instead")


# ----------------------------------------------------------------------------- tokens
def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


#: How soon before its expiry the account page warns that the token is about to stop working.
TOKEN_EXPIRY_WARNING = timedelta(days=14)


def issue_api_token(session: Session, user: User, *, actor: str, days: int) -> str:
    """Give ``user`` a new API token (replacing any old one) that works for ``days`` days; the
    token is shown once.

    Only its hash and its expiry are stored; the token itself is returned for the caller to
    show and is never logged or audited. The caller commits.
    """
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    replaced = user.api_token_hash is not None
    user.api_token_hash = hash_token(token)
    user.api_token_expires_at = utcnow() + timedelta(days=days)
    session.add(user)
    audit(session, "user.token_issued", actor=actor, object_type="user", object_id=user.email,
          replaced=replaced, expires_at=user.api_token_expires_at.isoformat())
    log.info("API token of %s issued by %s", user.email, actor)
    return token


def revoke_api_token(session: Session, user: User, *, actor: str, **details: Any) -> bool:
    """Remove ``user``'s API token; True when there was one (then audited as
    ``user.token_revoked``), False when there was nothing to revoke. The caller commits."""
    if user.api_token_hash is None:
        return False
    user.api_token_hash = None
    user.api_token_expires_at = None
    session.add(user)
    audit(session, "user.token_revoked", actor=actor, object_type="user", object_id=user.email,
          **details)
    log.info("API token of %s revoked by %s", user.email, actor)
    return True


def user_for_token(session: Session, token: str) -> User:
    if not token.startswith(TOKEN_PREFIX):
        raise AuthError("the API token is malformed", hint="send Authorization: Bearer mmlr_…")
    user = session.exec(select(User).where(User.api_token_hash == hash_token(token))).first()
    if user is None or not user.active:
        raise AuthError("the API token is not valid",
                        hint="create a new one on your account page, /account")
    # Only whoever holds this very token learns that it expired (rather than "not valid"):
    # any other input still gets the answer above.
    expired = user.api_token_expires_at
    if expired is not None and token_expired(user, utcnow()):
        raise AuthError(f"the API token expired on {expired:%Y-%m-%d %H:%M} UTC",
                        hint="create a new one on your account page, /account (or ask an "
                             "admin to issue one)")
    return user


def token_expired(user: User, now: datetime) -> bool:
    """Whether ``user``'s API token has passed its expiry at ``now``. A token without an
    expiry is not expired: none is issued so, but a row written by hand may have one."""
    return user.api_token_expires_at is not None and user.api_token_expires_at <= now


def token_expires_soon(user: User, now: datetime) -> bool:
    """Whether ``user``'s token still works at ``now`` but stops within
    :data:`TOKEN_EXPIRY_WARNING` (the account page then says so)."""
    expires = user.api_token_expires_at
    return expires is not None and now < expires <= now + TOKEN_EXPIRY_WARNING


# ----------------------------------------------------------------------------- users
def check_role(role: str) -> str:
    if role not in _RANK:
        raise ValidationError(f"unknown role {role!r}", hint=f"use one of {', '.join(ROLES)}")
    return role


def has_role(user: User, role: str) -> bool:
    """Roles are ordered: an admin may do what a curator may, a curator what a viewer may."""
    return user.active and _RANK.get(user.role, -1) >= _RANK[role]


def add_user(session: Session, email: str, *, role: str, password: str | None = None,
             actor: str = "system") -> str | None:
    """Create a user; return the generated password when none was given (else None).

    Raises ValidationError on a malformed e-mail, an unknown role, a short password or an
    e-mail that already has an account. The caller commits.
    """
    address = check_email(email)
    check_role(role)
    existing = session.exec(select(User).where(User.email == address)).first()
    if existing is not None:
        raise ValidationError(f"a user {address} already exists",
                              hint="change their role on the admin page instead")
    password, generated = password_or_generated(password)
    if generated is None:
        check_password_strength(password, address)
    session.add(User(email=address, role=role, password_hash=hash_password(password)))
    session.flush()
    audit(session, "user.add", actor=actor, object_type="user", object_id=address, role=role)
    log.info("user %s added with role %s", address, role)
    return generated


#: The lock (``store.locks.transaction_lock``) under which the throttle counts and an attempt
#: is charged: one step across threads, processes and web instances.
THROTTLE_LOCK = "login-throttle"


def login_account(name: str) -> str | None:
    """The account a login name can name: the normalised e-mail address, or None when what
    was typed is not an e-mail address. No account has such a name (``add_user`` takes
    addresses only), and it is often a password typed into the wrong field: it is neither
    logged nor audited as typed."""
    try:
        return check_email(name)
    except ValidationError:
        return None


def _failures(session: Session, *, account: str | None = None,
              client: str | None = None) -> int:
    """Failed logins within the window, of ``account`` and/or from ``client``: the audited
    ones (``auth.login_failed``; the address is in the row's details, JSON) and the password
    checks still running (``login_attempts``), each of which may yet fail.

    One statement, so one snapshot: an attempt ending between two statements (its charge
    deleted and its failure audited in one commit) would be in neither count under
    PostgreSQL's READ COMMITTED, which gives each statement its own."""
    since = utcnow() - THROTTLE_WINDOW
    audited = select(func.count()).select_from(AuditLog).where(
        AuditLog.action == "auth.login_failed", AuditLog.at >= since)
    running = select(func.count()).select_from(LoginAttempt).where(LoginAttempt.at >= since)
    if account is not None:
        audited = audited.where(AuditLog.object_id == account)
        running = running.where(LoginAttempt.account == account)
    if client is not None:
        audited = audited.where(AuditLog.details["client"].as_string() == client)
        running = running.where(LoginAttempt.client == client)
    both = select(audited.scalar_subquery() + running.scalar_subquery())
    return int(session.exec(both).one())


def recent_failures(session: Session, email: str) -> int:
    return _failures(session, account=email)


def recent_client_failures(session: Session, client: str) -> int:
    """Failed logins from ``client`` (any account) within the window."""
    return _failures(session, client=client)


def known_address(session: Session, email: str, client: str) -> bool:
    """Whether ``email`` logged in from ``client`` within :data:`KNOWN_ADDRESS_AGE`."""
    if not client:
        return False
    stmt = select(func.count()).select_from(AuditLog).where(
        AuditLog.action == "auth.login", AuditLog.object_id == email,
        AuditLog.at >= utcnow() - KNOWN_ADDRESS_AGE,
        AuditLog.details["client"].as_string() == client)
    return int(session.exec(stmt).one()) > 0


def check_throttle(session: Session, email: str | None, client: str = "") -> None:
    """Raise ThrottledError while the account or the client address has too many failures.

    From an address the user is known to log in from, only that address's failures count
    against the account: otherwise anyone knowing the e-mail address could keep its owner
    out indefinitely with five wrong passwords per window. ``email`` None (a login name that
    is not an address: :func:`login_account`) has no account to hold back, only the
    address's limit."""
    hint = f"wait {int(THROTTLE_WINDOW.total_seconds() // 60)} minutes and try again"
    if email is not None:
        if known_address(session, email, client):
            failures = _failures(session, account=email, client=client)
        else:
            failures = recent_failures(session, email)
        if failures >= MAX_FAILED_LOGINS:
            raise ThrottledError(f"too many failed logins for {email}", hint=hint)
    # An unknown address (no peer information) cannot be told apart from others: skip it
    # rather than lump every such request into one bucket that anyone could fill.
    if client and recent_client_failures(session, client) >= MAX_FAILED_LOGINS_PER_CLIENT:
        raise ThrottledError(f"too many failed logins from {client}", hint=hint)


def start_attempt(session: Session, email: str | None, client: str = "") -> int:
    """Check the throttle and charge one password check to it, as one step; return the
    charge's id, for :func:`end_attempt`. The charge is committed here, before the caller
    checks the password.

    Counting the failures, then spending a quarter of a second on scrypt, then recording a
    failure let twelve parallel attempts all find fewer than five failures, and the right
    password among them log in. Now the count and the charge happen under one lock
    (:data:`THROTTLE_LOCK`: a PostgreSQL advisory lock, SQLite's write lock), and a charged
    attempt counts as a failure until it ends; the slow check itself runs outside the lock,
    so logins do not queue behind each other. The session must have written nothing yet."""
    transaction_lock(session.connection(), THROTTLE_LOCK)
    try:
        check_throttle(session, email, client)
        # Charges of processes that died during a check: past the window they count no more.
        session.execute(delete(LoginAttempt).where(
            col(LoginAttempt.at) < utcnow() - THROTTLE_WINDOW))
        attempt = LoginAttempt(account=email, client=client)
        session.add(attempt)
        session.commit()  # the charge is seen by every attempt after this one; lock released
    except BaseException:
        session.rollback()  # releases the lock
        raise
    if attempt.id is None:  # pragma: no cover - the commit gave it one
        raise AuthError("the login attempt was not recorded")
    return attempt.id


def end_attempt(session: Session, attempt_id: int) -> None:
    """The check charged as ``attempt_id`` is done: the charge goes (a failure is audited
    instead, in the same transaction). The caller commits; until then, and for good if it
    never does, the charge counts as a failure."""
    session.execute(delete(LoginAttempt).where(col(LoginAttempt.id) == attempt_id))


#: What the log and the audit trail say instead of a login name that is not an e-mail address.
NOT_AN_ADDRESS = "a login name that is not an e-mail address"


def record_failed_login(session: Session, email: str | None, client: str = "",
                        **details: Any) -> None:
    """Audit one failed login (the caller commits it even though the request fails).

    ``email`` None: what was typed is not an e-mail address (:func:`login_account`). A
    password typed into the e-mail field was logged and audited as the login name; such a
    name is now written nowhere: the row's actor is ``anonymous``, it has no object id, and
    it still counts against the client address."""
    if email is None:
        audit(session, "auth.login_failed", actor="anonymous", object_type="login",
              client=client, login=NOT_AN_ADDRESS, **details)
        log.info("failed login for %s from %s", NOT_AN_ADDRESS, client or "?")
        return
    audit(session, "auth.login_failed", actor=email, object_type="login",
          object_id=email, client=client, **details)
    log.info("failed login for %s from %s", email, client or "?")


def authenticate(session: Session, email: str, password: str, *, client: str = "") -> User:
    """Return the active user with these credentials or raise AuthError / ThrottledError.

    Every failure is audited (and committed by the caller); the throttle refuses even a correct
    password while the account or the address has too many recent failures, so guessing cannot
    continue. The attempt is charged to the throttle before the password is checked
    (:func:`start_attempt`), which commits.
    """
    address = login_account(email)
    attempt = start_attempt(session, address, client)
    user = None if address is None else \
        session.exec(select(User).where(User.email == address)).first()
    ok = verify_password(password, user.password_hash if user else _dummy_hash())
    end_attempt(session, attempt)
    if user is None or not ok or not user.active:
        record_failed_login(session, address, client)
        raise AuthError("wrong e-mail or password")
    user.last_login_at = utcnow()
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)  # a raised cost reaches old hashes
    session.add(user)
    audit(session, "auth.login", actor=user.email, object_type="user", object_id=user.email,
          client=client)
    return user


def set_password(session: Session, user: User, password: str, *, actor: str,
                 client: str = "", generated: bool = False) -> bool:
    """Store a new password (policy-checked), end every other session of the user and revoke
    their API token; return True when there was a token to revoke.

    Bumping ``session_version`` invalidates every cookie issued before; the caller re-stamps
    the current session if it should survive. The token goes too: a password change is what
    a user does when they think the account is compromised, and a token issued under the old
    password must not outlive it. The caller commits.
    """
    if not generated:
        check_password_strength(password, user.email)
    user.password_hash = hash_password(password)
    user.session_version = (user.session_version or 0) + 1
    session.add(user)
    audit(session, "auth.password_change", actor=actor, object_type="user",
          object_id=user.email, client=client)
    log.info("password of %s changed by %s", user.email, actor)
    return revoke_api_token(session, user, actor=actor, via="password_change")


def confirm_current_password(session: Session, user: User, current: str, *, client: str,
                             via: str) -> None:
    """Re-authenticate a logged-in user before a sensitive change (password, API token).

    Throttled and audited like a login: a wrong password is recorded as a failed login, so a
    stolen session cookie is neither an unthrottled password oracle nor enough on its own to
    mint a long-lived credential. The check is charged to the throttle before it is made
    (:func:`start_attempt`, which commits), as a login's is. A right password ends the charge
    and commits here: the caller may roll back what it does next (a new user's address that
    already exists), and a charge rolled back with it counted as a failed login for the whole
    window, so an admin who mistyped an address five times was locked out with the right
    password. On failure the caller commits (the audited failed login).
    """
    if not current:
        check_throttle(session, user.email, client)
        raise PasswordFieldError("current_password", "current password: enter it",
                                 hint="type the password you log in with now")
    attempt = start_attempt(session, user.email, client)
    ok = verify_password(current, user.password_hash)
    end_attempt(session, attempt)
    if not ok:
        record_failed_login(session, user.email, client, via=via)
        raise PasswordFieldError("current_password", "current password: it is wrong",
                                 hint="type the password you log in with now")
    session.commit()


def change_own_password(session: Session, user: User, *, current: str, new: str,
                        confirm: str, client: str = "") -> bool:
    """The account page's password change; raises PasswordFieldError naming the bad field.
    Returns True when the change also revoked the user's API token.

    A wrong current password is audited as a failed login: otherwise a stolen session cookie
    would be an unthrottled oracle for guessing the password. The caller commits (also on
    that failure, so the audit row stays).
    """
    confirm_current_password(session, user, current, client=client, via="password_change")
    try:
        check_password_strength(new, user.email)
    except ValidationError as exc:
        raise PasswordFieldError("new_password", f"new password: {exc.message}",
                                 hint=exc.hint) from None
    if new == current:
        raise PasswordFieldError("new_password",
                                 "new password: it is the same as the current one",
                                 hint="choose a different password")
    if new != confirm:
        raise PasswordFieldError("confirm_password",
                                 "confirm password: it does not match the new password",
                                 hint="type the new password twice, identically")
    return set_password(session, user, new, actor=user.email, client=client)


@dataclass(frozen=True)
class PasswordReset:
    """What ``reset_password`` did: the generated password (None when one was given) and
    whether an API token was revoked."""

    generated: str | None
    token_revoked: bool


def reset_password(session: Session, email: str, *, password: str | None = None,
                   actor: str = "system") -> PasswordReset:
    """`mmlr users password`: set a user's password without the current one (whoever runs the
    CLI already holds the database). The user's sessions all end and their API token is
    revoked; the caller commits."""
    address = normalise_email(email)
    user = session.exec(select(User).where(User.email == address)).first()
    if user is None:
        raise NotFoundError(f"no user {address}", hint="list users on the admin page, or add "
                            "one with `mmlr users add EMAIL --role ROLE`")
    password, generated = password_or_generated(password)
    revoked = set_password(session, user, password, actor=actor,
                           generated=generated is not None)
    return PasswordReset(generated=generated, token_revoked=revoked)
