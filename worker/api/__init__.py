"""The HTTP API: ``/v1/webhooks`` and ``/v1/events`` in the Forjio envelope (FastAPI on
uvicorn), a door onto the same domain functions the command line calls.

==================  =========================================================================
``app``             the FastAPI app: routers, error handlers, the OpenAPI document
``server``          the context built from settings, uvicorn in the foreground or a thread
``context``         what handlers share (sessions, box, limiter, idempotency, replays, bell)
``middleware``      request ids, the body limit, rate-limit headers on every response, logs
``access``          dependencies: the request's session, its caller (key, workspace, budget)
``envelope``        ``{data, error, meta}`` as pydantic models and as bytes
``errors``          stable codes, and the one translation of domain errors into them
``idempotency``     ``Idempotency-Key``: the stored responses
``ratelimit``       per-workspace budgets with ``limits`` (Redis-shared)
``cursor``          opaque keyset cursors tied to their filters
``openapi``         the error responses every operation documents; the committed document
``schemas/``        request and response bodies, one module per resource
``routes/``         the operations, one module per resource
==================  =========================================================================

Errors: :class:`~worker.api.errors.ApiError` is the only exception of its own; handlers
raise the domain's (``worker.errors``, ``worker.access.errors``) and
:func:`~worker.api.errors.api_error_for` answers them.
"""
