"""What the person on call looks at and does, over a long history.

* ``history``: filtered, keyset-paginated deliveries and events.
* ``replay``: re-open deliveries (one, an event's, or a bulk selection).
* ``stats``: the pipeline at a glance.
* ``activity``: an endpoint's recent success rates and backlog.
* ``timeline``: an endpoint's attempts minute by minute (outcome, latency).
* ``tenancy``: rows looked up for one workspace (another's answers as missing).
* ``views``: rows as plain data, never a secret.
* ``retention``: prune finished history, by command or from the poller's loop.
"""
