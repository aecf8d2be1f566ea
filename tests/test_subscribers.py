"""Digest subscribers: storage and validation, the unsubscribe token, per-recipient mail through
a real SMTP server (aiosmtpd on 127.0.0.1), the unsubscribe pages, the admin pages, the CLI."""

from __future__ import annotations

import email
import re
import threading
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import test_mail
import test_web
from conftest import assert_one_line_error, cli_env, run_cli
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select
from test_mail import FAST, parts, with_settings
from test_web import as_role, csrf_from, db

from reports.digest import build_digest, deliver_digest
from reports.mail import build_message, unsubscribe_headers, with_unsubscribe_footer
from store.errors import ConfigError, DeliveryError, ValidationError
from store.models import AuditLog, Delivery, Record, Subscriber
from store.subscribers import (
    UnsubscribeLinkError,
    add_subscriber,
    digest_recipients,
    mask_email,
    set_active,
    subscriber_for_token,
    unsubscribe_token,
)

app = test_web.app
client = test_web.client
users = test_web.users
smtp = test_mail.smtp

SECRET = "test-secret-key-that-is-long-enough-0123456789"  # tests/conftest.py `settings`
_HREF = re.compile(r'<a href="([^"]*/unsubscribe\?t=[^"]*)"')


# ----------------------------------------------------------------------------- helpers
def subscribe(ctx_or_app: Any, *emails: str) -> dict[str, Subscriber]:
    factory = ctx_or_app.sessions if hasattr(ctx_or_app, "sessions") else \
        ctx_or_app.state.ctx.sessions
    with factory() as session:
        rows = {e: add_subscriber(session, e, actor="test") for e in emails}
        session.commit()
    return {row.email: row for row in rows.values()}


def row_of(session: Session, address: str) -> Subscriber:
    return session.exec(select(Subscriber).where(Subscriber.email == address)).one()


def actions(session: Session, action: str) -> list[AuditLog]:
    return list(session.exec(select(AuditLog).where(AuditLog.action == action)
                             .order_by(col(AuditLog.id))).all())


def by_recipient(handler: test_mail.Capture) -> dict[str, EmailMessage]:
    out: dict[str, EmailMessage] = {}
    for rcpts, msg in handler.messages:
        [rcpt] = rcpts  # one message per recipient, never a shared To
        assert rcpt not in out, f"{rcpt} got the digest twice"
        out[rcpt] = msg
    return out


def flag_a_new_record(ctx: Any, pmid: int) -> None:
    """Something for the next digest to report (otherwise build_digest returns the last one)."""
    with ctx.sessions() as s:
        s.add(Record(pmid=pmid, title=f"New maintenance trial {pmid}", flagged=True, score=0.9))
        s.commit()


# ----------------------------------------------------------------------------- storage
def test_add_normalises_and_refuses_duplicates_and_bad_addresses(ctx) -> None:  # type: ignore[no-untyped-def]
    with ctx.sessions() as s:
        row = add_subscriber(s, "  Ana.Lopez@Example.ORG ", actor="admin@example.org")
        s.commit()
        assert (row.email, row.active, row.created_by, row.unsubscribed_at) == (
            "ana.lopez@example.org", True, "admin@example.org", None)
        with pytest.raises(ValidationError, match=r"ana\.lopez@example\.org is already subscribed"):
            add_subscriber(s, "ANA.LOPEZ@example.org", actor="test")
        for address, fragment in [
            ("", "an e-mail address is required"),
            ("ana.example.org", "is not an e-mail address: it has no @"),
            ("ana@@example.org", "it has more than one @"),
            ("ana lopez@example.org", "it contains a space"),
            ("<script>@example.org", "is not an e-mail address"),
            ("ana@example.org\r\nBcc: x@evil.example", "is not an e-mail address"),
            ("a" * 250 + "@example.org", "longer than 254 characters"),
        ]:
            with pytest.raises(ValidationError, match=re.escape(fragment)):
                add_subscriber(s, address, actor="test")
            s.rollback()
        assert [r.email for r in s.exec(select(Subscriber)).all()] == ["ana.lopez@example.org"]
        [added] = actions(s, "subscriber.add")
        assert (added.actor, added.object_id) == ("admin@example.org", "ana.lopez@example.org")


