"""The baseline for the API benchmark: an ASGI app that answers a constant, served by
uvicorn with the same settings as ``catentio-webhooks api``.

    python -m tests.bench.bare_asgi PORT
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

BODY = b'{"data":{"ok":true},"error":null,"meta":{"requestId":"req_0","timestamp":"0"}}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Read the request body, answer 200 with a constant JSON body."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


if __name__ == "__main__":
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
    )
    uvicorn.Server(config).run()
