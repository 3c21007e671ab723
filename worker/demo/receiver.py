"""A small webhook receiver on loopback that verifies every request it gets.

The demo runs one to show deliveries arriving, and the tests run one as the real HTTP
server at the other end. Each path has its own secret and its own behaviour (``always
200``, ``500 twice then 200``, ``410``, a slow reply…), and every request is recorded with
whether its signature verified with :mod:`catentio_signing`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from catentio_signing import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Reply:
    """What the receiver answers. ``delay``: seconds before the status line;
    ``trickle``: seconds between body bytes (a slow body)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    trickle: float | None = None


Behaviour = Callable[[int], Reply]
"""The n-th request to a path for one ``webhook-id`` (1-based) → the reply. Counting per
message means "500 twice, then 200" holds for every event, however they interleave."""


def always(status: int = 200, **kwargs: Any) -> Behaviour:
    """Every request gets the same reply."""
    reply = Reply(status, **kwargs)
    return lambda _n: reply


def sequence(*statuses: int) -> Behaviour:
    """Reply to each message with these statuses in turn, then repeat the last one."""
    return lambda n: Reply(statuses[min(n, len(statuses)) - 1])


class _Server(ThreadingHTTPServer):
    # The sending loop opens as many connections at once as an endpoint's concurrency
    # limit allows; socketserver's default backlog of 5 would drop the rest's SYNs.
    request_queue_size = 128


@dataclass(frozen=True)
class Received:
    """One request as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    error: str | None
    at: float


@dataclass
class _Route:
    webhook: Webhook | None
    behaviour: Behaviour
    counts: dict[str, int] = field(default_factory=dict)


class Receiver:
    """A threaded HTTP server on ``127.0.0.1`` (port chosen by the OS)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._routes: dict[str, _Route] = {}
        self._received: list[Received] = []
        self._lock = threading.Condition()
        self._server = _Server((host, 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def route(
        self,
        path: str,
        *,
        secret: str | Sequence[str] | None = None,
        behaviour: Behaviour | None = None,
    ) -> str:
        """Answer ``path`` with ``behaviour``, verifying with ``secret``; returns its URL."""
        webhook = None
        if secret is not None:
            webhook = Webhook(secret if isinstance(secret, str) else list(secret))
        with self._lock:
            self._routes[path] = _Route(webhook, behaviour or always(200))
        return self.base_url + path

    def set_secret(self, path: str, secret: str | Sequence[str]) -> None:
        """Verify ``path`` with another secret from now on (the route must exist)."""
        with self._lock:
            self._routes[path].webhook = Webhook(
                secret if isinstance(secret, str) else list(secret)
            )

    def received(self, path: str | None = None) -> list[Received]:
        """Requests received so far (to ``path``, if given), in order."""
        with self._lock:
            return [r for r in self._received if path is None or r.path == path]

    def wait_for(self, count: int, *, path: str | None = None, timeout: float = 10.0) -> bool:
        """Block until ``count`` requests (to ``path``) arrived; False on timeout."""
        end = time.monotonic() + timeout
        with self._lock:
            while len([r for r in self._received if path is None or r.path == path]) < count:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def start(self) -> Receiver:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        path = handler.path
        with self._lock:
            route = self._routes.get(path)
            if route is not None:
                message = headers.get("webhook-id", "")
                n = route.counts[message] = route.counts.get(message, 0) + 1
        if route is None:
            reply = Reply(404)
            verified, error = False, "no such route"
        else:
            reply = route.behaviour(n)
            verified, error = True, None
            if route.webhook is not None:
                try:
                    route.webhook.verify(body, headers)
                except WebhookVerificationError as exc:
                    verified, error = False, f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._received.append(Received(path, headers, body, verified, error, time.time()))
            self._lock.notify_all()
        if reply.delay:
            time.sleep(reply.delay)
        handler.send_response(reply.status)
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.send_header("content-length", str(len(reply.body)))
        handler.end_headers()
        if reply.trickle is None:
            handler.wfile.write(reply.body)
            return
        for i in range(len(reply.body)):
            handler.wfile.write(reply.body[i : i + 1])
            handler.wfile.flush()
            time.sleep(reply.trickle)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                try:
                    receiver._handle(self)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
