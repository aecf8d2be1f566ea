"""E-mail of digests: MIME building and SMTP delivery (the only SMTP code of mmlr).

A digest e-mail is ``multipart/alternative``: a plain-text part, then a ``multipart/related``
part holding the HTML and its forest plots as inline images referenced by ``cid:``. The stored
digest HTML carries its images as ``data:`` URIs (self-contained for the outbox and for
``mmlr digest --out``); :func:`inline_images` turns them into related parts, because most mail
clients refuse ``data:`` images.

Sending goes through :mod:`smtplib` to the server of ``MMLR_SMTP_URL`` (parsed by
:func:`store.settings.parse_smtp_url`): ``smtps://`` uses implicit TLS, ``?starttls=true``
upgrades a plain connection, credentials in the URL trigger ``LOGIN``. Transient failures
(connection refused or reset, timeouts, 4xx replies) are retried with backoff; everything else
becomes a one-line :class:`~store.errors.DeliveryError`. The password never appears in a log
line or an error message.

Once the message data has gone out, a timeout or a closed connection no longer says it was
not delivered: the server may have stored it and failed only to answer. That is never retried
(four copies went out to a server that stored each one and answered late); the recipient's
outcome is *unknown* (``SendResult.unknown``), and the reply to the end of the data is waited
for up to :data:`DATA_END_TIMEOUT`, as RFC 5321 §4.5.3.2.6 asks of a client.
"""

from __future__ import annotations

import base64
import email.policy
import logging
import re
import smtplib
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import EmailPolicy, Policy
from email.utils import format_datetime, make_msgid
from html import escape
from typing import TYPE_CHECKING

from store.addresses import parse_sender
from store.errors import DeliveryError
from store.settings import SmtpTarget

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

log = logging.getLogger(__name__)

#: Seconds to wait before each retry of a transient failure (so 1 + 3 attempts in all).
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (1.0, 3.0, 9.0)

#: Seconds to wait at least for the reply to the end of the message data (RFC 5321
#: §4.5.3.2.6: 10 minutes; the server may be filtering or storing it). A longer
#: ``timeout=`` of MMLR_SMTP_URL is used when it is longer.
DATA_END_TIMEOUT = 600.0

# Only our own template writes ``src="data:…"``: user text is autoescaped, so a quote inside a
# PubMed title can never open an attribute that this pattern would match.
_DATA_URI = re.compile(
    r'src="data:image/(?P<subtype>png|jpeg|gif|svg\+xml);base64,(?P<data>[A-Za-z0-9+/=]+)"'
)


class _OneLineHeader(UnstructuredHeader, BaseHeader):
    """A header written as given, on one line. ``List-Unsubscribe`` holds one long URL with
    nowhere to fold: the default policy would turn it into an RFC 2047 encoded word, which
    mail clients do not read as a URL (no one-click unsubscribe). RFC 5322 allows 998
    characters a line; a value that is not ASCII still gets the standard treatment."""

    def fold(self, *, policy: Policy) -> str:
        value = str(self)
        if not value.isascii() or len(self.name) + len(value) + 2 > 998:
            return super().fold(policy=policy)
        return f"{self.name}: {value}{policy.linesep}"


def _mail_policy() -> EmailPolicy[EmailMessage]:
    # A registry of our own: mapping the type on the shared default registry would change
    # every message the process builds.
    registry = HeaderRegistry()
    registry.map_to_type("list-unsubscribe", _OneLineHeader)
    return email.policy.default.clone(header_factory=registry)


_POLICY = _mail_policy()


@dataclass(frozen=True)
class InlineImage:
    """An image carried inside the HTML part (``<img src="cid:{cid}">``)."""

    cid: str  # without angle brackets
    data: bytes
    subtype: str = "png"


@dataclass
class SendResult:
    """Outcome of one :func:`send_message` call."""

    message_id: str
    accepted: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # recipient -> one-line reason
    attempts: int = 1
    #: recipient -> why the outcome is unknown: the message data went out, then no reply
    #: came (a timeout, a closed connection). It may have arrived: never resent here.
    unknown: dict[str, str] = field(default_factory=dict)


