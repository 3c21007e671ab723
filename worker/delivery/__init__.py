"""The delivery engine: one attempt of one delivery, rung by a dramatiq message.

* ``actor``: ``deliver(delivery_id)``, declared on a broker built first; re-sends itself
  with the delay the policy chose.
* ``broker``: the Redis broker, or the in-process one of embedded mode.
* ``middleware``: per-message log context.
* ``bell``: how anything else (the poller, a replay) asks the workers to look at a row.
* ``deliverer``: claim, admit, sign, send, record; the row decides, not the message.
"""
