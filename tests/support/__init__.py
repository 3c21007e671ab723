"""What the tests share besides fixtures: importable helpers, one copy of each.

``conftest.py`` files hold fixtures only (pytest finds those by itself); anything a
test module imports comes from here:

* ``services``: where PostgreSQL and Redis are, the test settings, the fixed key;
* ``clock``: a clock that moves only when told;
* ``waiting``: polling for a condition instead of sleeping;
* ``cli``: running ``catentio-webhooks`` through its real entry point;
* ``harness``: the delivery engine driven one call at a time, and receiver behaviours;
* ``history``: a seeded history of thousands of deliveries;
* ``rawserver``: a TCP server that answers with bytes no HTTP library would send.
* ``scrape``: a real ``catentio-webhooks`` process with metrics on, and its scrapes.
"""
