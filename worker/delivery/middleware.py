"""dramatiq middleware: the cross-cutting work that does not belong in the actor."""

from __future__ import annotations

from typing import Any

import dramatiq
import structlog


class LogContext(dramatiq.Middleware):
    """Start and end every message with an empty log context, so ids bound while
    delivering one message never leak into the next one on the same thread."""

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(message_id=message.message_id)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        structlog.contextvars.clear_contextvars()

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        structlog.contextvars.clear_contextvars()
