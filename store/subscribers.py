"""Digest subscribers: adding, listing, (de)activating, the unsubscribe token, and who gets
a digest.

Recipients of a digest (:func:`digest_recipients`) are the fixed ``MMLR_DIGEST_TO`` addresses
followed by the active subscribers, each address once (addresses are compared lower-case).
The fixed addresses are configuration: the app cannot edit the environment, so they get no
unsubscribe link (a link that could not work would lie); an address in both lists counts as
fixed. Subscribers get a personal link and the RFC 8058 one-click headers.

**The unsubscribe token** is ``"<id>.<mac>"``, where ``mac`` is HMAC-SHA256 over the
subscriber's id and address, keyed by a key derived from ``MMLR_SECRET_KEY`` for this purpose
only. Chosen over a stored random token because the link must be put into every digest at
send time: a row can only keep a *hash* of a random token (the database must not hold working
capabilities), so the raw token could not be rebuilt for the next digest. The HMAC needs no
stored secret per row, is the same in every digest (an old e-mail's link keeps working) and is
checked in constant time. The address is inside the MAC, so a token cannot move to another
row. Rotating ``MMLR_SECRET_KEY`` invalidates every link already sent (the next digest carries
new ones). Tokens are never logged.

Rows are never deleted (``store.models.Subscriber``): unsubscribing deactivates, and every
change is audited (``subscriber.add``, ``subscriber.unsubscribe``, ``subscriber.resubscribe``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import quote

from sqlmodel import Session, col, select

from store.addresses import check_email, normalise_email
from store.audit import audit
from store.errors import NotFoundError, ValidationError
from store.models import Subscriber, utcnow

log = logging.getLogger(__name__)

#: Path of the web app's unsubscribe page (``screening.web.routes_unsubscribe``).
UNSUBSCRIBE_PATH = "/unsubscribe"
_TOKEN_PURPOSE = b"mmlr.unsubscribe.v1"
_TOKEN = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]{43})")  # used with fullmatch


class UnsubscribeLinkError(ValidationError):
    """The token of an unsubscribe link is malformed, altered, or for no subscriber (HTTP 400)."""

    def __init__(self) -> None:
        super().__init__("this unsubscribe link is not valid",
                         hint="open the link from the most recent digest e-mail, in full; "
                         "or ask the review team to unsubscribe you")


@dataclass(frozen=True)
class Recipient:
    """One address a digest goes to; ``token`` is set for subscribers only (their link)."""

    address: str
    token: str | None = None


# ----------------------------------------------------------------------------- queries
def find_subscriber(session: Session, email: str) -> Subscriber | None:
    return session.exec(
        select(Subscriber).where(Subscriber.email == normalise_email(email))).first()


def get_subscriber(session: Session, subscriber_id: int) -> Subscriber:
    row = session.get(Subscriber, subscriber_id)
    if row is None:
        raise NotFoundError(f"subscriber {subscriber_id} does not exist")
    return row


def list_subscribers(session: Session, *, active_only: bool = False) -> list[Subscriber]:
    stmt = select(Subscriber).order_by(col(Subscriber.email))
    if active_only:
        stmt = stmt.where(col(Subscriber.active).is_(True))
    return list(session.exec(stmt).all())


def add_subscriber(session: Session, email: str, *, actor: str,
                   resubscribe: bool = False) -> Subscriber:
    """Subscribe ``email``; the caller commits.

    Raises ValidationError for a malformed address or one already subscribed. An address that
    unsubscribed is refused too unless ``resubscribe`` (the person asked to be added again):
    someone who left must not come back by a routine re-import of an old list.
    """
    address = check_email(email)
    existing = find_subscriber(session, address)
    if existing is not None and existing.active:
        raise ValidationError(f"{address} is already subscribed",
                              hint="each address receives the digest once")
    if existing is not None:
        if not resubscribe:
            when = (f" on {existing.unsubscribed_at:%Y-%m-%d}"
                    if existing.unsubscribed_at else "")
            raise ValidationError(
                f"{address} unsubscribed{when}",
                hint="subscribe them again only if they asked to: use Reactivate on the "
                "subscribers page or `mmlr subscribers add EMAIL --resubscribe`")
        set_active(session, existing, True, actor=actor, via="add")
        return existing
    row = Subscriber(email=address, created_by=actor)
    session.add(row)
    session.flush()  # the id goes into the audit row and the token
    audit(session, "subscriber.add", actor=actor, object_type="subscriber", object_id=address)
    log.info("subscriber #%s added by %s", row.id, actor)
    return row


def set_active(session: Session, subscriber: Subscriber, active: bool, *, actor: str,
               via: str) -> bool:
    """(Re)activate or unsubscribe; return whether anything changed. The caller commits.

    ``via`` says how (``admin``, ``cli``, ``link``, ``one-click``, ``add``) for the audit trail.
    Doing it twice changes nothing the second time and audits nothing.
    """
    if subscriber.active == active:
        return False
    subscriber.active = active
    subscriber.unsubscribed_at = None if active else utcnow()
    session.add(subscriber)
    audit(session, "subscriber.resubscribe" if active else "subscriber.unsubscribe",
          actor=actor, object_type="subscriber", object_id=subscriber.email, via=via)
    log.info("subscriber #%s %s by %s via %s", subscriber.id,
             "reactivated" if active else "unsubscribed", actor, via)
    return True


# ----------------------------------------------------------------------------- the link
def _mac(subscriber_id: int, email: str, secret: str) -> str:
    # A key of its own: the secret key also signs session cookies, and a value signed for
    # one purpose must never be accepted for another.
    key = hmac.new(secret.encode("utf-8"), _TOKEN_PURPOSE, hashlib.sha256).digest()
    digest = hmac.new(key, f"{subscriber_id}\n{email}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def unsubscribe_token(subscriber: Subscriber, secret: str) -> str:
    """The capability that unsubscribes this subscriber (see the module doc)."""
    if subscriber.id is None:
        raise ValueError("a subscriber needs an id (flush it first) before it has a token")
    return f"{subscriber.id}.{_mac(subscriber.id, subscriber.email, secret)}"


def subscriber_for_token(session: Session, token: str | None, secret: str) -> Subscriber:
    """The subscriber a token belongs to, active or not; UnsubscribeLinkError otherwise."""
    match = _TOKEN.fullmatch(token or "")  # fullmatch: "$" would let a trailing newline in
    if match is None:
        raise UnsubscribeLinkError()
    row = session.get(Subscriber, int(match.group(1)))
    if row is None or row.id is None \
            or not hmac.compare_digest(_mac(row.id, row.email, secret), match.group(2)):
        raise UnsubscribeLinkError()
    return row


def unsubscribe_url(base_url: str, token: str) -> str:
    """The personal link of a digest: ``{base_url}/unsubscribe?t=TOKEN``."""
    return f"{base_url.rstrip('/')}{UNSUBSCRIBE_PATH}?t={quote(token, safe='')}"


def mask_email(address: str) -> str:
    """``a***@example.org``: enough for people to recognise their address on a page anyone
    holding the link can open, without spelling it out."""
    local, at, domain = address.partition("@")
    return f"{local[:1]}***{at}{domain}" if at else "***"


# ----------------------------------------------------------------------------- recipients
def recipient_addresses(session: Session, fixed: Iterable[str]) -> set[str]:
    """The addresses the next digest goes to (as :func:`digest_recipients`, lower-case),
    without their tokens: for asking whether someone is still a recipient."""
    return {normalise_email(a) for a in fixed if normalise_email(a)} | {
        row.email for row in list_subscribers(session, active_only=True)}


def digest_recipients(session: Session, fixed: Iterable[str],
                      secret: Callable[[], str]) -> list[Recipient]:
    """Who gets the next digest: ``fixed`` (``MMLR_DIGEST_TO``, no link) then the active
    subscribers (with their token), each address once, lower-case.

    ``secret`` is called only when a subscriber needs a token, so an installation without
    subscribers behaves exactly as before.
    """
    out: list[Recipient] = []
    seen: set[str] = set()
    for raw in fixed:
        address = normalise_email(raw)
        if address and address not in seen:
            seen.add(address)
            out.append(Recipient(address))
    key: str | None = None
    for row in list_subscribers(session, active_only=True):
        if row.email in seen:
            continue
        seen.add(row.email)
        key = key if key is not None else secret()
        out.append(Recipient(row.email, unsubscribe_token(row, key)))
    return out
