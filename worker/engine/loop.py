"""The sending loop: one thread per worker process running ``asyncio``, where every
claimed delivery's HTTP exchange is a coroutine.

Hundreds of deliveries can be in flight in one process, and a receiver that never
answers holds a socket and a slot of its endpoint's concurrency budget, not a thread.
The loop has a fixed *room* (deliveries claimed and not yet recorded). Claiming
threads reserve room before they claim, so nothing is claimed that the loop could not
start at once (a claimed delivery's lease is ticking); a full loop makes them wait,
which is the back-pressure on the broker.

Each endpoint's concurrency budget bounds what it holds of the room (the claim enforces
it across processes), so the room itself only guards the process's file descriptors:
by default it is sized from ``RLIMIT_NOFILE`` (its soft limit first raised to the hard
one), big enough that budgets, not the room, bound what is in flight — a hundred
endpoints that never answer hold their budgets and no more, and the healthy ones
beside them still find room.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_ROOM = 1000
"""Deliveries one process may have claimed and not yet recorded, where the open-files
limit cannot be read."""

MAX_ROOM = 10_000
"""The most a room sized from the open-files limit holds."""

MIN_ROOM = 64
"""The least a room sized from the open-files limit holds."""

FILES_KEPT = 256
"""Descriptors left aside for everything but in-flight sockets: database and broker
connections, logs, listening sockets, the resolver."""


def room_for_open_files() -> int:
    """A room sized from this process's open-files limit, after raising its soft limit
    to the hard one: half of what is left once :data:`FILES_KEPT` are set aside (each
    delivery in flight holds a socket, and as many again may sit idle in the
    keep-alive pool), between :data:`MIN_ROOM` and :data:`MAX_ROOM`. A socket refused
    for want of descriptors would be recorded as the receiver's connect failure."""
    try:
        import resource
    except ImportError:  # not on this platform
        return DEFAULT_ROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = MAX_ROOM * 2 + FILES_KEPT if hard == resource.RLIM_INFINITY else hard
        if soft != resource.RLIM_INFINITY and wanted > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
                soft = wanted
            except (OSError, ValueError):  # e.g. a hard limit the kernel caps lower
                pass
    if soft == resource.RLIM_INFINITY:
        return MAX_ROOM
    return max(MIN_ROOM, min(MAX_ROOM, (soft - FILES_KEPT) // 2))


class SendingLoop:
    """An asyncio event loop on its own daemon thread, with a bounded room."""

    def __init__(self, room: int | None = None, *, name: str = "catentio-sending") -> None:
        """``room``: deliveries in flight at most; by default
        :func:`room_for_open_files`."""
        room = room_for_open_files() if room is None else room
        self._room = room
        self._free = room
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop itself."""
        return self._loop

    def reserve(self, wanted: int, timeout: float | None = None, *, whole: bool = False) -> int:
        """Take up to ``wanted`` places, waiting (up to ``timeout``) until at least one
        (``whole``: all of them, or the whole room) is free; returns how many were taken
        (0 only after the timeout)."""
        needed = min(wanted, self._room) if whole else 1
        with self._changed:
            if not self._changed.wait_for(lambda: self._free >= needed, timeout):
                return 0
            taken = min(wanted, self._free)
            self._free -= taken
            return taken

    def release(self, count: int) -> None:
        """Give ``count`` places back."""
        if count <= 0:
            return
        with self._changed:
            self._free = min(self._room, self._free + count)
            self._changed.notify_all()

    @property
    def room(self) -> int:
        """Deliveries in flight at most."""
        return self._room

    @property
    def in_use(self) -> int:
        """Places taken now."""
        with self._changed:
            return self._room - self._free

    def submit(
        self, coroutine: Coroutine[Any, Any, T], context: contextvars.Context | None = None
    ) -> Future[T]:
        """Run ``coroutine`` on the loop (as a task in ``context``: the caller's own by
        default, so its log ids and trace come along); its result as a thread-safe future."""
        if context is None:
            return asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return context.run(asyncio.run_coroutine_threadsafe, coroutine, self._loop)

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the loop and wait for its result."""
        return self.submit(coroutine).result(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the loop once what runs on it now has been cancelled."""
        if not self._thread.is_alive():
            return

        async def _cancel_all() -> None:
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.submit(_cancel_all()).result(timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._loop.close()
