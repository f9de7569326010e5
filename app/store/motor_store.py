"""`motor` mode: Motor's AsyncIOMotorClient, which runs blocking PyMongo on Motor's own global thread pool.

That pool is sized by FLEET_DB_THREADS, as the `threads` store's pool is: `MotorStore.open` puts an executor of
that size in Motor's place before the client runs its first call. Motor is deprecated (critical fixes only until
2027-05-14); `async` mode is its successor.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor

import motor.frameworks.asyncio as motor_asyncio
from motor.motor_asyncio import AsyncIOMotorClient

from app.store.base import AwaitableDriverStore, client_options

log = logging.getLogger("fleet.store")


class MotorStore(AwaitableDriverStore):
    mode = "motor"

    @classmethod
    def open(cls, settings) -> MotorStore:
        use_executor_of_size(settings.db_threads)
        return cls(AsyncIOMotorClient(settings.mongodb_uri, **client_options(settings)), settings.db_name)

    def pool_stats(self) -> dict[str, int] | None:
        """Motor's thread pool: its size and the calls waiting for one of its threads.

        How many of its threads are busy is not readable without more of ThreadPoolExecutor's private state, so
        `active` is left out. None if this Motor keeps its pool elsewhere (see use_executor_of_size)."""
        executor = getattr(motor_asyncio, "_EXECUTOR", None)
        queue = getattr(executor, "_work_queue", None)
        size = getattr(executor, "_max_workers", None)
        if not isinstance(executor, ThreadPoolExecutor) or not isinstance(size, int) or not hasattr(queue, "qsize"):
            return None
        return {"size": size, "queued": queue.qsize()}

    async def close(self) -> None:
        # Motor's close() is the blocking PyMongo one (it ends the server sessions, which waits on a dead database).
        await asyncio.to_thread(self._client.close)


def use_executor_of_size(threads: int) -> None:
    """Make Motor run its blocking calls on a pool of `threads` threads.

    Motor has no API for this: its only knob is the MOTOR_MAX_WORKERS environment variable, read once when Motor is
    first imported, outside the env file, its validation and a rolling switch. So this replaces the module-level
    executor that `motor.frameworks.asyncio.run_on_executor` looks up on every call (`_EXECUTOR`), and the size its
    after-fork reset uses (`max_workers`), checking both exist first: a Motor that keeps its pool elsewhere is left
    as it is, with a warning, rather than given a pool it never uses. Threads start on demand, so the replaced
    (unused) executor holds none.
    """
    if os.environ.get("MOTOR_MAX_WORKERS"):
        log.warning("MOTOR_MAX_WORKERS is ignored: FLEET_DB_THREADS (%d) sizes Motor's thread pool", threads)
    current = getattr(motor_asyncio, "_EXECUTOR", None)
    if not isinstance(current, ThreadPoolExecutor) or not isinstance(getattr(motor_asyncio, "max_workers", None), int):
        log.warning("this Motor keeps its thread pool elsewhere: FLEET_DB_THREADS does not size it")
        return
    if current._max_workers == threads:
        return
    motor_asyncio._EXECUTOR = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="motor")
    motor_asyncio.max_workers = threads
    current.shutdown(wait=False)
