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

from app.admission import QueueFull


class BlockingPool:
    def __init__(self, threads: int, name: str = "blocking", queue_limit: int = 64):
        self.size = threads
        self.name = name
        # Calls that may wait for a thread; one more is refused at once (QueueFull, a 503 with Retry-After): a
        # queue longer than what the threads finish within a request's deadline only makes every call late.
        self.queue_limit = queue_limit
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._closing = False
        self.active = 0
        self.queued = 0
        self.refused = 0

    async def run(self, fn, /, *args, **kwargs):
        """Run ``fn(*args, **kwargs)`` in the pool and wait for its result without blocking the loop.

        Raises QueueFull when `queue_limit` calls already wait, or when the pool is closing."""
        # Copy the caller's context (request id, the request's deadline for PyMongo's timeout) into the worker,
        # as Motor does for its own pool.
        call = functools.partial(contextvars.copy_context().run, self._track, fn, args, kwargs)
        with self._lock:
            if self._closing or self.queued >= self.queue_limit:
                self.refused += 1
                raise QueueFull(self.name, self.queue_limit)
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
        return {
            "size": self.size,
            "active": self.active,
            "queued": self.queued,
            "queue_limit": self.queue_limit,
            "refused": self.refused,
        }

    async def aclose(self) -> None:
        """Refuse new calls, cancel the queued ones, let the running ones finish, then stop the threads.

        Called after the drain: a backlog still queued then would run past supervisord's stop timeout for
        requests that are already over. The wait for running calls happens off the loop, which keeps serving."""
        with self._lock:
            self._closing = True
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)
