"""Fan-out: from outbox events to deliveries, and the bell rung again when it was lost.

* ``poller``: claims waiting events, creates one delivery per subscribed endpoint,
  dispatches them after commit; its sweeper re-rings due, unleased deliveries.
"""
