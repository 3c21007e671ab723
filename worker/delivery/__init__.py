"""The doorbell: dramatiq messages that ring the delivery engine (``worker.engine``).

* ``actor``: ``deliver(*delivery_ids)``, declared on a broker built first; it hands the
  batch to the engine, which rings retries, releases and pulls through it.
* ``broker``: the Redis broker, or the in-process one of embedded mode.
* ``middleware``: per-message log context.
* ``bell``: how anything else (the poller, a replay) asks the workers to look at rows,
  up to a hundred per message.
"""
