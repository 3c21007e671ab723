"""A minimal HTTP/1.1 receiver for the engine benchmark, run in its own process.

``python -m tests.bench.engine_receiver PORT_FILE``: listens on 127.0.0.1 (a free port,
written to ``PORT_FILE``), answers every ``POST`` with ``200`` on a kept-alive
connection, except under ``/hang/``, where it reads the request and never answers. It
does no signature check, so that it costs little per request and is never what the
benchmark measures; the benchmark reads its CPU time from ``/proc`` and reports it.
``GET /count`` answers the number of requests answered so far.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

_answered = 0


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    global _answered
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            method, path = lines[0].split(b" ")[:2]
            length = 0
            for line in lines[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            if path.startswith(b"/hang/"):
                await asyncio.sleep(3600)
                return
            body = str(_answered).encode() if method == b"GET" else b"ok"
            _answered += method == b"POST"
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def _main(port_file: Path) -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    port_file.write_text(str(port))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_main(Path(sys.argv[1])))
