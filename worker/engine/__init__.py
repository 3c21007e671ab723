"""The delivery engine: claim many, send asynchronously, record many.

::

    broker message (a batch of ids) ──▶ claim (one transaction)  ──▶ sending loop
                                          worker.engine.claim          (asyncio thread,
                                                                        worker.engine.send)
    recorder thread ◀── finished attempts ◀──────────────────────────────┘
      worker.engine.record (one transaction per batch), then retries as delayed messages,
      released deliveries, and pulls of endpoints whose budget left deliveries waiting

The database stays the truth: every attempt starts by winning a row's claim and is
recorded under the lease token it won. ``worker.engine.transition`` holds the pure
outcome → next-state functions; ``worker.engine.engine`` the wiring.
"""
