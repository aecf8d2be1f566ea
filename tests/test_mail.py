"""Mail delivery through a real SMTP server (aiosmtpd on 127.0.0.1) and MIME structure."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import email
import io
import math
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from conftest import PG_URL, free_port
from sqlmodel import select

from reports.digest import build_digest, deliver_digest
from reports.mail import InlineImage, build_message, inline_images, send_message
from store.errors import DeliveryError, LockedError
from store.models import Delivery, PooledResult, Record
from store.settings import Settings, parse_smtp_url

FAST = (0.01, 0.01)  # retry delays for tests: the behaviour is the same, only shorter
XSS_TITLE = 'Maintenance <script>alert(1)</script> <img src=x onerror="alert(2)"> trial'


class Capture:
    """aiosmtpd handler that keeps each accepted message and can misbehave on demand."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.senders: list[str] = []  # MAIL FROM of each accepted message
        self.defer_data = 0  # answer 451 to DATA this many times
        self.refuse = "refused"  # recipients containing this get 550
        self.hold_first = False  # keep the first DATA waiting until ``release`` is set
        self.holding = threading.Event()
        self.release = threading.Event()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if self.refuse and self.refuse in address:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if self.defer_data > 0:
            self.defer_data -= 1
            return "451 4.3.0 try again later"
        if self.hold_first:
            self.hold_first = False
            self.holding.set()
            while not self.release.is_set():  # without blocking the server's event loop
                await asyncio.sleep(0.01)
        msg = email.message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), msg))  # type: ignore[arg-type]
        self.senders.append(envelope.mail_from)
        return "250 OK queued"


def _authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"digest", b"s3cret-pa55")
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535


@pytest.fixture
def smtp() -> Iterator[tuple[Capture, int]]:
    handler = Capture()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def smtp_auth() -> Iterator[tuple[Capture, int]]:
    handler = Capture()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port,
                            authenticator=_authenticator, auth_require_tls=False)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def with_settings(ctx, **changes: Any):  # type: ignore[no-untyped-def]
    return dataclasses.replace(ctx, settings=Settings(**{**ctx.settings.model_dump(), **changes}))


def png_bytes() -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot([0, 1], [1, 0])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def seed(ctx) -> None:  # type: ignore[no-untyped-def]
    with ctx.sessions() as s:
        s.add(Record(pmid=90000001, title=XSS_TITLE, journal="Blood", year=2024, flagged=True,
                     score=0.9))
        s.add(PooledResult(analysis_key="len", analysis_label="Lenalidomide, PFS", k=1,
                           estimate=math.log(0.5), ci_low=math.log(0.4), ci_high=math.log(0.6),
                           inputs=[{"trial": "CALGB 100104", "yi": math.log(0.5), "sei": 0.1,
                                    "hr": 0.5, "ci_low": 0.4, "ci_high": 0.6, "weight": 100.0}]))
        s.commit()


def parts(msg: EmailMessage) -> tuple[str, str, list[EmailMessage]]:
    assert msg.get_content_type() == "multipart/alternative"
    plain, related = msg.get_payload()  # type: ignore[misc]
    assert plain.get_content_type() == "text/plain"
    if related.get_content_type() == "text/html":
        return plain.get_content(), related.get_content(), []
    assert related.get_content_type() == "multipart/related"
    html, *images = related.get_payload()
    assert html.get_content_type() == "text/html"
    return plain.get_content(), html.get_content(), images


# ----------------------------------------------------------------------------- MIME
def test_inline_images_become_cid_related_parts() -> None:
    png = png_bytes()
    html = ('<p>plot</p><img class="forest" src="data:image/png;base64,'
            + base64.b64encode(png).decode() + '" alt="x">')
    cid_html, images = inline_images(html)
    assert "data:image" not in cid_html and len(images) == 1
    msg = build_message(subject="S", text="plain", html=cid_html, sender="mmlr@example.org",
                        recipients=["a@example.org"], images=images)
    raw = email.message_from_bytes(msg.as_bytes(), policy=policy.default)
    text, body, attached = parts(raw)  # type: ignore[arg-type]
    assert text.strip() == "plain"
    [image] = attached
    assert image.get_content_type() == "image/png"
    assert image.get_content() == png
    cid = image["Content-ID"].strip("<>")
    assert f'src="cid:{cid}"' in body
    assert raw["Message-ID"].endswith("@example.org>") and raw["Date"]


def test_user_text_cannot_smuggle_an_inline_image() -> None:
    # An escaped quote never forms the src="data:…" our template writes.
    html = '<p>&lt;img src=&#34;data:image/png;base64,AAAA&#34;&gt;</p>'
    assert inline_images(html) == (html, [])


# ----------------------------------------------------------------------------- delivery
def test_digest_sent_to_each_recipient_once(ctx, smtp) -> None:  # type: ignore[no-untyped-def]
    handler, port = smtp
    sctx = with_settings(ctx, smtp_url=f"smtp://127.0.0.1:{port}",
                         digest_to="ana@example.org, bo@example.org",
                         mail_from="Living review <review@example.org>")
    seed(ctx)
    digest = build_digest(sctx)
    lines = deliver_digest(sctx, digest, retry_delays=FAST)
    assert len(lines) == 2 and all("sent to" in line for line in lines)
    assert sorted(r for rcpts, _ in handler.messages for r in rcpts) == [
        "ana@example.org", "bo@example.org"]
    rcpts, msg = handler.messages[0]
    assert msg["Subject"] == digest.subject
    assert msg["From"] == "Living review <review@example.org>" and msg["To"] == rcpts[0]
    text, html, images = parts(msg)
    assert XSS_TITLE in text  # plain text is shown as text, never interpreted
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=" in html
    for image in images:  # forest plots, when reports.forest renders them
        assert f'src="cid:{image["Content-ID"].strip("<>")}"' in html
    assert "data:image" not in html
    with ctx.sessions() as s:
        rows = s.exec(select(Delivery).order_by(Delivery.id)).all()
    assert [(r.channel, r.recipient, r.status, r.attempts) for r in rows] == [
        ("smtp", "ana@example.org", "sent", 1), ("smtp", "bo@example.org", "sent", 1)]
    assert {r.message_id for r in rows} == {m["Message-ID"] for _, m in handler.messages}
    # the same digest again: nothing is resent
    again = deliver_digest(sctx, build_digest(sctx), retry_delays=FAST)
    assert all("already sent" in line for line in again) and len(again) == 2
    assert len(handler.messages) == 2


