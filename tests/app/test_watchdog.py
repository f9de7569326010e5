"""The event-loop watchdog: it names the code that blocks the loop, once per stall, and reports the lag; and the
fault endpoint that blocks a process on purpose, which exists only when FLEET_FAULTS is on."""

import asyncio
import logging
import time

from app.watchdog import Watchdog
from tests.client import get


def block_the_loop_for_the_test(seconds: float) -> None:
    time.sleep(seconds)


def test_the_watchdog_logs_the_blocking_function_once_per_stall(caplog):
    caplog.set_level(logging.WARNING, logger="fleet.watchdog")

    async def scenario() -> Watchdog:
        watchdog = Watchdog(0.1)
        watchdog.start()
        try:
            await asyncio.sleep(0.3)
            block_the_loop_for_the_test(0.6)
            await asyncio.sleep(0.3)
            block_the_loop_for_the_test(0.4)
            await asyncio.sleep(0.3)
        finally:
            watchdog.stop()
        return watchdog

    watchdog = asyncio.run(scenario())
    stacks = [r.getMessage() for r in caplog.records if "stack" in r.getMessage()]
    # Only the two long blocks count: a busy machine may stall the loop briefly elsewhere too. Each is named, and
    # once (a stack per watchdog tick would be several per block).
    named = [s for s in stacks if "block_the_loop_for_the_test()" in s and "test_watchdog.py" in s]
    assert len(named) == 2, stacks
    assert watchdog.stalls >= 2
    assert watchdog.max_lag >= 0.4
    assert watchdog.current_lag < 0.4  # the loop is free again


def test_a_watchdog_that_never_started_reports_no_lag():
    watchdog = Watchdog(0.3)
    assert (watchdog.current_lag, watchdog.max_lag, watchdog.stalls, watchdog.stalled) == (0.0, 0.0, 0, False)


def test_on_stall_runs_again_and_again_while_the_stall_lasts():
    calls = []

    async def scenario() -> None:
        watchdog = Watchdog(0.1, on_stall=lambda: calls.append(watchdog.stalled))
        watchdog.start()
        try:
            await asyncio.sleep(0.2)
            block_the_loop_for_the_test(0.8)
            await asyncio.sleep(0.3)
        finally:
            watchdog.stop()

    asyncio.run(scenario())
    assert len(calls) >= 5  # not once per stall: requests keep arriving while it lasts
    assert all(calls)  # and only while the loop is stalled


def test_a_blocked_process_logs_the_handler_and_reports_the_lag_on_readyz(start_app):
    app = start_app(FLEET_FAULTS="true", FLEET_WATCHDOG_MS="200")
    before = get(f"{app.url}/readyz").json()

    blocked = get(f"{app.url}/fault/block?seconds=1")
    assert blocked.status == 200 and blocked.json()["blocked_seconds"] >= 1
    assert blocked.json()["port"] == app.port

    after = get(f"{app.url}/readyz").json()
    # At least this stall (a busy machine may have stalled the loop briefly before or since).
    assert after["loop_stalls"] >= before["loop_stalls"] + 1
    assert after["loop_lag_max_ms"] >= 800
    log = app.log_text()
    assert "block_event_loop()" in log and "app/handlers/fault.py" in log


def test_the_fault_endpoint_validates_seconds(start_app):
    app = start_app(FLEET_FAULTS="true")
    for bad in ("", "?seconds=x", "?seconds=0", "?seconds=-1", "?seconds=61", "?seconds=nan"):
        response = get(f"{app.url}/fault/block{bad}")
        assert response.status == 400, bad
        assert response.json()["field"] == "seconds"


def test_the_fault_endpoint_is_a_404_unless_faults_are_on(start_app):
    app = start_app()
    response = get(f"{app.url}/fault/block?seconds=1")
    assert response.status == 404
    assert get(f"{app.url}/readyz").json()["loop_stalls"] == 0
