"""The thread-pool fallback for application code: run any blocking call off the event loop.

For what is not the database (a legacy client, CPU-heavy hashing, file I/O). One owned, sized pool per process,
separate from the `threads` store's pool and from the loop's default executor, with a visible queue depth so an
operator can tell "the pool is saturated" from "the call is slow".

    digest = await self.blocking.run(hashlib.pbkdf2_hmac, "sha256", password, salt, 600_000)
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from concurrent.futures import ThreadPoolExecutor


class BlockingPool:
    def __init__(self, threads: int, name: str = "blocking"):
        self.size = threads
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._lock = threading.Lock()
        self.active = 0
        self.queued = 0

    async def run(self, fn, /, *args, **kwargs):
        """Run ``fn(*args, **kwargs)`` in the pool and wait for its result without blocking the loop."""
        # Copy the caller's context (request id, etc.) into the worker, as Motor does for its own pool.
        call = functools.partial(contextvars.copy_context().run, self._track, fn, args, kwargs)
        with self._lock:
            self.queued += 1
        future = self._executor.submit(call)
        future.add_done_callback(self._forget_if_cancelled)
        return await asyncio.wrap_future(future)

    def _track(self, fn, args, kwargs):
        with self._lock:
            self.queued -= 1
            self.active += 1
        try:
            return fn(*args, **kwargs)
        finally:
            with self._lock:
                self.active -= 1

    def _forget_if_cancelled(self, future) -> None:
        # A call cancelled while still queued (its request went away) never reaches _track.
        if future.cancelled():
            with self._lock:
                self.queued -= 1

    def stats(self) -> dict[str, int]:
        return {"size": self.size, "active": self.active, "queued": self.queued}

    async def aclose(self) -> None:
        """Let running calls finish, then stop the threads; the wait happens off the loop, which keeps serving."""
        await asyncio.to_thread(self._executor.shutdown, True)
