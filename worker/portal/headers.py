"""Security headers on every portal response, error pages included.

The Content-Security-Policy allows scripts, styles and fetches only from the portal's
own origin (the vendored htmx and the copy-button script), no inline script or style,
no plugins, no ``<base>`` and forms posting only back to us. ``frame-ancestors`` comes
from ``CATENTIO_PORTAL_FRAME_ANCESTORS`` (``'none'`` by default) so the control plane
can embed the portal while nobody else can frame it. ``Referrer-Policy: no-referrer``
keeps a portal link's token out of the ``Referer`` of anything the page links to.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def content_security_policy(frame_ancestors: str) -> str:
    """The portal's CSP header value."""
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "form-action 'self'",
            "base-uri 'none'",
            f"frame-ancestors {frame_ancestors}",
        ]
    )


def security_headers(frame_ancestors: str) -> list[tuple[bytes, bytes]]:
    """Every header the portal adds to its responses."""
    headers = [
        ("content-security-policy", content_security_policy(frame_ancestors)),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        ("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=()"),
    ]
    if frame_ancestors == "'none'":
        headers.append(("x-frame-options", "DENY"))  # for browsers without CSP level 2
    return [(name.encode(), value.encode()) for name, value in headers]


class SecurityHeaders:
    """ASGI middleware adding :func:`security_headers` to every HTTP response, and
    ``Cache-Control: no-store`` to every one that is not a static asset."""

    def __init__(
        self, app: ASGIApp, *, frame_ancestors: str, cacheable: Iterable[str] = ()
    ) -> None:
        self.app = app
        self.headers = security_headers(frame_ancestors)
        self.cacheable = tuple(cacheable)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        static = any(path.startswith(prefix) for prefix in self.cacheable)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [h for h in self.headers if h[0] not in present]
                if not static and b"cache-control" not in present:
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
