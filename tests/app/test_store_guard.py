"""The Store seam: `GuardedStore` (app/store/guard.py) implements every Store method, passes each call through
unchanged, times each operation; each mode's store reports its own pool figures (FLEET_DB_THREADS sizes both
thread-based modes); the snapshot and the metrics show them without knowing the mode. In-process, no fleet."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.admission import DeadlineExceeded, RequestScope, current_scope
from app.blocking import BlockingPool
from app.metrics import Metrics
from app.process_snapshot import ProcessSnapshot
from app.store.base import Store
from app.store.guard import GuardedStore
from tests.app.inprocess import run_with_store

STORE_METHODS = sorted(name for name, value in vars(Store).items() if callable(value) and not name.startswith("_"))
# Store methods that are not database operations: neither guarded nor timed.
NOT_OPERATIONS = {"close", "server_known", "pool_stats"}


class Recorder:
    """What GuardedStore reads of app.metrics.Metrics."""

    def __init__(self):
        self.db_in_flight = 0
        self.observed: list[tuple[str, str | None]] = []

    def observe_db(self, operation, seconds, error):
        self.observed.append((operation, type(error).__name__ if error else None))


def recording_store(calls: list):
    """A Store whose every method records (name, its arguments bound to the Store's signature) and returns a
    marker of its own."""

    def method(name):
        signature = inspect.signature(getattr(Store, name))

        def bound(args, kwargs):
            arguments = signature.bind(None, *args, **kwargs)
            arguments.apply_defaults()
            return {k: v for k, v in arguments.arguments.items() if k != "self"}

        if inspect.iscoroutinefunction(getattr(Store, name)):

            async def call(self, *args, **kwargs):
                calls.append((name, bound(args, kwargs)))
                return ("result of", name)
        else:

            def call(self, *args, **kwargs):
                calls.append((name, bound(args, kwargs)))
                return True if name == "server_known" else ("result of", name)

        return call

    return type("RecordingStore", (), {"mode": "fake", **{name: method(name) for name in STORE_METHODS}})()


def arguments_for(name: str) -> tuple[tuple, dict]:
    """A distinct object for every parameter of Store.<name>: keyword-only ones by keyword, plus one extra
    keyword where the method takes **options."""
    args, kwargs = [], {}
    for parameter in list(inspect.signature(getattr(Store, name)).parameters.values())[1:]:
        if parameter.kind is parameter.KEYWORD_ONLY:
            kwargs[parameter.name] = object()
        elif parameter.kind is parameter.VAR_KEYWORD:
            kwargs["unique"] = object()
        elif parameter.kind is not parameter.VAR_POSITIONAL:
            args.append(object())
    return tuple(args), kwargs


def test_the_interface_is_what_the_guard_is_checked_against():
    assert {"ping", "find_one", "find", "bulk_update", "create_index", "close", "server_known", "pool_stats"} <= set(
        STORE_METHODS
    )


@pytest.mark.parametrize("name", STORE_METHODS)
def test_the_guarded_store_implements_every_store_method(name):
    # Written out in the class itself: a method added to the Store and not here fails this test, rather than
    # reaching handlers unguarded and untimed (or not at all).
    assert name in vars(GuardedStore), f"GuardedStore does not implement Store.{name}"
    calls: list = []
    metrics = Recorder()
    store = GuardedStore(recording_store(calls), selection_timeout=1.0, metrics=metrics)
    args, kwargs = arguments_for(name)
    expected = inspect.signature(getattr(Store, name)).bind(None, *args, **kwargs)
    expected.apply_defaults()
    method = getattr(store, name)
    assert inspect.iscoroutinefunction(method) == inspect.iscoroutinefunction(getattr(Store, name))
    result = asyncio.run(method(*args, **kwargs)) if inspect.iscoroutinefunction(method) else method(*args, **kwargs)
    if name != "close":
        assert result == (True if name == "server_known" else ("result of", name))
    assert calls == [(name, {k: v for k, v in expected.arguments.items() if k != "self"})]
    assert metrics.observed == ([] if name in NOT_OPERATIONS else [(name, None)])
    assert metrics.db_in_flight == 0


def test_an_operation_refused_at_its_deadline_is_counted_and_never_sent():
    calls: list = []
    metrics = Recorder()
    store = GuardedStore(recording_store(calls), selection_timeout=1.0, metrics=metrics)

    async def scenario():
        current_scope.set(RequestScope(time.monotonic() - 1, asyncio.current_task()))
        with pytest.raises(DeadlineExceeded):
            await store.find_one("world", {"_id": 1})

    asyncio.run(scenario())
    assert calls == []
    assert metrics.observed == [("find_one", "DeadlineExceeded")]
    assert metrics.db_in_flight == 0


def test_without_metrics_operations_are_guarded_only():
    calls: list = []
    store = GuardedStore(recording_store(calls), selection_timeout=1.0)
    assert asyncio.run(store.count("world", {})) == ("result of", "count")
    assert [name for name, _ in calls] == ["count"]


def test_each_store_reports_its_own_pool_sized_by_fleet_db_threads(mode, mongo_uri, db_name):
    async def scenario(store):
        await asyncio.gather(*(store.ping() for _ in range(6)))
        return store.pool_stats(), [t.name for t in threading.enumerate()]

    stats, threads = run_with_store(mode, mongo_uri, db_name, scenario, FLEET_DB_THREADS="3")
    if mode == "threads":
        assert stats == {"size": 3, "active": 0, "queued": 0, "queue_limit": 256, "refused": 0}
    elif mode == "motor":
        # Motor's pool is replaced by one of FLEET_DB_THREADS threads, which ran the pings.
        assert stats == {"size": 3, "queued": 0}
        assert any(name.startswith("motor_") for name in threads), threads
    else:
        assert stats is None  # async: no thread runs a database call


def test_motor_max_workers_no_longer_sizes_motors_pool(mongo_uri, db_name, monkeypatch, caplog):
    monkeypatch.setenv("MOTOR_MAX_WORKERS", "7")

    async def scenario(store):
        await store.ping()
        return store.pool_stats()

    with caplog.at_level(logging.WARNING, logger="fleet.store"):
        stats = run_with_store("motor", mongo_uri, db_name, scenario, FLEET_DB_THREADS="5")
    assert stats["size"] == 5
    assert "MOTOR_MAX_WORKERS is ignored: FLEET_DB_THREADS (5)" in caplog.text


class _PoolStore:
    mode = "fake"

    def __init__(self, pool):
        self.pool = pool

    def pool_stats(self):
        return self.pool


@pytest.mark.parametrize("db_pool", [{"size": 2, "queued": 1}, None])
def test_the_snapshot_and_the_metrics_show_the_pools_the_store_reports(db_pool):
    blocking = BlockingPool(1, queue_limit=3)
    try:
        app_settings = {"store": GuardedStore(_PoolStore(db_pool), selection_timeout=1.0), "blocking": blocking}
        metrics = Metrics(mode="fake", port=1)
        metrics.observe_app(app_settings)
        pools = ProcessSnapshot(metrics, app_settings).as_dict()["pools"]
        assert pools["blocking"]["size"] == 1
        assert pools.get("db") == db_pool
        samples = {
            (sample.name, sample.labels.get("pool")): sample.value
            for family in text_string_to_metric_families(metrics.exposition().decode())
            for sample in family.samples
        }
        assert samples.get(("fleet_pool_threads", "db")) == (db_pool and db_pool["size"])
        assert samples.get(("fleet_pool_queued", "db")) == (db_pool and db_pool["queued"])
        assert samples[("fleet_pool_threads", "blocking")] == 1
    finally:
        asyncio.run(blocking.aclose())


class _Store:
    mode = "fake"

    async def find_one(self, collection, filter, projection=None):
        return {"collection": collection}

    async def count(self, collection, filter):
        raise ValueError(filter)

    def server_known(self):
        return True

    def pool_stats(self):
        return {"size": 1}


def test_every_store_operation_is_timed_and_its_errors_counted():
    recorded = []

    class Recorder:
        db_in_flight = 0

        def observe_db(self, operation, seconds, error):
            recorded.append((operation, type(error).__name__ if error else None))

    store = GuardedStore(_Store(), selection_timeout=1.0, metrics=Recorder())

    async def scenario():
        assert await store.find_one("world", {}) == {"collection": "world"}
        with pytest.raises(ValueError):
            await store.count("world", {"x": 1})

    asyncio.run(scenario())
    assert recorded == [("find_one", None), ("count", "ValueError")]
    assert store.pool_stats() == {"size": 1}  # not an operation: passed through, not timed
