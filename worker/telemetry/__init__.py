"""What a running process tells its operator besides logs: metrics, health, traces.

* ``metrics``: the :class:`~worker.telemetry.metrics.Metrics` interface the delivery
  path and the poller call at a few clear points (a no-op by default) and its
  Prometheus implementation;
* ``gauges``: figures derived from the database's state (outbox lag, backlog, in
  flight, open circuits, disabled endpoints), queried at scrape time;
* ``exporter``: one HTTP listener per process on ``CATENTIO_METRICS_PORT`` serving
  ``/metrics``, ``/healthz`` and ``/readyz``, and an ASGI app the API process mounts.
"""