@pytest.mark.parametrize(("address", "fragment"), [
    # an RFC 2047 encoded word: the e-mail package decoded it into the To header, CR/LF and
    # all, and the delivery ended with "internal error" for everyone
    ("=?utf-8?q?a=0D=0Ab?=@x.org", "it contains an encoded word"),
    ("a..b@example.org", "two dots follow each other"),
    (".a@example.org", "a dot begins or ends"),
    ("a.@example.org", "a dot begins or ends"),
    ("a@x..org", "a part of the domain is empty"),
    ("a@x.-.org", "begins or ends with a hyphen"),
    ("a@-x.org", "begins or ends with a hyphen"),
    ("a@x.org.", "a part of the domain is empty"),
])
def test_the_address_rule_refuses_what_no_message_can_be_sent_to(
        ctx, address: str, fragment: str) -> None:  # type: ignore[no-untyped-def]
    with ctx.sessions() as s, pytest.raises(ValidationError, match=re.escape(fragment)):
        add_subscriber(s, address, actor="test")


def test_the_address_rule_keeps_ordinary_addresses(ctx) -> None:  # type: ignore[no-untyped-def]
    ordinary = ["ana.lopez@example.org", "ana+digest@example.org", "a=b@x.org",
                "x_y@mail.a-b.example.org", "admin@localhost", "o.k@x.co"]
    with ctx.sessions() as s:
        assert [add_subscriber(s, a, actor="test").email for a in ordinary] == ordinary


def test_one_address_no_message_can_be_built_for_fails_alone(ctx, smtp) -> None:  # type: ignore[no-untyped-def]
    # Stored before the rule refused it: build_message raised ValueError ("address parts
    # cannot contain CR or LF") outside the per-recipient try, so the whole delivery ended
    # in "internal error" and, sorted first, nobody ever got a digest.
    handler, port = smtp
    sctx = with_settings(ctx, smtp_url=f"smtp://127.0.0.1:{port}")
    with ctx.sessions() as s:
        s.add(Subscriber(email="=?utf-8?q?a=0d=0ab?=@x.org", created_by="test"))
        s.add(Subscriber(email="a..b@x.org", created_by="test"))
        s.commit()
    subscribe(ctx, "zed@example.org")
    digest = build_digest(sctx)
    with pytest.raises(DeliveryError) as err:
        deliver_digest(sctx, digest, retry_delays=FAST)
    assert "reached 1 of 3 recipients" in err.value.message
    assert list(by_recipient(handler)) == ["zed@example.org"]
    with ctx.sessions() as s:
        rows = {r.recipient: r for r in s.exec(select(Delivery)).all()}
    assert rows["zed@example.org"].status == "sent"
    for bad in ("=?utf-8?q?a=0d=0ab?=@x.org", "a..b@x.org"):
        assert (rows[bad].status, rows[bad].attempts) == ("failed", 0)
        assert "is not an e-mail address" in (rows[bad].error or "")
        assert "mmlr subscribers remove" in (rows[bad].error or "")


def test_an_address_that_unsubscribed_comes_back_only_on_request(ctx) -> None:  # type: ignore[no-untyped-def]
    subscribe(ctx, "bo@example.org")
    with ctx.sessions() as s:
        row = row_of(s, "bo@example.org")
        assert set_active(s, row, False, actor="bo@example.org", via="link") is True
        assert set_active(s, row, False, actor="bo@example.org", via="link") is False  # no-op
        s.commit()
        assert row.unsubscribed_at is not None
        with pytest.raises(ValidationError, match=r"bo@example\.org unsubscribed on") as err:
            add_subscriber(s, "bo@example.org", actor="test")
        assert "--resubscribe" in err.value.one_line()
        again = add_subscriber(s, "Bo@Example.org", actor="test", resubscribe=True)
        s.commit()
        assert again.id == row.id and again.active and again.unsubscribed_at is None
        assert len(actions(s, "subscriber.unsubscribe")) == 1
        assert [a.details["via"] for a in actions(s, "subscriber.resubscribe")] == ["add"]


