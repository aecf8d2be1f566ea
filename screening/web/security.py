"""Security headers on every response.

The app needs no JavaScript at all, so the content security policy forbids scripts outright.
A route that needs something else (the sandboxed digest frame, SVG plots) sets its own
headers; this middleware only fills in the headers a response does not already carry.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

DEFAULT_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    # same-origin: the app's own pages say where a form was sent from (the "log in again"
    # link returns there); no address ever goes to another site. /unsubscribe sends none.
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Another site may not embed our plots, JSON or downloads (the browser refuses to load
    # them cross-origin, whatever cookies it would send): nothing here is for other sites.
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in DEFAULT_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
                if self.hsts:
                    headers.setdefault("Strict-Transport-Security", "max-age=31536000")
                if "cache-control" not in headers and not static:
                    # Pages, plots and downloads show unpublished curation work: keep them
                    # out of every cache, the browser's disk too (a shared computer keeps
                    # what it cached after the user logged out). Only /static may be kept.
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)
