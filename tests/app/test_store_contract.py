"""One contract for the `Store`, run against every mode on the real embedded server over TCP.

Each test builds its store inside a fresh event loop, as a process does, and closes it at the end.
"""

import asyncio
import threading
import time

import pytest
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError
from pymongo.operations import UpdateOne

from app.admission import ClientGone, DeadlineExceeded, RequestScope, current_scope
from app.store import DATABASE_UNAVAILABLE
from tests.app.inprocess import run_with_store


def test_reports_its_mode_and_pings(mode, mongo_uri, db_name):
    async def scenario(store):
        await store.ping()
        return store.mode

    assert run_with_store(mode, mongo_uri, db_name, scenario) == mode


def test_insert_find_update_delete(mode, mongo_uri, db_name):
    async def scenario(store):
        await store.insert_one("c", {"_id": 1, "name": "a", "n": 1})
        await store.insert_one("c", {"_id": 2, "name": "b", "n": 2})
        found = await store.find_one("c", {"_id": 1})
        projected = await store.find_one("c", {"_id": 2}, {"_id": 0, "name": 1})
        missing = await store.find_one("c", {"_id": 3})
        updated = await store.find_one_and_update("c", {"_id": 1}, {"$inc": {"n": 10}})
        not_updated = await store.find_one_and_update("c", {"_id": 9}, {"$inc": {"n": 1}})
        deleted = await store.delete_one("c", {"_id": 2})
        deleted_again = await store.delete_one("c", {"_id": 2})
        return found, projected, missing, updated, not_updated, deleted, deleted_again, await store.count("c", {})

    found, projected, missing, updated, not_updated, deleted, deleted_again, count = run_with_store(
        mode, mongo_uri, db_name, scenario
    )
    assert found == {"_id": 1, "name": "a", "n": 1}
    assert projected == {"name": "b"}
    assert missing is None
    assert updated["n"] == 11  # the document after the update
    assert not_updated is None
    assert (deleted, deleted_again, count) == (1, 0, 1)


def test_find_sorts_limits_and_materialises_large_results(mode, mongo_uri, db_name):
    async def scenario(store):
        await store.bulk_update(
            "big", [UpdateOne({"_id": i}, {"$set": {"v": i % 7}}, upsert=True) for i in range(1, 1201)]
        )
        everything = await store.find("big", {})  # more than one batch: getMore must happen in the store
        top = await store.find("big", {"v": 3}, sort=[("_id", -1)], limit=5, projection={"_id": 1})
        return len(everything), top

    total, top = run_with_store(mode, mongo_uri, db_name, scenario)
    assert total == 1200
    assert [d["_id"] for d in top] == [1200, 1193, 1186, 1179, 1172]


def test_bulk_update_persists_and_empty_is_a_no_op(mode, mongo_uri, db_name):
    async def scenario(store):
        await store.insert_one("w", {"_id": 1, "r": 0})
        await store.insert_one("w", {"_id": 2, "r": 0})
        await store.bulk_update("w", [])
        await store.bulk_update(
            "w", [UpdateOne({"_id": 1}, {"$set": {"r": 5}}), UpdateOne({"_id": 2}, {"$set": {"r": 6}})]
        )
        return await store.find("w", {}, sort=[("_id", 1)])

    assert run_with_store(mode, mongo_uri, db_name, scenario) == [{"_id": 1, "r": 5}, {"_id": 2, "r": 6}]


def test_duplicate_key_is_the_drivers_error(mode, mongo_uri, db_name):
    async def scenario(store):
        await store.insert_one("d", {"_id": "x"})
        await store.insert_one("d", {"_id": "x"})

    with pytest.raises(DuplicateKeyError):
        run_with_store(mode, mongo_uri, db_name, scenario)


# Port 9 (discard) on loopback: nothing listens, connections are refused.
DEAD_DATABASE = "mongodb://127.0.0.1:9/?retryWrites=false"