def test_token_belongs_to_one_subscriber_and_cannot_be_forged(ctx) -> None:  # type: ignore[no-untyped-def]
    subscribe(ctx, "ana@example.org", "bo@example.org")
    with ctx.sessions() as s:
        ana, bo = row_of(s, "ana@example.org"), row_of(s, "bo@example.org")
        token = unsubscribe_token(ana, SECRET)
        assert token == unsubscribe_token(ana, SECRET)  # the same link in every digest
        assert token != unsubscribe_token(bo, SECRET)
        assert subscriber_for_token(s, token, SECRET).id == ana.id
        mac = token.split(".", 1)[1]
        flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
        for bad in [flipped, f"{bo.id}.{mac}", f"999.{mac}", "", None, "garbage",
                    f"{ana.id}.{mac}x", f"{ana.id}.{mac[:-1]}", token + "\n"]:
            with pytest.raises(UnsubscribeLinkError, match="this unsubscribe link is not valid"):
                subscriber_for_token(s, bad, SECRET)
        with pytest.raises(UnsubscribeLinkError):  # another installation's key
            subscriber_for_token(s, token, "another-secret-key-of-enough-length-0000000")


def test_recipients_merge_fixed_and_subscribers_once_each(ctx) -> None:  # type: ignore[no-untyped-def]
    subscribe(ctx, "ana@example.org", "cy@example.org", "gone@example.org")
    with ctx.sessions() as s:
        set_active(s, row_of(s, "gone@example.org"), False, actor="test", via="admin")
        s.commit()
        found = digest_recipients(s, ["Panel@Example.org", "ANA@example.org", "panel@example.org"],
                                  lambda: SECRET)
        cy = row_of(s, "cy@example.org")
    assert [(r.address, r.token) for r in found] == [
        ("panel@example.org", None), ("ana@example.org", None),  # fixed: no link
        ("cy@example.org", unsubscribe_token(cy, SECRET))]


def test_the_secret_is_not_needed_without_subscribers(ctx) -> None:  # type: ignore[no-untyped-def]
    def no_secret() -> str:
        raise ConfigError("MMLR_SECRET_KEY is not set")

    with ctx.sessions() as s:
        assert [r.address for r in digest_recipients(s, ["a@example.org"], no_secret)] == [
            "a@example.org"]


def test_mask_email() -> None:
    assert mask_email("ana.lopez@example.org") == "a***@example.org"
    assert mask_email("b@example.org") == "b***@example.org"
    assert mask_email("nonsense") == "***"


def test_footer_escapes_the_link_and_goes_before_the_body_end() -> None:
    url = 'https://review.example.org/unsubscribe?t=1.a"><script>x</script>&b'
    html, text = with_unsubscribe_footer("<html><body><p>digest</p></body></html>", "digest\n", url)
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp;b" in html
    assert html.index("Unsubscribe") > html.index("<p>digest</p>")
    assert html.endswith("</body></html>")
    assert text.startswith("digest\n") and text.rstrip().endswith(url)


def test_the_one_click_header_is_written_verbatim_on_one_line() -> None:
    url = ("https://living-review.haematology.example.org/myeloma/unsubscribe"
           "?t=12.sqbHh6KxQS1HDr5Z7TZr_Q2XoUGcIs_ui4UDLXYJCOU")
    msg = build_message(subject="s", text="t", html="<p>h</p>", sender="m@example.org",
                        recipients=["a@example.org"], headers=unsubscribe_headers(url))
    raw = msg.as_bytes()
    assert f"\nList-Unsubscribe: <{url}>\n".encode() in raw
    assert b"\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\n" in raw
    assert b"=?utf-8?" not in raw
    long_subject = build_message(subject="word " * 40, text="t", html="<p>h</p>",
                                 sender="m@example.org", recipients=["a@example.org"])
    assert b"\n word" in long_subject.as_bytes()  # other headers still fold as before
    with pytest.raises(ValueError, match="linefeed or carriage return"):  # no injection
        build_message(subject="s", text="t", html="<p>h</p>", sender="m@example.org",
                      recipients=["a@example.org"],
                      headers=unsubscribe_headers(url + ">\r\nBcc: evil@example.org"))


