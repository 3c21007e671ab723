"""The delivery policy: what an outcome means, and what an endpoint may take.

* ``outcomes``: every attempt's result classified (succeeded, retry, failed, gone).
* ``schedule``: the retry delays, with jitter, honouring ``Retry-After``.
* ``admission``: may a claimed delivery go now (paused, circuit, concurrency, rate)?
* ``circuit``: the circuit breaker (one probe at a time) and automatic disabling.
* ``limits``: per-endpoint concurrency and rate (GCRA), enforced in the database.
* ``notices``: ``webhook.endpoint.disabled`` / ``webhook.delivery.exhausted`` events.
"""
