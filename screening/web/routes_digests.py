"""Digests as they were sent, and where they went."""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import col, select

from reports.digest import carried_by, is_preview
from screening.web.deps import DbSession, Viewer, get_or_404
from screening.web.templating import render
from store.models import Delivery, Digest

router = APIRouter()

# The stored digest HTML is shown in an <iframe sandbox> (no scripts, no forms, no same-origin
# access) and served with a CSP that is itself a sandbox, so even a digest with hostile content
# from PubMed cannot run anything. Only this response may be framed, and only by us.
DIGEST_FRAME_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'; img-src data: cid: 'self'; "
                               "style-src 'unsafe-inline'; frame-ancestors 'self'",
    "X-Frame-Options": "SAMEORIGIN",
}


def _digest(session: DbSession, digest_id: int) -> Digest:
    return get_or_404(session, Digest, digest_id, missing=f"digest {digest_id} does not exist")


@router.get("/digests")
def digests_page(request: Request, session: DbSession, user: Viewer) -> Response:
    digests = session.exec(select(Digest).order_by(col(Digest.created_at).desc()).limit(200)).all()
    return render(request, "digests.html", {"digests": digests})


@router.get("/digests/{digest_id}")
def digest_page(request: Request, digest_id: int, session: DbSession, user: Viewer) -> Response:
    digest = _digest(session, digest_id)
    deliveries = session.exec(select(Delivery).where(Delivery.digest_id == digest_id)
                              .order_by(col(Delivery.id))).all()
    # A digest nobody received is not lost when a later one carried its changes: said, so
    # that "Not delivered yet" does not send anyone to deliver an outdated digest.
    delivered = any(d.status == "sent" for d in deliveries)
    # Who the digest went to is the subscriber list (admin-only on /admin/subscribers), and
    # the errors quote addresses too: others see how many copies went out or failed.
    admin = user.role == "admin"
    counts = Counter((d.channel, d.status) for d in deliveries)
    return render(request, "digest.html", {
        "digest": digest, "deliveries": deliveries if admin else [],
        "delivery_counts": sorted((c, st, n) for (c, st), n in counts.items()),
        "show_recipients": admin, "preview": is_preview(digest),
        "carried_by": None if delivered else carried_by(session, digest)})


@router.get("/digests/{digest_id}/html")
def digest_html(digest_id: int, session: DbSession, user: Viewer) -> Response:
    digest = _digest(session, digest_id)
    return HTMLResponse(digest.html, headers=DIGEST_FRAME_HEADERS)
