"""`GuardedStore`: the Store every handler gets. Each operation runs inside its request's deadline, none is sent
for a client that left, and each is timed and its errors counted in the process's metrics.

Wraps the mode's store (``open_store`` returns it), so the three modes behave alike (app/admission.py says why):
- past the request's deadline an operation is not sent: `DeadlineExceeded` (503);
- otherwise it runs under ``pymongo.timeout(what is left)``; a driver timeout at the deadline is reported as
  `DeadlineExceeded` too, other timeouts stay PyMongo's own (503 "database unavailable");
- PyMongo's timeout replaces serverSelectionTimeoutMS while it is set (``topology_shared.get_server_selection_timeout``
  returns what is left of it), which would make a dead database cost every request its whole deadline instead of
  FLEET_DB_TIMEOUT_MS. So while the driver knows no server to write to (``Store.server_known()``, its monitor's
  view, no I/O), the timeout is at most FLEET_DB_TIMEOUT_MS: a dead database stays a fast 503;
- after the client disconnected an operation is not sent (`ClientGone`), and one being awaited when it
  disconnects is cancelled (``RequestScope.in_store`` tells admission.client_gone it may cancel the task).

Outside a request (no `current_scope`: scripts, tests, startup) operations run unguarded, as before.

Every Store method is written out here, so readers and type checkers see a Store (tests/app/test_store_guard.py fails
when the interface gains a method this class does not implement). The timing includes the guard's own refusals:
an operation refused at its deadline is counted as one that failed with DeadlineExceeded.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pymongo
from pymongo.errors import PyMongoError

from app.admission import ClientGone, DeadlineExceeded, current_scope

if TYPE_CHECKING:
    from app.metrics import Metrics
    from app.store.base import Store

# A driver timeout this close to the deadline is the deadline's: CSOT gives up early when less than a round trip
# is left.
DEADLINE_SLACK = 0.01


class GuardedStore:
    """A `Store` around the mode's store: guarded by the request's deadline, timed into `metrics` (None: not)."""

    def __init__(self, store: Store, selection_timeout: float, metrics: Metrics | None = None):
        self._store = store
        self.mode = store.mode
        self._selection_timeout = selection_timeout
        self._metrics = metrics

    # -- the Store interface ------------------------------------------------------------------------------------

    async def ping(self):
        return await self._run("ping", self._store.ping)

    async def find_one(self, collection, filter, projection=None):
        return await self._run("find_one", self._store.find_one, collection, filter, projection)

    async def find(self, collection, filter, *, projection=None, sort=None, limit=0):
        return await self._run(
            "find", self._store.find, collection, filter, projection=projection, sort=sort, limit=limit
        )

    async def insert_one(self, collection, document):
        return await self._run("insert_one", self._store.insert_one, collection, document)

    async def find_one_and_update(self, collection, filter, update, projection=None):
        return await self._run(
            "find_one_and_update", self._store.find_one_and_update, collection, filter, update, projection
        )

    async def delete_one(self, collection, filter):
        return await self._run("delete_one", self._store.delete_one, collection, filter)

    async def bulk_update(self, collection, updates, *, durable=True):
        return await self._run("bulk_update", self._store.bulk_update, collection, updates, durable=durable)

    async def count(self, collection, filter):
        return await self._run("count", self._store.count, collection, filter)

    async def create_index(self, collection, keys, **options):
        return await self._run("create_index", self._store.create_index, collection, keys, **options)

    def server_known(self) -> bool:
        return self._store.server_known()

    def pool_stats(self) -> dict[str, int] | None:
        return self._store.pool_stats()

    async def close(self) -> None:
        # Neither guarded nor timed: it is the process's shutdown, not a request's database operation.
        await self._store.close()

    # -- guard and timing ---------------------------------------------------------------------------------------

    async def _run(self, operation: str, method, /, *args, **kwargs):
        metrics = self._metrics
        if metrics is None:
            return await run_guarded(method, args, kwargs, self._limit)
        metrics.db_in_flight += 1
        start = time.perf_counter()
        error = None
        try:
            return await run_guarded(method, args, kwargs, self._limit)
        except Exception as exc:  # a cancelled call (its client went away) is not a database error
            error = exc
            raise
        finally:
            metrics.db_in_flight -= 1
            metrics.observe_db(operation, time.perf_counter() - start, error)

    def _limit(self, remaining: float) -> float:
        return remaining if self._store.server_known() else min(remaining, self._selection_timeout)


async def run_guarded(operation, args, kwargs, limit):
    scope = current_scope.get()
    if scope is None:
        return await operation(*args, **kwargs)
    if scope.client_gone:
        raise ClientGone()
    remaining = scope.remaining()
    if remaining <= 0:
        raise DeadlineExceeded()
    # Only an operation awaited by the request's own task may be interrupted by cancelling that task; one in a
    # task of its own (asyncio.gather) only stops the next operation.
    own = asyncio.current_task() is scope.task
    scope.in_store += own
    try:
        with pymongo.timeout(limit(remaining)):
            return await operation(*args, **kwargs)
    except asyncio.CancelledError:
        # Our own cancel (admission.client_gone) becomes an ordinary error that Tornado answers and accounts for;
        # anyone else's cancellation goes on as it came.
        if own and scope.client_gone and scope.task.uncancel() == 0:
            raise ClientGone() from None
        raise
    except PyMongoError as exc:
        if exc.timeout and scope.remaining() <= DEADLINE_SLACK:
            raise DeadlineExceeded() from exc
        raise
    finally:
        scope.in_store -= own