def test_from_envelope_and_message_id_use_the_one_sender_address(ctx, smtp) -> None:  # type: ignore[no-untyped-def]
    handler, port = smtp
    sctx = with_settings(ctx, smtp_url=f"smtp://127.0.0.1:{port}", digest_to="a@example.org",
                         mail_from='"Review, team" <review@lab.example.org>')
    deliver_digest(sctx, build_digest(sctx), retry_delays=FAST)
    [(_, msg)] = handler.messages
    assert handler.senders == ["review@lab.example.org"]
    [mailbox] = msg["From"].addresses
    assert (mailbox.display_name, mailbox.addr_spec) == ("Review, team", "review@lab.example.org")
    assert msg["Message-ID"].endswith("@lab.example.org>")


def test_a_digest_being_delivered_elsewhere_is_not_sent_twice(ctx, smtp) -> None:  # type: ignore[no-untyped-def]
    # Two workers (or the worker and `mmlr digest --send`) delivering the same digest at
    # once: the second must not send to a recipient whose copy is still in flight.
    handler, port = smtp
    sctx = with_settings(ctx, smtp_url=f"smtp://127.0.0.1:{port}", digest_to="ana@example.org")
    seed(ctx)
    digest = build_digest(sctx)
    handler.hold_first = True
    first: list[list[str]] = []
    worker = threading.Thread(target=lambda: first.append(
        deliver_digest(sctx, digest, retry_delays=FAST)))
    worker.start()
    try:
        assert handler.holding.wait(60), "the first delivery never reached the server"
        with pytest.raises(LockedError, match="digest-delivery"):
            deliver_digest(sctx, build_digest(sctx), retry_delays=FAST)
    finally:
        handler.release.set()
        worker.join(60)
    assert len(first) == 1 and "sent to ana@example.org" in first[0][0]
    assert [rcpts for rcpts, _ in handler.messages] == [["ana@example.org"]]
    with ctx.sessions() as s:
        assert [(r.recipient, r.status) for r in s.exec(select(Delivery)).all()] == [
            ("ana@example.org", "sent")]
    # once the first is done, a retry finds the copy sent and sends nothing
    assert "already sent" in deliver_digest(sctx, digest, retry_delays=FAST)[0]
    assert len(handler.messages) == 1


def test_forest_images_travel_as_cid(ctx, smtp) -> None:  # type: ignore[no-untyped-def]
    import importlib.util

    from conftest import need

    need(importlib.util.find_spec("reports.forest") is not None, "reports.forest (H3) is missing")
    handler, port = smtp
    sctx = with_settings(ctx, smtp_url=f"smtp://127.0.0.1:{port}", digest_to="a@example.org")
    seed(ctx)
    deliver_digest(sctx, build_digest(sctx), retry_delays=FAST)
    [(_, msg)] = handler.messages
    _, html, images = parts(msg)
    assert len(images) == 1 and images[0].get_content_type() == "image/png"
    assert images[0].get_content().startswith(b"\x89PNG")
    assert f'src="cid:{images[0]["Content-ID"].strip("<>")}"' in html