def inline_images(html: str, *, domain: str = "mmlr") -> tuple[str, list[InlineImage]]:
    """Replace every ``data:`` image in ``html`` by a ``cid:`` reference; return the images."""
    images: list[InlineImage] = []

    def _swap(match: re.Match[str]) -> str:
        cid = f"img{len(images) + 1}.{make_msgid(domain=domain)[1:-1]}"
        images.append(InlineImage(cid=cid, data=base64.b64decode(match["data"]),
                                  subtype=match["subtype"]))
        return f'src="cid:{cid}"'

    return _DATA_URI.sub(_swap, html), images


def build_message(
    *, subject: str, text: str, html: str, sender: str, recipients: Sequence[str],
    images: Sequence[InlineImage] = (), domain: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """A ``multipart/alternative`` message (text + related HTML with inline images).

    ``headers`` are added as given (e.g. :func:`unsubscribe_headers`); a value with a line
    break is refused by the e-mail package, so none can inject another header.
    """
    name, address = parse_sender(sender)  # the one address of From, envelope, Message-ID
    msg = EmailMessage(policy=_POLICY)
    msg["Subject"] = subject
    msg["From"] = Address(display_name=name, addr_spec=address)
    # The outbox copy has no recipients yet; RFC 5322's empty group keeps the header valid.
    msg["To"] = ", ".join(recipients) if recipients else "undisclosed-recipients:;"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=domain or address.rsplit("@", 1)[1])
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(text, subtype="plain", charset="utf-8")
    msg.add_alternative(html, subtype="html", charset="utf-8")
    html_part = list(msg.iter_parts())[1]  # the HTML alternative, an EmailMessage
    for image in images:
        html_part.add_related(image.data, maintype="image", subtype=image.subtype,
                              cid=f"<{image.cid}>", disposition="inline",
                              filename=f"{image.cid.split('.', 1)[0]}.{_ext(image.subtype)}")
    return msg


