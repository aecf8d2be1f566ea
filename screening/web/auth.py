"""Users, passwords, API tokens and the login throttle.

Passwords are hashed with scrypt (memory-hard, in the standard library) and a per-user random
salt; verification is constant-time. API tokens are long random strings, so a plain SHA-256
of the token is enough to store them (there is nothing to brute-force), and a SHA-256 lets the
token be looked up by an indexed equality query.

The throttle counts failed logins per account in the audit log (``auth.login_failed``) rather
than in process memory, so it holds across restarts and across several web instances.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from datetime import timedelta

from sqlalchemy import func
from sqlmodel import Session, select

from store.audit import audit
from store.errors import AuthError, ValidationError
from store.models import AuditLog, User, utcnow

log = logging.getLogger(__name__)

ROLES: tuple[str, ...] = ("viewer", "curator", "admin")
_RANK = {role: i for i, role in enumerate(ROLES)}

# scrypt cost: 2**14 x 8 uses 16 MiB and ~50 ms; OWASP's minimum for interactive logins.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P, _SCRYPT_LEN = 2**14, 8, 1, 32
MIN_PASSWORD_LENGTH = 8
MAX_FAILED_LOGINS = 5
THROTTLE_WINDOW = timedelta(minutes=15)
TOKEN_PREFIX = "mmlr_"  # noqa: S105 - a public prefix, not a secret

# Deliberately permissive (e-mail syntax is a swamp) but it must have one @, no spaces and no
# characters that would break HTML or headers. "admin@localhost" is valid: it is the default.
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"
)


class ThrottledError(AuthError):
    """Too many failed logins for one account: HTTP 429 until the window has passed."""

    http_status = 429


# ----------------------------------------------------------------------------- passwords
def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R,
                            p=_SCRYPT_P, dklen=_SCRYPT_LEN)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a ``hash_password`` string."""
    try:
        scheme, n, r, p, salt_hex, digest_hex = stored.split("$")
        if scheme != "scrypt":
            return False
        salt, expected = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
        digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=int(n), r=int(r),
                                p=int(p), dklen=len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(digest, expected)


# A hash of nothing in particular, checked when the account does not exist so that the
# response time does not tell an attacker which e-mail addresses have accounts.
_DUMMY_HASH = "scrypt$16384$8$1$" + "00" * 16 + "$" + "00" * 32


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"the password is too short ({len(password)} characters)",
            hint=f"use at least {MIN_PASSWORD_LENGTH} characters",
        )


# ----------------------------------------------------------------------------- tokens
def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_api_token(session: Session, user: User, *, actor: str) -> str:
    """Give ``user`` a new API token (replacing any old one); the token is shown once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    user.api_token_hash = hash_token(token)
    session.add(user)
    audit(session, "user.token_issued", actor=actor, object_type="user", object_id=user.email)
    return token


def user_for_token(session: Session, token: str) -> User:
    if not token.startswith(TOKEN_PREFIX):
        raise AuthError("the API token is malformed", hint="send Authorization: Bearer mmlr_…")
    user = session.exec(select(User).where(User.api_token_hash == hash_token(token))).first()
    if user is None or not user.active:
        raise AuthError("the API token is not valid", hint="ask an admin to issue a new token")
    return user


# ----------------------------------------------------------------------------- users
def normalise_email(email: str) -> str:
    return email.strip().lower()


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
    address = normalise_email(email)
    if not _EMAIL.match(address) or len(address) > 254:
        raise ValidationError(f"{email!r} is not an e-mail address", hint="e.g. jane@example.org")
    check_role(role)
    existing = session.exec(select(User).where(User.email == address)).first()
    if existing is not None:
        raise ValidationError(f"a user {address} already exists",
                              hint="change their role on the admin page instead")
    generated = password is None
    if password is None:
        password = generate_password()
    check_password_strength(password)
    session.add(User(email=address, role=role, password_hash=hash_password(password)))
    session.flush()
    audit(session, "user.add", actor=actor, object_type="user", object_id=address, role=role)
    log.info("user %s added with role %s", address, role)
    return password if generated else None


def recent_failures(session: Session, email: str) -> int:
    since = utcnow() - THROTTLE_WINDOW
    stmt = select(func.count()).select_from(AuditLog).where(
        AuditLog.action == "auth.login_failed", AuditLog.object_id == email, AuditLog.at >= since)
    return int(session.exec(stmt).one())


def authenticate(session: Session, email: str, password: str, *, client: str = "") -> User:
    """Return the active user with these credentials or raise AuthError / ThrottledError.

    Every failure is audited (and committed by the caller); the throttle refuses even a correct
    password while the account has too many recent failures, so guessing cannot continue.
    """
    address = normalise_email(email)
    if recent_failures(session, address) >= MAX_FAILED_LOGINS:
        raise ThrottledError(
            f"too many failed logins for {address}",
            hint=f"wait {int(THROTTLE_WINDOW.total_seconds() // 60)} minutes and try again",
        )
    user = session.exec(select(User).where(User.email == address)).first()
    ok = verify_password(password, user.password_hash if user else _DUMMY_HASH)
    if user is None or not ok or not user.active:
        audit(session, "auth.login_failed", actor=address or "anonymous", object_type="login",
              object_id=address, client=client)
        log.info("failed login for %s from %s", address, client or "?")
        raise AuthError("wrong e-mail or password")
    user.last_login_at = utcnow()
    session.add(user)
    audit(session, "auth.login", actor=address, object_type="user", object_id=address,
          client=client)
    return user