async def seconds_to_fail(store) -> float:
    """How long a read of a dead database takes to raise the unavailable error."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DATABASE_UNAVAILABLE):
        await store.find_one("c", {"_id": 1})
    return loop.time() - started


def test_unreachable_database_fails_fast_with_an_unavailable_error(mode, db_name):
    elapsed = run_with_store(mode, DEAD_DATABASE, db_name, seconds_to_fail, FLEET_DB_TIMEOUT_MS="300")
    assert elapsed < 5


def test_threads_mode_runs_driver_calls_in_its_own_pool(mongo_uri, db_name, monkeypatch):
    threads = []
    original = Collection.find

    def spy(self, *args, **kwargs):
        threads.append(threading.current_thread().name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Collection, "find", spy)

    async def scenario(store):
        await store.find("c", {})
        return threading.current_thread().name

    loop_thread = run_with_store("threads", mongo_uri, db_name, scenario)
    # The cursor is created and drained in a worker of the store's pool ("db_N"), not on the loop's thread.
    assert threads and all(name.startswith("db") and name != loop_thread for name in threads)


def test_create_index_enforces_its_options_and_is_idempotent(mode, mongo_uri, db_name):
    async def scenario(store):
        name = await store.create_index("k", [("key", 1)], unique=True)
        again = await store.create_index("k", [("key", 1)], unique=True)
        await store.insert_one("k", {"_id": 1, "key": "a"})
        try:
            await store.insert_one("k", {"_id": 2, "key": "a"})
        except DuplicateKeyError:
            return name, again, await store.count("k", {})
        return name, again, None

    assert run_with_store(mode, mongo_uri, db_name, scenario) == ("key_1", "key_1", 1)


def in_request(deadline_in: float, *, client_gone: bool = False):
    """Run the scenario's operations as a request would: in a RequestScope (app/admission.py)."""

    def wrap(scenario):
        async def scoped(store):
            scope = RequestScope(time.monotonic() + deadline_in, asyncio.current_task(), client_gone=client_gone)
            current_scope.set(scope)
            return await scenario(store)

        return scoped

    return wrap


def test_an_operation_past_the_deadline_is_not_sent(mode, mongo_uri, db_name):
    @in_request(-1)
    async def scenario(store):
        await store.insert_one("late", {"_id": 1})

    with pytest.raises(DeadlineExceeded):
        run_with_store(mode, mongo_uri, db_name, scenario)
    assert run_with_store(mode, mongo_uri, db_name, lambda store: store.count("late", {})) == 0


def test_the_deadline_reaches_the_driver(mode, mongo_uri, db_name):
    # Positive but far below a round trip: only PyMongo's own timeout (pymongo.timeout, carried into Motor's and
    # the threads pool's workers by the copied context) can refuse it; unguarded it would succeed.
    @in_request(1e-6)
    async def scenario(store):
        await store.find_one("world", {"_id": 1})

    with pytest.raises(DeadlineExceeded):
        run_with_store(mode, mongo_uri, db_name, scenario)


def test_no_operation_is_sent_for_a_client_that_left(mode, mongo_uri, db_name):
    @in_request(10, client_gone=True)
    async def scenario(store):
        await store.insert_one("gone", {"_id": 1})

    with pytest.raises(ClientGone):
        run_with_store(mode, mongo_uri, db_name, scenario)
    assert run_with_store(mode, mongo_uri, db_name, lambda store: store.count("gone", {})) == 0


def test_server_known_follows_the_drivers_view(mode, mongo_uri, db_name):
    async def scenario(store):
        await store.ping()
        return store.server_known()

    assert run_with_store(mode, mongo_uri, db_name, scenario) is True

    async def unreachable(store):
        return store.server_known()

    # Port 9 on loopback: nothing listens, the driver never finds a server.
    dead = "mongodb://127.0.0.1:9/?retryWrites=false"
    assert run_with_store(mode, dead, db_name, unreachable) is False


def test_a_dead_database_costs_a_request_the_selection_timeout_not_its_deadline(mode, db_name):
    # A request's deadline (10 s here) would replace serverSelectionTimeoutMS inside pymongo.timeout; the guard
    # caps it while no server is known, so the failure is as fast as without a deadline.
    elapsed = run_with_store(mode, DEAD_DATABASE, db_name, in_request(10)(seconds_to_fail), FLEET_DB_TIMEOUT_MS="300")
    assert elapsed < 5