def unsubscribe_headers(url: str) -> dict[str, str]:
    """The RFC 2369 / RFC 8058 pair that lets a mail client unsubscribe in one click: it
    POSTs ``List-Unsubscribe=One-Click`` to ``url`` (which must be https for the big
    providers to offer it, and the headers DKIM-signed by the sending server)."""
    return {"List-Unsubscribe": f"<{url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def with_unsubscribe_footer(html: str, text: str, url: str) -> tuple[str, str]:
    """(HTML, text) of a digest with a personal unsubscribe line at the end.

    Added at send time to a copy: the stored digest stays the same for every recipient.
    The line goes before ``</body>`` (after the whole digest) or at the very end.
    """
    line = (f'<p class="unsubscribe" style="margin:16px 0 0 0;font-size:12px;color:#777;">'
            f'You receive this digest as a subscriber. '
            f'<a href="{escape(url, quote=True)}" style="color:#1d4ed8;">Unsubscribe</a> '
            f'(one click, no login).</p>\n')
    cut = html.lower().rfind("</body>")
    html = html + line if cut < 0 else html[:cut] + line + html[cut:]
    text = text.rstrip("\n") + f"\n\nYou receive this digest as a subscriber. Unsubscribe: {url}\n"
    return html, text


def send_message(
    target: SmtpTarget, msg: EmailMessage, recipients: Sequence[str], *,
    retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
    data_end_timeout: float | None = None,
) -> SendResult:
    """Send ``msg`` to ``recipients``; retry transient failures; raise DeliveryError otherwise.

    Recipients the server refuses (5xx to ``RCPT``) do not abort the others: they come back in
    ``SendResult.refused``. So does what the server says about this message and these
    recipients only, once the retries are spent: every recipient deferred (4xx to ``RCPT``,
    greylisting) or the message refused at ``DATA`` (a content filter's 554). A
    DeliveryError is the server or the connection failing (down, timeout, login, sender),
    which the next message would meet too. A timeout or lost connection after the message
    data was sent comes back in ``SendResult.unknown``, not retried: the server may have
    stored the message. ``data_end_timeout``: the wait for the reply to the end of the data
    (default: the longer of MMLR_SMTP_URL's timeout and :data:`DATA_END_TIMEOUT`).

    This is the one way out of the module for text that came from the server, so it is the
    one place the password is masked: servers echo what they received (a ``535`` quoting
    the credentials), and masking here, not in each branch that quotes a reply, means a
    branch added later cannot forget it.
    """
    try:
        end_wait = data_end_timeout if data_end_timeout is not None else \
            max(target.timeout, DATA_END_TIMEOUT)
        result = _send_with_retries(target, msg, recipients, retry_delays, end_wait)
    except DeliveryError as exc:
        raise DeliveryError(_scrub(exc.message, target), hint=None if exc.hint is None
                            else _scrub(exc.hint, target), attempts=exc.attempts) from None
    result.refused = {addr: _scrub(reason, target) for addr, reason in result.refused.items()}
    result.unknown = {addr: _scrub(reason, target) for addr, reason in result.unknown.items()}
    return result


def _send_with_retries(
    target: SmtpTarget, msg: EmailMessage, recipients: Sequence[str],
    retry_delays: Sequence[float], data_end_timeout: float,
) -> SendResult:
    message_id = str(msg["Message-ID"])
    attempts = 0
    delays = list(retry_delays)
    while True:
        attempts += 1
        try:
            refused = _send_once(target, msg, recipients, data_end_timeout)
        except _Unknown as exc:
            log.warning("SMTP %s:%s: %s (Message-ID %s)", target.host, target.port,
                        _scrub(exc.reason, target), message_id)
            return SendResult(message_id=message_id, unknown=dict.fromkeys(recipients, exc.reason),
                              attempts=attempts)
        except DeliveryError as exc:
            exc.attempts = attempts  # the tries before this one failed too (retried)
            raise
        except _Refused as exc:
            return SendResult(message_id=message_id, refused=dict.fromkeys(recipients, exc.reason),
                              attempts=attempts)
        except _Transient as exc:
            if not delays:
                if exc.recipients:
                    # Deferred to the end: this message and its recipients, not the server.
                    return SendResult(
                        message_id=message_id, attempts=attempts,
                        refused=dict.fromkeys(recipients, f"deferred after {attempts} "
                                              f"attempts: {exc.reason}"))
                raise DeliveryError(
                    f"SMTP server {target.host}:{target.port} failed after {attempts} attempts: "
                    f"{exc.reason}",
                    hint=exc.hint
                    or "check that the server of MMLR_SMTP_URL is running and reachable",
                    attempts=attempts,
                ) from None
            delay = delays.pop(0)
            # Logged before send_message sees it, so masked here too. INFO, as a poll's
            # retries: in mmlr.log (and with -v), not three lines on the terminal before the
            # one that says whether the digest went out.
            log.info("SMTP %s:%s attempt %s failed (%s); retrying in %.1fs",
                        target.host, target.port, attempts, _scrub(exc.reason, target), delay)
            time.sleep(delay)
            continue
        accepted = [r for r in recipients if r not in refused]
        log.info("SMTP %s:%s accepted %s of %s recipients (Message-ID %s)", target.host,
                 target.port, len(accepted), len(recipients), message_id)
        return SendResult(message_id=message_id, accepted=accepted, refused=refused,
                          attempts=attempts)


# ----------------------------------------------------------------------------- internals
class _Transient(Exception):
    """Worth another try; ``recipients``: the server deferred this message's recipients or
    content (4xx to RCPT or DATA), not the connection."""

    def __init__(self, reason: str, *, recipients: bool = False,
                 hint: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.recipients = recipients
        self.hint = hint


class _Unknown(Exception):
    """The message data went out, then no reply came: it may have arrived (not retried)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Client(smtplib.SMTP):
    """smtplib's client that knows whether the message data went out (``data_sent``) and
    waits ``data_end_timeout`` seconds for the reply to its end, not the usual timeout."""

    data_end_timeout: float = DATA_END_TIMEOUT
    data_sent = False
    _data_replies: int | None = None

    def data(self, msg: ReadableBuffer | str) -> tuple[int, bytes]:
        # smtplib.data reads two replies: to DATA (354), then to the end of the data,
        # after the whole message was sent. The second is the one that may come late.
        self._data_replies = 0
        try:
            return super().data(msg)
        finally:
            self._data_replies = None

    def getreply(self) -> tuple[int, bytes]:
        if self._data_replies is not None:
            self._data_replies += 1
            if self._data_replies == 2:
                self.data_sent = True
                if self.sock is not None:
                    self.sock.settimeout(self.data_end_timeout)
        return super().getreply()


class _ClientSSL(_Client, smtplib.SMTP_SSL):
    """:class:`_Client` over implicit TLS (``smtps://``)."""


class _Refused(Exception):
    """The server refused this message for good (5xx to DATA): its recipients' failure."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _send_once(target: SmtpTarget, msg: EmailMessage, recipients: Sequence[str],
               data_end_timeout: float) -> dict[str, str]:
    try:
        smtp = _connect(target)
        smtp.data_end_timeout = data_end_timeout
    except (ConnectionError, TimeoutError, smtplib.SMTPConnectError,
            smtplib.SMTPServerDisconnected) as exc:
        # A bare TimeoutError is the TCP connection; smtplib words a timeout reading the
        # greeting as a disconnection. No greeting is rarely a slow server: a plain client
        # on a port that speaks TLS first waits for one forever, and retrying it timed out 4
        # times, then said to raise timeout=.
        if isinstance(exc, smtplib.SMTPServerDisconnected) and _timed_out(exc):
            raise _no_greeting(target) from None
        raise _connection_failed(exc, target) from None
    except ssl.SSLCertVerificationError as exc:
        raise _untrusted(exc, target) from None
    except ssl.SSLError as exc:
        raise DeliveryError(
            f"TLS handshake with SMTP server {target.host}:{target.port} failed: "
            f"{exc.reason or exc.__class__.__name__}",
            hint=f"the port may speak plain SMTP first: try smtp://{target.host}:"
                 f"{target.port}?starttls=true (usually port 587) in MMLR_SMTP_URL"
            if target.ssl else "check smtps:// versus ?starttls=true in MMLR_SMTP_URL",
        ) from None
    except OSError as exc:  # DNS failure, unreachable network: not worth retrying
        raise DeliveryError(
            f"cannot reach SMTP server {target.host}:{target.port}: {_describe_os_error(exc)}",
            hint="check the host and port in MMLR_SMTP_URL",
        ) from None
    try:
        try:
            _handshake(smtp, target)
            try:
                refused = smtp.send_message(msg, from_addr=_envelope_sender(msg),
                                            to_addrs=list(recipients))
            except smtplib.SMTPRecipientsRefused as exc:
                return _all_refused(exc, recipients, target)
            return {addr: _reply_text(code, text) for addr, (code, text) in refused.items()}
        finally:
            _quit(smtp, target)
    except (smtplib.SMTPServerDisconnected, ConnectionError, TimeoutError,
            ssl.SSLError) as exc:
        if smtp.data_sent:  # the server may have stored it: another copy would be a second
            raise _unknown(exc, smtp) from None
        if isinstance(exc, ssl.SSLCertVerificationError):  # after STARTTLS
            raise _untrusted(exc, target) from None
        if isinstance(exc, ssl.SSLError):  # STARTTLS accepted, then the handshake failed
            raise DeliveryError(
                f"TLS handshake with SMTP server {target.host}:{target.port} failed: "
                f"{exc.reason or exc.__class__.__name__}",
                hint="check smtps:// versus ?starttls=true in MMLR_SMTP_URL",
            ) from None
        raise _connection_failed(exc, target) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(
            f"SMTP login to {target.host}:{target.port} as {target.username!r} failed "
            f"({_reply_text(exc.smtp_code, exc.smtp_error)})",
            hint="check the user and password in MMLR_SMTP_URL",
        ) from None
    except smtplib.SMTPNotSupportedError as exc:
        # smtplib's own text ("SMTP AUTH extension not supported by server.") read as "does
        # not support SMTP AUTH extension not supported by server.": name the feature instead.
        if "AUTH" in str(exc):
            what, fix = ("logging in (SMTP AUTH)", "remove user:password from MMLR_SMTP_URL, "
                         "or add ?starttls=true if the server offers login only over TLS")
        elif "STARTTLS" in str(exc):
            what, fix = "STARTTLS", "remove ?starttls=true from MMLR_SMTP_URL, or use smtps://"
        else:
            what, fix = _one_line(str(exc)), "check ?starttls= and the credentials in " \
                "MMLR_SMTP_URL"
        raise DeliveryError(
            f"SMTP server {target.host}:{target.port} does not support {what}", hint=fix,
        ) from None
    except smtplib.SMTPSenderRefused as exc:
        if 400 <= exc.smtp_code < 500:
            raise _Transient(_reply_text(exc.smtp_code, exc.smtp_error)) from None
        raise DeliveryError(
            f"SMTP server {target.host}:{target.port} refused the sender {exc.sender!r} "
            f"({_reply_text(exc.smtp_code, exc.smtp_error)})",
            hint="set MMLR_MAIL_FROM to an address the server accepts",
        ) from None
    except smtplib.SMTPDataError as exc:
        # The reply to the message itself: a content filter's verdict on this copy (one per
        # recipient), not the server failing — the next recipient's copy is still tried.
        reason = _reply_text(exc.smtp_code, exc.smtp_error)
        if 400 <= exc.smtp_code < 500:
            raise _Transient(reason, recipients=True) from None
        raise _Refused(f"message rejected ({reason})") from None
    except smtplib.SMTPResponseException as exc:
        reason = _reply_text(exc.smtp_code, exc.smtp_error)
        if 400 <= exc.smtp_code < 500:
            raise _Transient(reason) from None
        raise DeliveryError(f"SMTP server {target.host}:{target.port} rejected the digest "
                            f"({reason})") from None
    except smtplib.SMTPException as exc:
        # What else smtplib raises says that the server and MMLR_SMTP_URL do not fit together:
        # its bare SMTPExceptions both come from login ("No suitable authentication method
        # found" from a server offering AUTH XOAUTH2 only; a challenge loop). Retrying cannot
        # change that, so it fails now (a failed delivery row; the digest is kept for
        # `mmlr digest --send` once the setting is fixed).
        raise DeliveryError(
            f"SMTP exchange with {target.host}:{target.port} failed: "
            f"{_one_line(str(exc)).rstrip('.') or exc.__class__.__name__}"
            f"{_auth_offer(smtp, target)}",
            hint="check MMLR_SMTP_URL against what the server supports",
        ) from None


def _connect(target: SmtpTarget) -> _Client:
    if target.ssl:
        return _ClientSSL(target.host, target.port, timeout=target.timeout,
                          context=ssl.create_default_context())
    return _Client(target.host, target.port, timeout=target.timeout)


def _quit(smtp: _Client, target: SmtpTarget) -> None:
    """End the session; what QUIT meets changes nothing (the message's fate is known by
    now: a reply to QUIT other than 221 once read as the message failing, and was retried)."""
    try:
        if smtp.sock is not None:
            smtp.sock.settimeout(target.timeout)
            smtp.docmd("QUIT")  # not quit(): it forgets what the server offered (_auth_offer)
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        smtp.close()


def _unknown(exc: BaseException, smtp: _Client) -> _Unknown:
    what = (f"timed out after {smtp.data_end_timeout:g} s waiting for the server's reply to "
            "the message" if _timed_out(exc) else
            f"the connection was lost waiting for the server's reply to the message "
            f"({_describe_os_error(exc)})")
    return _Unknown(f"unknown whether it arrived: the message was sent, then {what}")


def _handshake(smtp: smtplib.SMTP, target: SmtpTarget) -> None:
    smtp.ehlo()
    if target.starttls and not target.ssl:
        smtp.starttls(context=ssl.create_default_context())
        smtp.ehlo()
    if target.username:
        password = target.password or ""
        # smtplib encodes credentials as ASCII and would raise UnicodeEncodeError mid-login.
        if not (target.username.isascii() and password.isascii()):
            raise DeliveryError(
                f"the user or password for SMTP server {target.host}:{target.port} is not "
                "ASCII, which SMTP login (PLAIN, LOGIN, CRAM-MD5) cannot send",
                hint="use an ASCII user and password in MMLR_SMTP_URL")
        smtp.login(target.username, password)


def _auth_offer(smtp: smtplib.SMTP, target: SmtpTarget) -> str:
    """What the server offers to log in with, when a login was attempted (else "")."""
    offered = " ".join(smtp.esmtp_features.get("auth", "").split())
    if not target.username or not smtp.has_extn("auth"):
        return ""
    return (f" (the server offers AUTH {offered or 'without a mechanism'}; mmlr logs in "
            "with PLAIN, LOGIN or CRAM-MD5)")


def _all_refused(
    exc: smtplib.SMTPRecipientsRefused, recipients: Sequence[str], target: SmtpTarget,
) -> dict[str, str]:
    refused = {addr: _reply_text(code, text) for addr, (code, text) in exc.recipients.items()}
    codes = [code for code, _ in exc.recipients.values()]
    if codes and all(400 <= c < 500 for c in codes):
        # Greylisting and full mailboxes pass: retried, then these recipients' failure.
        raise _Transient("; ".join(refused.values()), recipients=True) from None
    return refused or {r: "refused" for r in recipients}


def _reply_text(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(str(text).split())}".strip()


def _connection_failed(exc: BaseException, target: SmtpTarget) -> _Transient:
    """A lost or refused connection, worth another try; a timeout says how long was waited
    and which setting sets it (a slow server needs a longer one, not a running check)."""
    if _timed_out(exc):
        return _Transient(
            f"timed out after {target.timeout:g} s waiting for the server's reply",
            hint="the server is slow or stalled; raise timeout= in MMLR_SMTP_URL "
                 f"(now {target.timeout:g} s) if it is just slow")
    return _Transient(_describe_os_error(exc))


def _no_greeting(target: SmtpTarget) -> DeliveryError:
    """The server accepted the connection and said nothing (not retried: see _send_once)."""
    where, wait = f"{target.host}:{target.port}", f"{target.timeout:g} s"
    if target.ssl:
        return DeliveryError(
            f"SMTP server {where} sent no greeting within {wait}",
            hint="the server is slow or stalled; raise timeout= in MMLR_SMTP_URL "
                 f"(now {wait}) if it is just slow")
    plain = "smtp://…?starttls=true" if target.starttls else "smtp://"
    if target.port == 465:
        return DeliveryError(
            f"SMTP server {where} sent no greeting within {wait}: port 465 expects TLS from "
            f"the first byte, and MMLR_SMTP_URL ({plain}) starts in plain text",
            hint=f"write smtps://{target.host}:465 in MMLR_SMTP_URL (no ?starttls=)")
    return DeliveryError(
        f"SMTP server {where} sent no greeting within {wait}: the port may expect TLS from "
        f"the first byte (smtps://, usually port 465), while MMLR_SMTP_URL ({plain}) starts "
        "in plain text",
        hint=f"if it does, write smtps://{target.host}:{target.port} in MMLR_SMTP_URL (no "
             f"?starttls=); if the server is just slow, raise timeout= (now {wait})")


def _untrusted(exc: ssl.SSLCertVerificationError, target: SmtpTarget) -> DeliveryError:
    """A certificate that does not verify: what OpenSSL says of it, and how to trust it."""
    why = _one_line(str(exc.verify_message or exc.reason or "verification failed"))
    if exc.verify_code in _NAME_MISMATCH:
        hint = (f"write in MMLR_SMTP_URL the host name the certificate is for, not "
                f"{target.host!r}")
    else:
        hint = ("to trust a private CA or a self-signed certificate, set SSL_CERT_FILE in "
                "mmlr's environment to a PEM file holding it and the public CAs: the system's "
                "bundle with it appended, as the calls to NCBI read that file too")
    return DeliveryError(
        f"the TLS certificate of SMTP server {target.host}:{target.port} is not trusted: {why}",
        hint=hint)


#: OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH: the
#: certificate is valid, for another name.
_NAME_MISMATCH = (62, 64)


def _timed_out(exc: BaseException) -> bool:
    # smtplib turns a read timeout into SMTPServerDisconnected("Connection unexpectedly
    # closed: timed out"): the text is all that is left of the TimeoutError.
    return isinstance(exc, TimeoutError) or (
        isinstance(exc, smtplib.SMTPServerDisconnected) and str(exc).endswith("timed out"))


def _describe_os_error(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the SMTP server running?)"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return "server closed the connection"
    text = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
    return " ".join(str(text).split())


def _scrub(text: str, target: SmtpTarget) -> str:
    # Servers sometimes echo what they received; the password must never travel further.
    # Also masked as it went over the wire: base64 alone (AUTH LOGIN) and within the
    # "\0user\0password" blob (AUTH PLAIN), since a server may quote the line it rejected.
    if not target.password:
        return text
    forms = [target.password]
    if target.password.isascii() and (target.username or "").isascii():
        forms += [base64.b64encode(target.password.encode()).decode(),
                  base64.b64encode(f"\0{target.username}\0{target.password}".encode()).decode()]
    # The longest first: a short form can occur inside a long one, and masking it there
    # first would leave the rest of the long one unmasked.
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _envelope_sender(msg: EmailMessage) -> str:
    """``MAIL FROM``: the address of the one From mailbox build_message wrote."""
    [mailbox] = msg["From"].addresses
    return str(mailbox.addr_spec)


def _ext(subtype: str) -> str:
    return {"svg+xml": "svg", "jpeg": "jpg"}.get(subtype, subtype)
