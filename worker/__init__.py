"""The worker: turns outbox rows into signed, retried, recorded webhook deliveries.

One folder per concept; read the file list as a table of contents:

==================  =========================================================================
``fanout/``         the poller (outbox events → deliveries) and the sweeper (re-ring lost bells)
``engine/``         the delivery engine: batched claims (admission, budgets, ordering), the
                    asyncio sending loop, batched records, the pure outcome → state transition
``delivery/``       the doorbell: the actor on its broker, its middleware, the bell that rings it
``policy/``         what an outcome means (outcomes, schedule) and what an endpoint may take
                    (admission, circuit breaker, limits); operational notices
``http/``           outbound HTTP: the senders (aiohttp behind the SSRF guard, one deadline),
                    address and URL rules, request headers, send errors
``endpoints/``      the registry, on/off switches, event and payload filters, signing secrets,
                    rotation and the secret box that encrypts them at rest
``ops/``            what ops look at and do: history, replay (and bulk replay runs), stats,
                    activity, views, retention, the checks (``check``, ``/readyz``)
``telemetry/``      metrics (the interface the engine calls, Prometheus), the state gauges, the
                    per-process /metrics /healthz /readyz listener
``access/``         who may call the HTTP API: API keys (stored as hashes) and principals
``api/``            the HTTP API (FastAPI): envelope, auth, idempotency, rate limits, routes
``portal/``         the web portal (mounted by the API process): signed links, API-key sign-in and
                    sessions, pages and actions over the functions above, templates, vendored htmx
``cli/``            ``catentio-webhooks``: commands only, over the functions above
``demo/``           the self-checking demo and its verifying receiver (not on the runtime path)
==================  =========================================================================

At the top: ``settings`` (the one settings object), ``runtime`` (the wiring of one
process), ``logs``, ``durations``, ``keyfiles`` (keys embedded mode generates beside its
database) and ``errors`` (the worker's branches of the error tree).
"""
