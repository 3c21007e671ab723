"""Outbound HTTP: how a delivery reaches a receiver, and what may stop it.

* ``sender``: one POST under a total deadline, reading a capped response.
* ``transport``: the network backend below httpx: SSRF guard on the address actually
  connected to, and the deadline on every read and write.
* ``addresses``: which IP addresses are permitted.
* ``urls``: which endpoint URLs are accepted.
* ``headers``: the request headers (Standard Webhooks, ours, the endpoint's own).
* ``errors``: why a request got no response (``SendError``), mapped from httpx once.
"""
