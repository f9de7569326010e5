"""`GuardedStore`: every Store operation inside the request's deadline, and none for a client that left.

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
"""

from __future__ import annotations

import asyncio
import inspect

import pymongo
from pymongo.errors import PyMongoError

from app.admission import ClientGone, DeadlineExceeded, current_scope

# A driver timeout this close to the deadline is the deadline's: CSOT gives up early when less than a round trip
# is left.
DEADLINE_SLACK = 0.01


class GuardedStore:
    def __init__(self, store, selection_timeout: float):
        self._store = store
        self.mode = store.mode
        self._selection_timeout = selection_timeout

    def __getattr__(self, name):
        # As app.metrics.InstrumentedStore: every coroutine method but close() is a database operation.
        attr = getattr(self._store, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def guarded(*args, **kwargs):
            return await run_guarded(attr, args, kwargs, self._limit)

        self.__dict__[name] = guarded
        return guarded

    def _limit(self, remaining: float) -> float:
        return remaining if self._store.server_known() else min(remaining, self._selection_timeout)

    async def close(self) -> None:
        await self._store.close()


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
