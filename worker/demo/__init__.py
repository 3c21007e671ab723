"""``catentio-webhooks demo``: the whole pipeline, checked, on the embedded default.

* ``scenario``: three endpoints (healthy, flaky, gone), the events, the checks.
* ``receiver``: a verifying webhook receiver on loopback (also used by the tests).
"""