def test_server_down_fails_clearly_and_the_digest_can_be_resent(ctx, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level("INFO", logger="reports.mail")  # the retries are logged at INFO
    port = free_port()  # nothing listens here yet
    sctx = with_settings(ctx, smtp_url=f"smtp://digest:s3cret-pa55@127.0.0.1:{port}",
                         digest_to="ana@example.org")
    seed(ctx)
    digest = build_digest(sctx)
    line = _failed_delivery(sctx, digest)
    assert "connection refused" in line and "after 3 attempts" in line
    assert "reached 0 of 1 recipients" in line and "\n" not in line
    assert "s3cret-pa55" not in line and "s3cret-pa55" not in caplog.text
    with ctx.sessions() as s:
        [row] = s.exec(select(Delivery)).all()
    assert (row.status, row.recipient, row.attempts) == ("failed", "ana@example.org", 3)
    assert "connection refused" in (row.error or "")
    # the server comes up: the kept digest goes out, and the same row records it
    handler = Capture()
    controller = Controller(handler, hostname="127.0.0.1", port=port,
                            authenticator=_authenticator, auth_require_tls=False)
    controller.start()
    try:
        [sent] = deliver_digest(sctx, digest, retry_delays=FAST)
    finally:
        controller.stop()
    assert "sent to ana@example.org" in sent and len(handler.messages) == 1
    with ctx.sessions() as s:
        [row] = s.exec(select(Delivery)).all()
    assert (row.status, row.attempts, row.error) == ("sent", 4, None)


def test_the_attempts_recorded_are_the_attempts_its_error_speaks_of(ctx) -> None:  # type: ignore[no-untyped-def]
    # The row said attempts=1 while its error said "failed after 4 attempts".
    sctx = with_settings(ctx, smtp_url=f"smtp://127.0.0.1:{free_port()}",
                         digest_to="a@example.org")
    line = _failed_delivery(sctx, retry_delays=(0.01, 0.01, 0.01))
    assert "failed after 4 attempts" in line
    with ctx.sessions() as s:
        [row] = s.exec(select(Delivery)).all()
    assert row.attempts == 4 and "failed after 4 attempts" in (row.error or "")


def test_server_down_is_tried_once_not_once_per_recipient(ctx, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level("INFO", logger="reports.mail")
    sctx = with_settings(ctx, smtp_url=f"smtp://127.0.0.1:{free_port()}",
                         digest_to="a@example.org,b@example.org,c@example.org")
    with pytest.raises(DeliveryError, match="reached 0 of 3 recipients"):
        deliver_digest(sctx, build_digest(sctx), retry_delays=FAST)
    assert caplog.text.count("retrying in") == 2  # one round of retries, not three
    with ctx.sessions() as s:
        rows = s.exec(select(Delivery)).all()
    assert sorted((r.recipient, r.status) for r in rows) == [
        ("a@example.org", "failed"), ("b@example.org", "failed"), ("c@example.org", "failed")]


def test_transient_4xx_is_retried(ctx, smtp) -> None:  # type: ignore[no-untyped-def]
    handler, port = smtp
    handler.defer_data = 1
    sctx = with_settings(ctx, smtp_url=f"smtp://127.0.0.1:{port}", digest_to="a@example.org")
    [line] = deliver_digest(sctx, build_digest(sctx), retry_delays=FAST)
    assert "sent to a@example.org" in line and len(handler.messages) == 1
    with ctx.sessions() as s:
        [row] = s.exec(select(Delivery)).all()
    assert (row.status, row.attempts) == ("sent", 2)


def test_persistent_4xx_gives_up_after_the_retries(smtp) -> None:  # type: ignore[no-untyped-def]
    handler, port = smtp
    handler.defer_data = 10
    msg = build_message(subject="s", text="t", html="<p>h</p>", sender="m@example.org",
                        recipients=["a@example.org"])
    # A deferral of this message is its recipient's failure, not the server's: the caller
    # goes on to the next recipient (it raised DeliveryError, which stopped the whole run).
    result = send_message(parse_smtp_url(f"smtp://127.0.0.1:{port}"), msg, ["a@example.org"],
                          retry_delays=FAST)
    assert result.refused == {"a@example.org": "deferred after 3 attempts: 451 4.3.0 try again "
                                               "later"}
    assert result.attempts == 3 and result.accepted == []
    assert handler.defer_data == 7 and handler.messages == []


def test_refused_recipient_does_not_stop_the_others(ctx, smtp) -> None:  # type: ignore[no-untyped-def]
    handler, port = smtp
    sctx = with_settings(ctx, smtp_url=f"smtp://127.0.0.1:{port}",
                         digest_to="refused@example.org,ok@example.org")
    digest = build_digest(sctx)
    line = _failed_delivery(sctx, digest)
    assert "reached 1 of 2 recipients" in line
    assert "refused@example.org: refused (550 5.1.1 mailbox unavailable)" in line
    assert [r for rcpts, _ in handler.messages for r in rcpts] == ["ok@example.org"]
    with ctx.sessions() as s:
        rows = {r.recipient: r.status for r in s.exec(select(Delivery)).all()}
    assert rows == {"refused@example.org": "failed", "ok@example.org": "sent"}
    handler.refuse = ""  # the mailbox exists now: only the failed recipient is retried
    lines = deliver_digest(sctx, digest, retry_delays=FAST)
    assert [r for rcpts, _ in handler.messages for r in rcpts] == ["ok@example.org",
                                                                   "refused@example.org"]
    assert any("already sent to ok@example.org" in x for x in lines)


class Picky(Capture):
    """Defers one mailbox (greylisting) and rejects the content sent to another at DATA."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if address.startswith("grey@"):
            return "450 4.2.0 greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if envelope.rcpt_tos == ["spamtrap@example.org"]:
            return "554 5.7.1 message content rejected"
        return await super().handle_DATA(server, session, envelope)


def test_one_recipients_deferral_or_rejection_does_not_fail_the_others(ctx) -> None:  # type: ignore[no-untyped-def]
    # The first recipient greylisted (450 at RCPT): every later one was marked failed without
    # being tried, with "every recipient was deferred ... <grey@…>" and an attempt counted;
    # a 554 at DATA for one recipient was read as the server failing, with the same effect.
    handler = Picky()
    controller, port = _serve(handler)
    sctx = with_settings(ctx, smtp_url=f"smtp://127.0.0.1:{port}",
                         digest_to="grey@example.org,spamtrap@example.org,ok@example.org")
    try:
        line = _failed_delivery(sctx)
    finally:
        controller.stop()
    assert "reached 1 of 3 recipients" in line
    assert "grey@example.org: deferred after 3 attempts: 450 4.2.0 greylisted" in line
    assert "spamtrap@example.org: message rejected (554 5.7.1 message content rejected)" \
        in line
    assert "every recipient" not in line
    assert [rcpts for rcpts, _ in handler.messages] == [["ok@example.org"]]
    with ctx.sessions() as s:
        rows = {r.recipient: (r.status, r.attempts, r.error)
                for r in s.exec(select(Delivery)).all()}
    assert rows["ok@example.org"] == ("sent", 1, None)
    assert rows["grey@example.org"][:2] == ("failed", 3)
    assert "greylisted" in (rows["grey@example.org"][2] or "")
    assert rows["spamtrap@example.org"] == (
        "failed", 1, "message rejected (554 5.7.1 message content rejected)")


def test_after_the_server_fails_the_rest_are_not_tried_nor_counted(ctx) -> None:  # type: ignore[no-untyped-def]
    # A recipient not tried because the server was down got an attempt counted all the same.
    sctx = with_settings(ctx, smtp_url=f"smtp://127.0.0.1:{free_port()}",
                         digest_to="a@example.org,b@example.org")
    with pytest.raises(DeliveryError, match=r"b@example\.org: not tried"):
        deliver_digest(sctx, build_digest(sctx), retry_delays=FAST)
    with ctx.sessions() as s:
        rows = {r.recipient: (r.attempts, r.error) for r in s.exec(select(Delivery)).all()}
    assert rows["a@example.org"][0] == 3 and "connection refused" in (rows["a@example.org"][1]
                                                                      or "")
    assert rows["b@example.org"][0] == 0
    assert (rows["b@example.org"][1] or "").startswith("not tried: SMTP server")


class Slow(Capture):
    """Takes longer to answer RCPT than the client waits."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        await asyncio.sleep(3)
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


def test_a_slow_server_is_a_timeout_not_a_closed_connection(ctx) -> None:  # type: ignore[no-untyped-def]
    # smtplib's "Connection unexpectedly closed: timed out" was read as "server closed the
    # connection (check that the server ... is running and reachable)".
    controller, port = _serve(Slow())
    sctx = with_settings(ctx, smtp_url=f"smtp://127.0.0.1:{port}?timeout=1",
                         digest_to="a@example.org")
    try:
        line = _failed_delivery(sctx, retry_delays=())
    finally:
        controller.stop()
    assert "failed after 1 attempts: timed out after 1 s waiting for the server's reply" in line
    assert "raise timeout= in MMLR_SMTP_URL (now 1 s)" in line
    assert "closed the connection" not in line and "is running and reachable" not in line


class SlowToConfirm(Capture):
    """Stores each message, then answers the end of its data after ``delay`` seconds."""

    delay = 2.0

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        reply = await super().handle_DATA(server, session, envelope)
        await asyncio.sleep(self.delay)
        return reply


class HangsUpAfterData(Capture):
    """Stores each message, then closes the connection without a reply."""

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        await super().handle_DATA(server, session, envelope)
        server.transport.close()
        return "250 OK queued"


def test_a_slow_reply_to_the_message_is_waited_for_not_resent(ctx) -> None:  # type: ignore[no-untyped-def]
    # The server stored the message and answered after the timeout: each attempt delivered
    # a copy (4 a run, 4 more on the next --send) and the row said failed.
    handler = SlowToConfirm()
    controller, port = _serve(handler)
    sctx = with_settings(ctx, smtp_url=f"smtp://127.0.0.1:{port}?timeout=1",
                         digest_to="a@example.org")
    try:
        [line] = deliver_digest(sctx, build_digest(sctx), retry_delays=FAST)
    finally:
        controller.stop()
    assert "sent to a@example.org" in line and len(handler.messages) == 1
    with ctx.sessions() as s:
        [row] = s.exec(select(Delivery)).all()
    assert (row.status, row.attempts, row.error) == ("sent", 1, None)


def test_no_reply_after_the_message_is_unknown_not_retried() -> None:
    handler = SlowToConfirm()
    controller, port = _serve(handler)
    msg = build_message(subject="s", text="t", html="<p>h</p>", sender="m@example.org",
                        recipients=["a@example.org"])
    try:
        result = send_message(parse_smtp_url(f"smtp://127.0.0.1:{port}?timeout=5"), msg,
                              ["a@example.org"], retry_delays=FAST, data_end_timeout=0.2)
    finally:
        controller.stop()
    assert len(handler.messages) == 1 and result.attempts == 1
    assert result.accepted == [] and result.refused == {}
    assert result.unknown == {"a@example.org": "unknown whether it arrived: the message was "
                              "sent, then timed out after 0.2 s waiting for the server's reply "
                              "to the message"}


@contextmanager
def _unknown_delivery(ctx: Any) -> Iterator[tuple[Capture, Any, Any, str]]:
    """A digest to a@ and b@ whose server hangs up after each message was sent (its arrival
    unknown): yields the handler, the context, the digest and the failed delivery's line."""
    handler = HangsUpAfterData()
    controller, port = _serve(handler)
    sctx = with_settings(ctx, smtp_url=f"smtp://127.0.0.1:{port}",
                         digest_to="a@example.org,b@example.org")
    try:
        digest = build_digest(sctx)
        yield handler, sctx, digest, _failed_delivery(sctx, digest)
    finally:
        controller.stop()


def test_a_copy_that_may_have_arrived_is_not_resent_unless_asked(ctx) -> None:  # type: ignore[no-untyped-def]
    from monitor.status import gather_status

    with _unknown_delivery(ctx) as (handler, sctx, digest, line):
        assert "reached 0 of 2 recipients (perhaps 2)" in line
        assert "unknown whether it arrived: the message was sent, then the connection was " \
            "lost" in line
        assert "--resend-unknown" in line
        assert sorted(r for rcpts, _ in handler.messages for r in rcpts) == [
            "a@example.org", "b@example.org"]  # one copy each, no retry
        with ctx.sessions() as s:
            rows = {r.recipient: (r.status, r.attempts) for r in s.exec(select(Delivery)).all()}
        assert rows == {"a@example.org": ("unknown", 1), "b@example.org": ("unknown", 1)}
        status = gather_status(sctx.settings)
        assert status.sections["digest"]["unknown"] == 2 and not status.healthy
        assert any(f"the newest digest #{digest.id} may not have reached 2 of 2 recipients"
                   in p and "--resend-unknown" in p for p in status.problems)
        # the next --send sends nothing to them and says so
        again = deliver_digest(sctx, digest, retry_delays=FAST)
        assert len(again) == 2 and all("may already have reached" in x for x in again)
        assert len(handler.messages) == 2
        # they said it did not arrive: sent again on request
        handler.__class__ = Capture  # the server answers now
        sent = deliver_digest(sctx, digest, retry_delays=FAST, resend_unknown=True)
        assert all("sent to" in x for x in sent) and len(handler.messages) == 4
    with ctx.sessions() as s:
        rows = {r.recipient: (r.status, r.attempts) for r in s.exec(select(Delivery)).all()}
    assert rows == {"a@example.org": ("sent", 2), "b@example.org": ("sent", 2)}
    assert gather_status(sctx.settings).sections["digest"]["unknown"] == 0


def test_a_recipient_who_says_it_arrived_is_confirmed_not_resent(ctx) -> None:  # type: ignore[no-untyped-def]
    from monitor.status import gather_status
    from reports.digest import confirm_received
    from store.errors import StateError
    from store.models import AuditLog

    with _unknown_delivery(ctx) as (handler, sctx, digest, _line):
        # a said it arrived (typed as they wrote it): recorded, audited, asked about no more
        [line] = confirm_received(sctx, "  A@Example.org ")
        assert line == (f"digest #{digest.id} to a@example.org: recorded as received (it was "
                        "unknown: the server did not answer after the message was sent)")
        status = gather_status(sctx.settings)
        assert status.sections["digest"]["unknown"] == 1
        assert any("may not have reached 1 of 2 recipients" in p for p in status.problems)
        # b said it did not: --resend-unknown sends to b only
        handler.__class__ = Capture
        sent = deliver_digest(sctx, digest, retry_delays=FAST, resend_unknown=True)
        assert len(handler.messages) == 3 and handler.messages[-1][0] == ["b@example.org"]
        assert any("sent to b@example.org" in x for x in sent)
        with pytest.raises(StateError) as err:  # nothing left to confirm: said, not a no-op
            confirm_received(sctx, "a@example.org")
        assert str(err.value) == (f"no digest's delivery to a@example.org is unknown (its "
                                  f"deliveries: #{digest.id} sent)")
        with pytest.raises(StateError, match=r"\(no digest was sent to it\)"):
            confirm_received(sctx, "nobody@example.org")
    assert gather_status(sctx.settings).sections["digest"]["unknown"] == 0
    with ctx.sessions() as s:
        row = s.exec(select(Delivery).where(Delivery.recipient == "a@example.org")).one()
        assert row.status == "sent" and row.error is not None
        assert row.error.startswith("unknown whether it arrived")
        assert row.error.endswith("; confirmed received by the recipient")
        [entry] = s.exec(select(AuditLog).where(AuditLog.action == "delivery.confirmed")).all()
        assert (entry.actor, entry.object_id) == ("cli", str(digest.id))


class LocksTheDatabase(Capture):
    """Another writer (the web app, a job) takes SQLite's write lock while the first message
    is being accepted, and keeps it until mmlr has given up waiting for it (``let_go``)."""

    def __init__(self, db_path: str) -> None:
        super().__init__()
        self.db_path = db_path
        self.holder: sqlite3.Connection | None = None

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if self.holder is None:
            self.holder = sqlite3.connect(self.db_path, isolation_level=None,
                                          check_same_thread=False)
            self.holder.execute("BEGIN IMMEDIATE")
        return await super().handle_DATA(server, session, envelope)

    def let_go(self) -> None:
        if self.holder is not None and self.holder.in_transaction:
            self.holder.execute("COMMIT")


def test_a_copy_whose_delivery_cannot_be_recorded_is_not_sent_again(ctx, db_url) -> None:  # type: ignore[no-untyped-def]
    # The Delivery row was written only after the server accepted the message: when that
    # write failed (the database locked past the busy timeout, or the process killed while
    # the server answered), no row said it went out, and the next --send sent another copy.
    from sqlalchemy import event

    from monitor.status import gather_status
    from store.engine import database_locked

    if PG_URL:
        pytest.skip("SQLite's database-wide write lock")
    handler = LocksTheDatabase(db_url.removeprefix("sqlite:///"))

    @event.listens_for(ctx.engine, "connect")
    def no_wait(dbapi_conn: Any, _record: Any) -> None:  # the test need not wait out 30 s
        dbapi_conn.execute("PRAGMA busy_timeout=0")

    @event.listens_for(ctx.engine, "handle_error")
    def gave_up(context: Any) -> None:  # mmlr gave up on the lock: the other writer is done
        if database_locked(context.sqlalchemy_exception):
            handler.let_go()

    ctx.engine.dispose()  # the connections made from here on do not wait
    controller, port = _serve(handler)
    sctx = with_settings(ctx, smtp_url=f"smtp://127.0.0.1:{port}",
                         digest_to="a@example.org,b@example.org")
    try:
        digest = build_digest(sctx)
        line = _failed_delivery(sctx, digest)
        assert handler.holder is not None and not handler.holder.in_transaction
        assert line.startswith(f"digest #{digest.id} went to the SMTP server for a@example.org, "
                               "but what happened could not be recorded (another process holds "
                               "the database locked: database is locked): its delivery stays "
                               "`unknown` (it may have arrived) and is not resent by itself; "
                               "the 1 recipients after it were not tried")
        assert "`mmlr digest --confirm-received a@example.org`" in line
        with ctx.sessions() as s:
            [row] = s.exec(select(Delivery)).all()
        assert (row.recipient, row.status) == ("a@example.org", "unknown")
        assert "its outcome was never recorded" in (row.error or "")
        assert any("may not have reached 1 of 1 recipients" in p and "--resend-unknown" in p
                   for p in gather_status(sctx.settings).problems)
        lines = deliver_digest(sctx, digest, retry_delays=FAST)
    finally:
        controller.stop()
        handler.let_go()
    assert any("may already have reached a@example.org" in x for x in lines)
    assert any("sent to b@example.org" in x for x in lines)
    assert [r for rcpts, _ in handler.messages for r in rcpts] == ["a@example.org",
                                                                   "b@example.org"]


def test_login_with_credentials(ctx, smtp_auth) -> None:  # type: ignore[no-untyped-def]
    handler, port = smtp_auth
    sctx = with_settings(ctx, smtp_url=f"smtp://digest:s3cret-pa55@127.0.0.1:{port}",
                         digest_to="a@example.org")
    [line] = deliver_digest(sctx, build_digest(sctx), retry_delays=FAST)
    assert "sent to a@example.org" in line and len(handler.messages) == 1


def test_wrong_password_is_one_line_without_the_password(ctx, smtp_auth, caplog) -> None:  # type: ignore[no-untyped-def]
    handler, port = smtp_auth
    sctx = with_settings(ctx, smtp_url=f"smtp://digest:wrong-pa55word@127.0.0.1:{port}",
                         digest_to="a@example.org")
    line = _failed_delivery(sctx)
    assert "SMTP login to 127.0.0.1" in line and "as 'digest' failed (535" in line
    assert "MMLR_SMTP_URL" in line
    assert "wrong-pa55word" not in line and "wrong-pa55word" not in caplog.text
    with ctx.sessions() as s:
        [row] = s.exec(select(Delivery)).all()
    assert row.status == "failed" and "wrong-pa55word" not in (row.error or "")
    assert handler.messages == []


def test_starttls_on_a_server_without_it_is_a_clear_error(smtp) -> None:  # type: ignore[no-untyped-def]
    _, port = smtp
    msg = build_message(subject="s", text="t", html="<p>h</p>", sender="m@example.org",
                        recipients=["a@example.org"])
    with pytest.raises(DeliveryError, match="does not support STARTTLS") as err:
        send_message(parse_smtp_url(f"smtp://127.0.0.1:{port}?starttls=true"), msg,
                     ["a@example.org"], retry_delays=FAST)
    assert "?starttls=" in err.value.one_line()
    assert "not supported by server" not in err.value.one_line()  # smtplib's words, once


def test_credentials_for_a_server_without_login_say_so_once(smtp) -> None:  # type: ignore[no-untyped-def]
    # It read "does not support SMTP AUTH extension not supported by server."
    _, port = smtp
    msg = build_message(subject="s", text="t", html="<p>h</p>", sender="m@example.org",
                        recipients=["a@example.org"])
    with pytest.raises(DeliveryError) as err:
        send_message(parse_smtp_url(f"smtp://digest:s3cret-pa55@127.0.0.1:{port}"), msg,
                     ["a@example.org"], retry_delays=FAST)
    line = err.value.one_line()
    assert f"SMTP server 127.0.0.1:{port} does not support logging in (SMTP AUTH)" in line
    assert "remove user:password from MMLR_SMTP_URL" in line
    assert "not supported by server" not in line and "s3cret" not in line


def test_smtps_against_a_plain_server_is_a_clear_error(smtp) -> None:  # type: ignore[no-untyped-def]
    _, port = smtp
    msg = build_message(subject="s", text="t", html="<p>h</p>", sender="m@example.org",
                        recipients=["a@example.org"])
    with pytest.raises(DeliveryError) as err:
        send_message(parse_smtp_url(f"smtps://127.0.0.1:{port}"), msg, ["a@example.org"],
                     retry_delays=FAST)
    assert "TLS" in err.value.one_line() and "\n" not in err.value.one_line()
    assert f"the port may speak plain SMTP first: try smtp://127.0.0.1:{port}?starttls=true" \
        in err.value.one_line()


def test_outbox_eml_has_the_same_structure(ctx) -> None:  # type: ignore[no-untyped-def]
    seed(ctx)
    digest = build_digest(ctx)
    deliver_digest(ctx, digest)
    [eml] = ctx.settings.outbox_dir.glob("*.eml")
    msg = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    text, html, _ = parts(msg)  # type: ignore[arg-type]
    assert msg["To"] == "undisclosed-recipients:;"
    assert "&lt;script&gt;" in html and XSS_TITLE in text


def test_inline_image_builder_accepts_explicit_images() -> None:
    png = png_bytes()
    msg = build_message(subject="s", text="t", html='<img src="cid:plot1@x">',
                        sender="m@example.org", recipients=["a@example.org"],
                        images=[InlineImage(cid="plot1@x", data=png)])
    _, _, [image] = parts(email.message_from_bytes(msg.as_bytes(), policy=policy.default))  # type: ignore[arg-type]
    assert image["Content-ID"] == "<plot1@x>" and image.get_content() == png


# ----------------------------------------------------------------------------- what leaves
ECHOED = "SmtpS3cret"


class Echo(Capture):
    """A server that quotes the credentials it received in an error reply, as some do: at
    ``AUTH`` (as typed, or as they came over the wire in base64), or, after a login it
    accepts, in its reply to ``MAIL``, ``RCPT`` or ``DATA``, with the reply code ``code``."""

    def __init__(self, where: str, code: int) -> None:
        super().__init__()
        self.where, self.code = where, code

    def authenticate(self, server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        login, password = auth_data.login, auth_data.password
        if self.where == "AUTH":
            quoted = f"{login.decode()} {password.decode()}"
        elif self.where == "AUTH-base64":  # what smtplib sent: PLAIN's blob, LOGIN's password
            wire = b"\0" + login + b"\0" + password if mechanism == "PLAIN" else password
            quoted = f"{login.decode()} {base64.b64encode(wire).decode()}"
        else:
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False,
                          message=f"{self.code} 5.7.8 Authentication failed for credentials: "
                                  f"{quoted}")

    def _echo(self, session) -> str:  # type: ignore[no-untyped-def]
        creds = session.auth_data
        return f"{self.code} 5.7.1 not for credentials: {creds.login.decode()} " \
               f"{creds.password.decode()}"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # type: ignore[no-untyped-def]
        if self.where == "MAIL":
            return self._echo(session)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if self.where == "RCPT":
            return self._echo(session)
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if self.where == "DATA":
            return self._echo(session)
        return await super().handle_DATA(server, session, envelope)


def _failed_delivery(sctx: Any, digest: Any = None, *,
                     retry_delays: tuple[float, ...] = FAST) -> str:
    """Deliver ``digest`` (else a new one) expecting a DeliveryError; its one line."""
    with pytest.raises(DeliveryError) as err:
        deliver_digest(sctx, digest if digest is not None else build_digest(sctx),
                       retry_delays=retry_delays)
    return err.value.one_line()


def _serve(handler: Any, **kwargs: Any) -> tuple[Controller, int]:
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return controller, port


def _ours(caplog: pytest.LogCaptureFixture) -> str:
    """mmlr's own log lines (aiosmtpd's, from the server in this process, are not ours)."""
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail."))


@pytest.mark.parametrize(("where", "code"), [
    ("AUTH", 535),  # a login refused
    ("AUTH-base64", 535),
    ("MAIL", 550),  # the sender refused
    ("MAIL", 451),  # … for now: retried, logged, then given up
    ("RCPT", 550),  # every recipient refused: a refusal, not an exception
    ("RCPT", 450),
    ("DATA", 554),
    ("DATA", 451),
])
def test_a_password_the_server_echoes_goes_no_further(ctx, caplog, where: str, code: int) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level("DEBUG", logger="reports")
    handler = Echo(where, code)
    controller, port = _serve(handler, authenticator=handler.authenticate,
                              auth_require_tls=False)
    sctx = with_settings(ctx, smtp_url=f"smtp://user:{ECHOED}@127.0.0.1:{port}",
                         digest_to="a@example.org")
    try:
        line = _failed_delivery(sctx)
    finally:
        controller.stop()
    # The reply is quoted (so the echo did reach mmlr), with the password masked.
    assert "credentials: user ***" in line and str(code) in line, line
    assert ECHOED not in line and ECHOED not in _ours(caplog)
    assert base64.b64encode(ECHOED.encode()).decode() not in line
    if code < 500:  # retried and logged each time: the log lines are masked too
        assert _ours(caplog).count("credentials: user ***") == 2
    with ctx.sessions() as s:
        [row] = s.exec(select(Delivery)).all()
    assert row.status == "failed" and "credentials: user ***" in (row.error or "")
    assert ECHOED not in (row.error or "")
    assert handler.messages == []


def test_cli_digest_send_never_shows_or_stores_an_echoed_password(db_url: str,
                                                                  tmp_path) -> None:  # type: ignore[no-untyped-def]
    from conftest import cli_env, run_cli
    from sqlmodel import Session, create_engine

    handler = Echo("AUTH", 535)
    controller, port = _serve(handler, authenticator=handler.authenticate,
                              auth_require_tls=False)
    data = tmp_path / "cli"
    try:
        proc = run_cli("digest", "--send", env=cli_env(
            MMLR_DATA_DIR=str(data), MMLR_DATABASE_URL=db_url, MMLR_DIGEST_TO="a@example.org",
            MMLR_SMTP_URL=f"smtp://user:{ECHOED}@127.0.0.1:{port}"))
    finally:
        controller.stop()
    assert proc.returncode == 1, proc.stderr
    assert "Authentication failed for credentials: user ***" in proc.stderr
    assert ECHOED not in proc.stderr + proc.stdout
    assert ECHOED not in (data / "mmlr.log").read_text(encoding="utf-8")
    engine = create_engine(db_url)
    try:
        with Session(engine) as s:
            [row] = s.exec(select(Delivery)).all()
    finally:
        engine.dispose()
    assert row.status == "failed" and "user ***" in (row.error or "")
    assert ECHOED not in (row.error or "")


def test_cli_digest_to_a_server_that_is_down_is_one_line(db_url: str, tmp_path,
                                                         monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from conftest import assert_one_line_error, cli_env, run_cli

    # The three retries were WARNING lines on the terminal before the error: four lines.
    monkeypatch.setattr("reports.mail.DEFAULT_RETRY_DELAYS", (0.01,) * 3)  # run_cli: in-process
    port = free_port()
    data = tmp_path / "cli"
    proc = run_cli("digest", "--send", env=cli_env(
        MMLR_DATA_DIR=str(data), MMLR_DATABASE_URL=db_url, MMLR_DIGEST_TO="a@example.org",
        MMLR_SMTP_URL=f"smtp://127.0.0.1:{port}"))
    assert_one_line_error(
        proc, f"mmlr: error: digest #1 reached 0 of 1 recipients; a@example.org: SMTP server "
              f"127.0.0.1:{port} failed after 4 attempts: connection refused (is the SMTP "
              "server running?) (check that the server of MMLR_SMTP_URL is running and "
              "reachable) (the digest is kept; run `mmlr digest --send` again to retry the "
              "failed ones)")
    log = (data / "mmlr.log").read_text(encoding="utf-8")
    assert log.count(f"INFO reports.mail: SMTP 127.0.0.1:{port} attempt ") == 3  # kept there


@pytest.mark.parametrize("port", ["0", "99999"])
def test_cli_digest_with_an_smtp_port_that_is_no_port(tmp_path, port: str) -> None:  # type: ignore[no-untyped-def]
    from conftest import assert_one_line_error, cli_env, run_cli

    # Port 0 was read as "no port": the digest went to port 25 without a word.
    proc = run_cli("digest", "--send", env=cli_env(
        MMLR_DATA_DIR=str(tmp_path / "cli"), MMLR_DIGEST_TO="a@example.org",
        MMLR_SMTP_URL=f"smtp://127.0.0.1:{port}"))
    assert_one_line_error(
        proc, f"mmlr: error: MMLR_SMTP_URL has an invalid port {port!r}: a port is a whole "
              "number from 1 to 65535 (e.g. smtp://mail.example.org:587)")


class XOAuth2Only(Capture):
    """A server whose only login is OAuth 2 (as big providers are heading)."""

    async def auth_XOAUTH2(self, server, args):  # type: ignore[no-untyped-def]
        return AuthResult(success=False, handled=False)


def test_a_server_without_a_login_mmlr_can_do_is_a_clear_error(ctx, caplog) -> None:  # type: ignore[no-untyped-def]
    handler = XOAuth2Only()
    controller, port = _serve(handler, auth_exclude_mechanism=["LOGIN", "PLAIN"],
                              auth_require_tls=False)
    sctx = with_settings(ctx, smtp_url=f"smtp://digest:s3cret-pa55@127.0.0.1:{port}",
                         digest_to="a@example.org")
    digest = build_digest(sctx)
    try:
        line = _failed_delivery(sctx, digest)
    finally:
        controller.stop()
    assert "No suitable authentication method found" in line and "AUTH XOAUTH2" in line
    assert "PLAIN, LOGIN or CRAM-MD5" in line and "MMLR_SMTP_URL" in line
    assert "s3cret-pa55" not in line
    assert "retrying" not in caplog.text  # no retry can change what the server offers
    with ctx.sessions() as s:
        [row] = s.exec(select(Delivery)).all()
    # recorded as failed: the kept digest is sent by the next `mmlr digest --send`
    assert (row.status, row.attempts) == ("failed", 1) and "XOAUTH2" in (row.error or "")
    assert handler.messages == []


def test_a_password_smtp_cannot_send_is_a_clear_error(ctx, smtp_auth) -> None:  # type: ignore[no-untyped-def]
    handler, port = smtp_auth
    sctx = with_settings(ctx, smtp_url=f"smtp://digest:p%C3%A4sswort@127.0.0.1:{port}",
                         digest_to="a@example.org")
    with pytest.raises(DeliveryError, match="is not ASCII") as err:
        deliver_digest(sctx, build_digest(sctx), retry_delays=FAST)
    assert "pässwort" not in err.value.one_line() and handler.messages == []


def test_a_failed_starttls_handshake_is_a_clear_error() -> None:
    import ssl

    # A server that offers STARTTLS but has no certificate: the handshake fails.
    controller, port = _serve(Capture(), tls_context=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    msg = build_message(subject="s", text="t", html="<p>h</p>", sender="m@example.org",
                        recipients=["a@example.org"])
    try:
        with pytest.raises(DeliveryError, match="TLS handshake with SMTP server") as err:
            send_message(parse_smtp_url(f"smtp://127.0.0.1:{port}?starttls=true"), msg,
                         ["a@example.org"], retry_delays=FAST)
    finally:
        controller.stop()
    assert "?starttls=" in err.value.one_line()


def _self_signed(folder: Any, name: str) -> Any:
    """A server context with a new self-signed certificate for ``name`` (an IP address or a
    host name); its PEM file is ``folder / "cert.pem"``."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    san = f"IP:{name}" if name[0].isdigit() else f"DNS:{name}"
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName={san}"], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def _send_one(url: str) -> Any:
    msg = build_message(subject="s", text="t", html="<p>h</p>", sender="m@example.org",
                        recipients=["a@example.org"])
    return send_message(parse_smtp_url(url), msg, ["a@example.org"], retry_delays=FAST)


def _refused(controller: Any, url: str) -> DeliveryError:
    """The DeliveryError of sending one message to ``url``; ``controller`` (the server) is
    stopped after."""
    try:
        with pytest.raises(DeliveryError) as err:
            _send_one(url)
    finally:
        controller.stop()
    return err.value


@pytest.mark.parametrize("query", ["?timeout=1", "?starttls=true&timeout=1"])
def test_a_plain_client_on_a_port_that_speaks_tls_first_is_told_so_at_once(
        tmp_path, query: str) -> None:  # type: ignore[no-untyped-def]
    # The client waited for a greeting that never comes, 4 times, then said to raise
    # timeout= ("the server is slow or stalled").
    handler = Capture()
    controller, port = _serve(handler, ssl_context=_self_signed(tmp_path, "127.0.0.1"))
    error = _refused(controller, f"smtp://127.0.0.1:{port}{query}")
    line = error.one_line()
    assert line.startswith(f"SMTP server 127.0.0.1:{port} sent no greeting within 1 s: the "
                           "port may expect TLS from the first byte (smtps://, usually port "
                           "465), while MMLR_SMTP_URL"), line
    assert f"write smtps://127.0.0.1:{port} in MMLR_SMTP_URL" in line
    assert error.attempts == 1 and "attempts" not in line
    assert handler.messages == []


def test_a_plain_client_on_port_465_is_told_to_use_smtps(tmp_path) -> None:  # type: ignore[no-untyped-def]
    controller = Controller(Capture(), hostname="127.0.0.1", port=465,
                            ssl_context=_self_signed(tmp_path, "127.0.0.1"))
    try:
        controller.start()
    except Exception:  # taken, or not ours to bind (aiosmtpd re-raises its thread's error)
        pytest.skip("port 465 is not free here")
    assert _refused(controller, "smtp://127.0.0.1:465?timeout=1").one_line() == (
        "SMTP server 127.0.0.1:465 sent no greeting within 1 s: port 465 expects TLS from the "
        "first byte, and MMLR_SMTP_URL (smtp://) starts in plain text (write "
        "smtps://127.0.0.1:465 in MMLR_SMTP_URL (no ?starttls=))")


@pytest.mark.parametrize("scheme", ["smtps", "starttls"])
def test_a_certificate_not_trusted_says_why_and_how_to_trust_it(
        tmp_path, monkeypatch, scheme: str) -> None:  # type: ignore[no-untyped-def]
    # It said "CERTIFICATE_VERIFY_FAILED (check smtps:// versus ?starttls=true ...)"
    # when both were right: the relay's certificate is signed by a private CA.
    handler = Capture()
    context = _self_signed(tmp_path, "127.0.0.1")
    controller, port = _serve(handler, **({"ssl_context": context} if scheme == "smtps"
                                          else {"tls_context": context}))
    url = f"smtps://127.0.0.1:{port}" if scheme == "smtps" else \
        f"smtp://127.0.0.1:{port}?starttls=true"
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    try:
        with pytest.raises(DeliveryError) as err:
            _send_one(url)
        line = err.value.one_line()
        assert line.startswith(f"the TLS certificate of SMTP server 127.0.0.1:{port} is not "
                               "trusted: self-signed certificate ("), line
        assert "SSL_CERT_FILE" in line and "smtps:// versus" not in line
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))  # as the hint says
        result = _send_one(url)
    finally:
        controller.stop()
    assert result.accepted == ["a@example.org"] and len(handler.messages) == 1


def test_a_certificate_for_another_host_says_which_name_to_use(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    controller, port = _serve(Capture(), ssl_context=_self_signed(tmp_path, "mail.example.org"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
    line = _refused(controller, f"smtps://127.0.0.1:{port}").one_line()
    assert f"the TLS certificate of SMTP server 127.0.0.1:{port} is not trusted: IP address " \
        "mismatch, certificate is not valid for '127.0.0.1'" in line
    assert "the host name the certificate is for, not '127.0.0.1'" in line


# ----------------------------------------------------------------------------- undelivered
def _repool(ctx, hr: float) -> int:  # type: ignore[no-untyped-def]
    """A new snapshot of the seed's analysis with another HR (as `mmlr pool` stores one)."""
    with ctx.sessions() as s:
        row = PooledResult(analysis_key="len", analysis_label="Lenalidomide, PFS", k=1,
                           estimate=math.log(hr), ci_low=math.log(hr) - 0.2,
                           ci_high=math.log(hr) + 0.2,
                           inputs=[{"trial": "CALGB 100104", "yi": math.log(hr), "sei": 0.1,
                                    "hr": hr, "ci_low": hr * 0.8, "ci_high": hr * 1.2,
                                    "weight": 100.0}])
        s.add(row)
        s.commit()
        return int(row.id or 0)


def test_a_digest_nobody_received_is_covered_by_the_next(ctx, smtp) -> None:  # type: ignore[no-untyped-def]
    # Digest #2 failed for every recipient (server down); #3 was compared with #2, listed #2's
    # new analysis as "Unchanged" and its alert not at all: subscribers never heard of them.
    from store.models import Alert, Digest

    handler, port = smtp
    up = with_settings(ctx, smtp_url=f"smtp://127.0.0.1:{port}", digest_to="ana@example.org")
    down = with_settings(up, smtp_url=f"smtp://127.0.0.1:{free_port()}")
    seed(ctx)
    first = build_digest(up)
    deliver_digest(up, first, retry_delays=FAST)
    old_id = first.pooled_result_ids[0]
    _repool(ctx, 0.7)
    with ctx.sessions() as s:
        s.add(Alert(kind="retraction", pmid=90000001, message="Retracted: the seed trial",
                    in_analysis=True))
        s.commit()
    failed = build_digest(down)
    with pytest.raises(DeliveryError, match="reached 0 of 1"):
        deliver_digest(down, failed, retry_delays=FAST)
    # Built again before anything changed: the undelivered digest itself, to deliver.
    assert build_digest(down).id == failed.id
    newest = _repool(ctx, 0.8)
    again = build_digest(up)
    assert again.id not in (first.id, failed.id)
    [entry] = again.summary["analyses"]
    assert entry["status"] == "updated"
    assert (entry["old"]["id"], entry["new"]["id"]) == (old_id, newest)
    assert [a["message"] for a in again.summary["alerts"]] == ["Retracted: the seed trial"]
    assert again.summary["since_digest"] == first.id
    deliver_digest(up, again, retry_delays=FAST)
    assert len(handler.messages) == 2
    assert "Retracted: the seed trial" in parts(handler.messages[1][1])[0]
    with ctx.sessions() as s:
        [alert] = s.exec(select(Alert)).all()
        assert alert.digest_id == again.id
        assert s.get(Digest, failed.id) is not None  # kept, for the audit trail
    # and the next one counts from the digest that went out
    _repool(ctx, 0.9)
    assert build_digest(up).summary["since_digest"] == again.id


def test_a_preview_does_not_use_up_the_changes(ctx) -> None:  # type: ignore[no-untyped-def]
    # `mmlr digest --out FILE` stored digest #2 and moved "since the last digest": the next
    # delivered one said "no changes" and #2's changes were never sent.
    from conftest import cli_env, run_cli

    sctx = ctx  # no MMLR_SMTP_URL: the outbox is the delivery
    seed(sctx)
    first = build_digest(sctx)
    deliver_digest(sctx, first)
    changed = _repool(sctx, 0.7)
    out = sctx.settings.data_dir / "preview.html"
    proc = run_cli("digest", "--out", str(out), env=cli_env(
        MMLR_DATA_DIR=str(sctx.settings.data_dir),
        MMLR_DATABASE_URL=str(sctx.settings.database_url)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (f"digest #2 written to {out} (a preview: delivered to "
                                   "nobody; the next digest still counts from the last one "
                                   "delivered)")
    assert "Lenalidomide, PFS" in out.read_text(encoding="utf-8")
    later = _repool(sctx, 0.8)
    digest = build_digest(sctx)
    [entry] = digest.summary["analyses"]
    assert entry["status"] == "updated" and entry["new"]["id"] == later != changed
    assert entry["old"]["id"] == first.pooled_result_ids[0]  # not the preview's
    assert digest.summary["since_digest"] == 1 and not digest.summary["preview"]
    assert "written to" in deliver_digest(sctx, digest)[0]
    assert build_digest(sctx).id == digest.id  # delivered: nothing new since