# ----------------------------------------------------------------------------- delivery
def test_each_subscriber_gets_a_personal_link_and_fixed_recipients_none(ctx, smtp, app) -> None:  # type: ignore[no-untyped-def]
    handler, port = smtp
    sctx = with_settings(ctx, smtp_url=f"smtp://127.0.0.1:{port}",
                         digest_to="Panel@Example.org, ana@example.org",
                         base_url="https://review.example.org/")
    test_mail.seed(ctx)
    subscribe(ctx, "ANA@example.org", "bo@example.org", "cy@example.org", "gone@example.org")
    with ctx.sessions() as s:
        set_active(s, row_of(s, "gone@example.org"), False, actor="test", via="admin")
        s.commit()
        tokens = {e: unsubscribe_token(row_of(s, e), SECRET)
                  for e in ("bo@example.org", "cy@example.org")}
    digest = build_digest(sctx)
    lines = deliver_digest(sctx, digest, retry_delays=FAST)
    assert len(lines) == 4 and all("sent to" in line for line in lines)

    got = by_recipient(handler)
    assert sorted(got) == ["ana@example.org", "bo@example.org", "cy@example.org",
                           "panel@example.org"]  # merged, once each, the inactive one left out
    for address, token in tokens.items():
        msg = got[address]
        url = f"https://review.example.org/unsubscribe?t={token}"
        # as sent, not only as decoded: an RFC 2047 encoded word would hide the URL from
        # the mail clients that offer one-click unsubscribe
        raw = dict(msg.raw_items())
        assert raw["List-Unsubscribe"] == f"<{url}>"
        assert raw["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        text, html, _ = parts(msg)
        assert _HREF.findall(html) == [url]
        assert f"Unsubscribe: {url}" in text
        assert "&lt;script&gt;alert(1)" in html  # the digest itself is still escaped
    for address in ("panel@example.org", "ana@example.org"):  # fixed: no link that cannot work
        msg = got[address]
        text, html, _ = parts(msg)
        assert msg["List-Unsubscribe"] is None and msg["List-Unsubscribe-Post"] is None
        assert "/unsubscribe" not in html and "/unsubscribe" not in text
    # the stored digest stays the same for everyone
    assert "/unsubscribe" not in digest.html and "/unsubscribe" not in digest.text
    with ctx.sessions() as s:
        rows = sorted((r.recipient, r.status) for r in s.exec(select(Delivery)).all())
    assert rows == [(a, "sent") for a in sorted(got)]

    # a mail client's one-click POST to the header's URL unsubscribes bo, with no cookie
    split = urlsplit(got["bo@example.org"]["List-Unsubscribe"].strip("<>"))
    with TestClient(app) as mail_client:
        response = mail_client.post(f"{split.path}?{split.query}",
                                    data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    with ctx.sessions() as s:
        assert not row_of(s, "bo@example.org").active
        assert row_of(s, "cy@example.org").active


def test_an_unsubscribed_person_gets_nothing_on_the_next_digest(ctx, smtp) -> None:  # type: ignore[no-untyped-def]
    handler, port = smtp
    sctx = with_settings(ctx, smtp_url=f"smtp://127.0.0.1:{port}")  # no MMLR_DIGEST_TO at all
    subscribe(ctx, "bo@example.org", "cy@example.org")
    flag_a_new_record(ctx, 91000001)
    deliver_digest(sctx, build_digest(sctx), retry_delays=FAST)
    assert sorted(by_recipient(handler)) == ["bo@example.org", "cy@example.org"]
    with ctx.sessions() as s:
        set_active(s, row_of(s, "bo@example.org"), False, actor="bo@example.org", via="link")
        s.commit()
    handler.messages.clear()
    flag_a_new_record(ctx, 91000002)
    second = build_digest(sctx)
    [line] = deliver_digest(sctx, second, retry_delays=FAST)
    assert f"digest #{second.id} sent to cy@example.org" in line
    assert list(by_recipient(handler)) == ["cy@example.org"]


def test_who_unsubscribes_during_a_delivery_gets_no_copy_of_it(ctx, smtp, app) -> None:  # type: ignore[no-untyped-def]
    # The recipients were read once, before the first message: someone who clicked the
    # one-click link while the batch was going out still got that digest.
    handler, port = smtp
    handler.hold_first = True  # the server keeps the first message waiting
    sctx = with_settings(ctx, smtp_url=f"smtp://127.0.0.1:{port}",
                         base_url="https://review.example.org/")
    flag_a_new_record(ctx, 91000003)
    subscribe(ctx, "aaa@example.org", "bbb@example.org", "ccc@example.org")
    with ctx.sessions() as s:
        token = unsubscribe_token(row_of(s, "bbb@example.org"), SECRET)
    digest = build_digest(sctx)
    out: dict[str, list[str]] = {}
    sending = threading.Thread(
        target=lambda: out.update(lines=deliver_digest(sctx, digest, retry_delays=FAST)))
    sending.start()
    try:
        assert handler.holding.wait(60), "the delivery never reached the server"
        with TestClient(app) as mail_client:  # bbb's mail client: the one-click POST
            response = mail_client.post(f"/unsubscribe?t={token}",
                                        data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200 and "You are unsubscribed" in response.text
    finally:
        handler.release.set()
        sending.join(60)
    assert sorted(by_recipient(handler)) == ["aaa@example.org", "ccc@example.org"]
    assert f"digest #{digest.id} not sent to bbb@example.org: unsubscribed while the digest " \
        "was being sent" in out["lines"]
    assert sum(f"digest #{digest.id} sent to" in line for line in out["lines"]) == 2
    with ctx.sessions() as s:
        assert sorted(r.recipient for r in s.exec(select(Delivery)).all()) == [
            "aaa@example.org", "ccc@example.org"]
        [entry] = actions(s, "digest.delivered")
        assert entry.details["unsubscribed"] == 1


def test_a_row_sent_under_another_case_is_not_sent_again(ctx, smtp) -> None:  # type: ignore[no-untyped-def]
    handler, port = smtp
    sctx = with_settings(ctx, smtp_url=f"smtp://127.0.0.1:{port}", digest_to="ana@example.org")
    digest = build_digest(sctx)
    with ctx.sessions() as s:  # written before addresses were compared lower-case
        s.add(Delivery(digest_id=int(digest.id or 0), channel="smtp",
                       recipient="Ana@Example.org", status="sent", attempts=1,
                       sent_at=digest.created_at))
        s.commit()
    subscribe(ctx, "ANA@EXAMPLE.ORG")
    [line] = deliver_digest(sctx, digest, retry_delays=FAST)
    assert "already sent to ana@example.org" in line and handler.messages == []


def test_outbox_copy_has_no_personal_link(ctx) -> None:  # type: ignore[no-untyped-def]
    subscribe(ctx, "bo@example.org")
    deliver_digest(ctx, build_digest(ctx))
    [eml] = ctx.settings.outbox_dir.glob("*.eml")
    msg = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    text, html, _ = parts(msg)  # type: ignore[arg-type]
    assert msg["List-Unsubscribe"] is None
    assert "/unsubscribe" not in html and "/unsubscribe" not in text
    assert "bo@example.org" not in eml.read_text(errors="replace")


def test_smtp_with_nobody_to_send_to_says_how_to_add_someone(ctx) -> None:  # type: ignore[no-untyped-def]
    subscribe(ctx, "gone@example.org")
    with ctx.sessions() as s:
        set_active(s, row_of(s, "gone@example.org"), False, actor="test", via="admin")
        s.commit()
    sctx = with_settings(ctx, smtp_url="smtp://127.0.0.1:9")
    with pytest.raises(ConfigError) as err:
        deliver_digest(sctx, build_digest(sctx), retry_delays=FAST)
    line = err.value.one_line()
    assert "nobody is subscribed and MMLR_DIGEST_TO is empty" in line
    assert "mmlr subscribers add EMAIL" in line and "/admin/subscribers" in line


# ----------------------------------------------------------------------------- unsubscribe pages
def _token(app: Any, address: str) -> str:
    with db(app) as s:
        return unsubscribe_token(row_of(s, address), SECRET)


def _state(app: Any, address: str) -> tuple[bool, int]:
    with db(app) as s:
        return row_of(s, address).active, len(actions(s, "subscriber.unsubscribe"))


def test_get_shows_the_masked_address_and_changes_nothing(app, client) -> None:  # type: ignore[no-untyped-def]
    subscribe(app, "ana.lopez@example.org")
    token = _token(app, "ana.lopez@example.org")
    for _ in range(2):  # a mail scanner, then the person
        page = client.get(f"/unsubscribe?t={token}")
        assert page.status_code == 200
        assert "a***@example.org" in page.text and "ana.lopez" not in page.text
        assert '<form method="post" action="/unsubscribe"' in page.text
        assert f'name="t" value="{token}"' in page.text
    assert _state(app, "ana.lopez@example.org") == (True, 0)
    assert page.headers["referrer-policy"] == "no-referrer"  # the token stays on this page


@pytest.mark.parametrize("multipart", [False, True])
def test_one_click_post_unsubscribes_without_login_or_csrf(app, multipart: bool) -> None:  # type: ignore[no-untyped-def]
    subscribe(app, "bo@example.org")
    token = _token(app, "bo@example.org")
    body: dict[str, Any] = ({"files": {"List-Unsubscribe": (None, "One-Click")}} if multipart
                            else {"data": {"List-Unsubscribe": "One-Click"}})
    with TestClient(app) as mail_client:  # no session, no cookie, no CSRF token
        first = mail_client.post(f"/unsubscribe?t={token}", **body)
        again = mail_client.post(f"/unsubscribe?t={token}", **body)
    assert first.status_code == again.status_code == 200
    assert "You are unsubscribed" in first.text and "b***@example.org" in first.text
    assert _state(app, "bo@example.org") == (False, 1)  # the second POST changed nothing
    with db(app) as s:
        [row] = actions(s, "subscriber.unsubscribe")
        assert (row.actor, row.details["via"]) == ("bo@example.org", "one-click")
        assert row_of(s, "bo@example.org").unsubscribed_at is not None
    # the page now says so instead of offering the button
    page = TestClient(app).get(f"/unsubscribe?t={token}")
    assert "You are unsubscribed" in page.text and "<form" not in page.text.split("<main")[1]


def test_the_confirm_button_unsubscribes(app, client) -> None:  # type: ignore[no-untyped-def]
    subscribe(app, "cy@example.org")
    page = client.get(f"/unsubscribe?t={_token(app, 'cy@example.org')}").text
    token = re.search(r'name="t" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    response = client.post("/unsubscribe", data={"t": token})
    assert response.status_code == 200 and "You are unsubscribed" in response.text
    assert _state(app, "cy@example.org") == (False, 1)
    with db(app) as s:
        assert actions(s, "subscriber.unsubscribe")[0].details["via"] == "link"


def test_forged_or_altered_token_is_400_and_changes_nothing(app, client) -> None:  # type: ignore[no-untyped-def]
    subscribe(app, "ana@example.org", "bo@example.org")
    token = _token(app, "ana@example.org")
    with db(app) as s:
        bo_id = row_of(s, "bo@example.org").id
    mac = token.split(".", 1)[1]
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in [f"?t={flipped}", f"?t={bo_id}.{mac}", f"?t=999.{mac}", "?t=", "",
                "?t=%3Cscript%3Ealert(1)%3C/script%3E"]:
        for method in ("GET", "POST"):
            response = client.request(method, f"/unsubscribe{bad}",
                                      data={"List-Unsubscribe": "One-Click"}
                                      if method == "POST" else None)
            assert response.status_code == 400, (method, bad)
            assert "this unsubscribe link is not valid" in response.text
            assert "Nothing was changed" in response.text
            assert "Traceback" not in response.text and "<script>alert" not in response.text
    assert _state(app, "ana@example.org") == (True, 0)
    assert _state(app, "bo@example.org") == (True, 0)


def test_a_fixed_recipient_is_told_the_link_cannot_remove_them(settings) -> None:  # type: ignore[no-untyped-def]
    from screening.web.app import create_app

    application = create_app(settings.model_copy(update={"digest_to": "Ana@Example.org"}))
    try:
        subscribe(application, "ana@example.org")
        token = _token(application, "ana@example.org")
        page = TestClient(application).get(f"/unsubscribe?t={token}")
        assert page.status_code == 200 and "MMLR_DIGEST_TO" in page.text
    finally:
        application.state.retrainer.join(timeout=30)
        application.state.ctx.dispose()


# ----------------------------------------------------------------------------- admin pages
def test_admin_pages_need_an_admin(app, client, users) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/admin/subscribers", follow_redirects=False).status_code == 303
    curator = as_role(app, users, "curator")
    assert curator.get("/admin/subscribers").status_code == 403
    assert 'href="/admin/subscribers"' not in curator.get("/").text
    token = csrf_from(curator.get("/").text)
    refused = curator.post("/admin/subscribers", data={"email": "x@example.org",
                                                       "csrf_token": token})
    assert refused.status_code == 403
    subscribe(app, "bo@example.org")
    with db(app) as s:
        bo_id = row_of(s, "bo@example.org").id
    refused = curator.post(f"/admin/subscribers/{bo_id}/active",
                           data={"active": "0", "csrf_token": token})
    assert refused.status_code == 403
    with db(app) as s:
        assert [r.email for r in s.exec(select(Subscriber)).all()] == ["bo@example.org"]
        assert row_of(s, "bo@example.org").active


def test_admin_forms_need_the_csrf_token(app, users) -> None:  # type: ignore[no-untyped-def]
    admin = as_role(app, users, "admin")
    subscribe(app, "bo@example.org")
    with db(app) as s:
        bo_id = row_of(s, "bo@example.org").id
    for data in ({}, {"csrf_token": "x" * 43}):
        assert admin.post("/admin/subscribers",
                          data={"email": "new@example.org", **data}).status_code == 403
        assert admin.post(f"/admin/subscribers/{bo_id}/active",
                          data={"active": "0", **data}).status_code == 403
    with db(app) as s:
        assert [r.email for r in s.exec(select(Subscriber)).all()] == ["bo@example.org"]
        assert row_of(s, "bo@example.org").active


def test_admin_adds_unsubscribes_and_reactivates(app, users) -> None:  # type: ignore[no-untyped-def]
    admin = as_role(app, users, "admin")
    page = admin.get("/admin/subscribers")
    assert page.status_code == 200 and 'href="/admin/subscribers"' in page.text
    added = admin.post("/admin/subscribers", data={"email": " New@Example.org ",
                                                   "csrf_token": csrf_from(page.text)},
                       follow_redirects=False)
    assert added.status_code == 303
    listing = admin.get("/admin/subscribers").text
    assert 'data-email="new@example.org"' in listing
    assert "new@example.org will receive the digests" in listing
    with db(app) as s:
        row = row_of(s, "new@example.org")
        assert (row.created_by, row.active) == (users["admin"], True)
        [audit_row] = actions(s, "subscriber.add")
        assert audit_row.actor == users["admin"]
    token = csrf_from(listing)
    off = admin.post(f"/admin/subscribers/{row.id}/active",
                     data={"active": "0", "csrf_token": token}, follow_redirects=False)
    assert off.status_code == 303
    with db(app) as s:
        assert not row_of(s, "new@example.org").active
        [audit_row] = actions(s, "subscriber.unsubscribe")
        assert (audit_row.actor, audit_row.details["via"]) == (users["admin"], "admin")
    on = admin.post(f"/admin/subscribers/{row.id}/active",
                    data={"active": "1", "csrf_token": token}, follow_redirects=False)
    assert on.status_code == 303
    with db(app) as s:
        assert row_of(s, "new@example.org").active
        assert len(actions(s, "subscriber.resubscribe")) == 1
    missing = admin.post("/admin/subscribers/999/active", data={"active": "0",
                                                               "csrf_token": token})
    assert missing.status_code == 404


def test_refused_address_keeps_what_was_typed_next_to_the_error(app, users) -> None:  # type: ignore[no-untyped-def]
    admin = as_role(app, users, "admin")
    token = csrf_from(admin.get("/admin/subscribers").text)
    bad = admin.post("/admin/subscribers", data={"email": "ana lopez@example.org",
                                                 "csrf_token": token})
    assert bad.status_code == 400
    assert 'value="ana lopez@example.org"' in bad.text
    field = bad.text[bad.text.index('id="new-email"'):]
    assert 'aria-invalid="true"' in field.split(">", 1)[0]
    error = re.search(r'<p class="field-error" id="new-email-error"[^>]*>([^<]*)</p>', field)
    assert error and "is not an e-mail address: it contains a space" in error.group(1)
    subscribe(app, "bo@example.org")
    dup = admin.post("/admin/subscribers", data={"email": "BO@example.org", "csrf_token": token})
    assert dup.status_code == 400 and "bo@example.org is already subscribed" in dup.text
    assert 'value="BO@example.org"' in dup.text
    with db(app) as s:
        assert [r.email for r in s.exec(select(Subscriber)).all()] == ["bo@example.org"]


def test_admin_page_shows_the_fixed_recipients(settings, users) -> None:  # type: ignore[no-untyped-def]
    del users  # made on the fixture's app; this test builds its own app on the same database
    from screening.web.app import create_app

    application = create_app(settings.model_copy(update={"digest_to": "Panel@Example.org"}))
    try:
        test_web.make_user(application, "boss@example.org", "admin")
        page = as_role(application, {"admin": "boss@example.org"}, "admin").get(
            "/admin/subscribers")
        fixed = page.text[page.text.index("Fixed recipients"):]
        assert "<li>panel@example.org</li>" in fixed and "MMLR_DIGEST_TO" in fixed
    finally:
        application.state.retrainer.join(timeout=30)
        application.state.ctx.dispose()


# ----------------------------------------------------------------------------- CLI
def test_cli_add_list_remove(db_url: str, tmp_path: Path) -> None:
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "cli"), MMLR_DATABASE_URL=db_url,
                  MMLR_DIGEST_TO="Fixed@Example.org")
    added = run_cli("subscribers", "add", "Ana@Example.org", env=env)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "ana@example.org subscribed to the digest"
    assert_one_line_error(run_cli("subscribers", "add", "ana@example.org", env=env),
                          "ana@example.org is already subscribed")
    assert_one_line_error(run_cli("subscribers", "add", "not-an-address", env=env),
                          "'not-an-address' is not an e-mail address: it has no @")
    listed = run_cli("subscribers", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("ana@example.org\tactive\tadded ") and lines[0].endswith("by cli")
    assert lines[1].startswith("fixed@example.org\tfixed (MMLR_DIGEST_TO")
    removed = run_cli("subscribers", "remove", "ANA@example.org", env=env)
    assert removed.returncode == 0 and removed.stdout.strip() == "ana@example.org unsubscribed"
    again = run_cli("subscribers", "remove", "ana@example.org", env=env)
    assert again.returncode == 0 and "already unsubscribed" in again.stdout
    assert_one_line_error(run_cli("subscribers", "remove", "nobody@example.org", env=env),
                          "nobody@example.org is not a subscriber")
    assert "\tunsubscribed " in run_cli("subscribers", "list", env=env).stdout
    assert_one_line_error(run_cli("subscribers", "add", "ana@example.org", env=env),
                          "ana@example.org unsubscribed on", "--resubscribe")
    back = run_cli("subscribers", "add", "ana@example.org", "--resubscribe", env=env)
    assert back.returncode == 0, back.stderr
    assert run_cli("subscribers", env=env).returncode == 2  # no action: usage error


def test_cli_lists_an_address_in_both_lists_once_as_fixed(db_url: str, tmp_path: Path) -> None:
    # It was listed twice, "active" and "fixed", as if it got two copies; it counts as fixed.
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "cli"), MMLR_DATABASE_URL=db_url,
                  MMLR_DIGEST_TO="ana@example.org, bo@example.org")
    assert run_cli("subscribers", "add", "ana@example.org", env=env).returncode == 0
    lines = run_cli("subscribers", "list", env=env).stdout.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("ana@example.org\tfixed (MMLR_DIGEST_TO: always receives, no "
                               "unsubscribe link); also subscribed\tadded ")
    assert lines[1] == ("bo@example.org\tfixed (MMLR_DIGEST_TO: always receives, no unsubscribe "
                        "link)")


def test_admin_page_says_when_nobody_is_mailed(app, users, settings) -> None:  # type: ignore[no-untyped-def]
    from pydantic import SecretStr

    from screening.web.app import create_app

    warning = "Mail is not configured"
    assert warning in as_role(app, users, "admin").get("/admin/subscribers").text
    mailing = create_app(settings.model_copy(
        update={"smtp_url": SecretStr("smtp://127.0.0.1:9")}))
    try:
        page = as_role(mailing, users, "admin").get("/admin/subscribers")
        assert page.status_code == 200 and warning not in page.text
    finally:
        mailing.state.retrainer.join(timeout=30)
        mailing.state.ctx.dispose()
