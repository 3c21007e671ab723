"""The portal: a web page where a workspace sees its endpoints, their deliveries and
events, and replays, served by the API process at ``/portal``.

* ``tokens``: signed, expiring portal links and sessions, and CSRF tokens.
* ``keys``: the portal secret (configured, or generated in embedded mode).
* ``links``: minting a portal link URL (the CLI's ``portal link``, the API's
  ``POST /v1/portal/links``).
* ``access``: opening a link, the session cookie, checks on every write.
* ``login``: signing in with an API key (checked by ``worker.access``).
* ``headers``: Content-Security-Policy and the other security headers; ``timing``:
  ``Server-Timing`` on every response.
* ``pages`` and ``actions``: what it shows and what it does, on the domain functions
  the command line and the API call.
* ``chart``: the endpoint chart's geometry; ``rendering``: the templates.
* ``replays``: a bulk replay's progress, read from the API's ``replay_runs`` table.
* ``app``: the ASGI app to mount.

Errors: see ``worker.portal.errors``.
"""
