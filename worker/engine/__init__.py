"""The delivery engine: claim many, send asynchronously, record many.

::

    broker message (up to 100 ids) ──▶ claim (one transaction)  ──▶ sending loop
                                         worker.engine.claim           (asyncio thread,
                                                                        worker.http.aio)
    recorder thread ◀── finished attempts ◀─────────────────────────────┘
      worker.engine.record (one transaction per batch), then retries as delayed messages,
      released deliveries, and pulls of endpoints whose budget left deliveries waiting

The database stays the truth: every attempt starts by winning a row's claim and is
recorded under the lease token it won. ``worker.engine.transition`` holds the pure
outcome → next-state functions, ``worker.engine.loop`` the sending loop and its room,
``worker.engine.engine`` the wiring, ``worker.engine.results`` what callers get back.
"""
