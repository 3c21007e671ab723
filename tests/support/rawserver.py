"""A raw TCP server for responses no HTTP server library would send: headers trickling
in one byte at a time, or bytes that are not HTTP at all."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence


class RawServer:
    """Accepts connections on 127.0.0.1; to each, reads the request head and writes
    ``chunks`` with ``pause`` seconds between them, then closes."""

    def __init__(self, chunks: Sequence[bytes], pause: float) -> None:
        self._chunks = list(chunks)
        self._pause = pause
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.connections = 0

    def start(self) -> str:
        """Serve in the background; returns ``http://127.0.0.1:PORT``."""
        self._thread.start()
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def stop(self) -> None:
        """Stop accepting and close the listening socket."""
        self._stop.set()
        self._thread.join(5)
        self._socket.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(5)
            try:
                received = b""
                while b"\r\n\r\n" not in received:
                    data = connection.recv(65536)
                    if not data:
                        return
                    received += data
                for chunk in self._chunks:
                    if self._stop.is_set():
                        return
                    connection.sendall(chunk)
                    time.sleep(self._pause)
            except OSError:
                return
