"""Per-process Prometheus metrics: each process counts what it served, on its own port and never through nginx;
loop-lag gauges move when a process stalls, pool gauges move under load, database errors are counted, and each
mode reports the pools it has."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from fleet import probe
from fleet.supervisor import Supervisor
from tests.client import get, scrape, value
from tests.fleets import module_fleet

# Two threads for the database: concurrent requests must queue for them, which the gauges have to show.
DB_THREADS = 2


threads_fleet = module_fleet("threads", FLEET_DB_THREADS=str(DB_THREADS))


def metrics_port(config, app_port: int) -> int:
    return app_port + int(config.app_env["FLEET_METRICS_PORT_OFFSET"])


def requests_of(samples, handler: str) -> float:
    return value(samples, "fleet_http_requests_total", handler=handler, method="GET", status="200") or 0.0


@pytest.mark.fleet
def test_each_process_counts_the_requests_it_served(threads_fleet):
    ports = {port: metrics_port(threads_fleet, port) for port in threads_fleet.app_ports}
    before = {port: scrape(m) for port, m in ports.items()}
    for _ in range(20):
        assert get(f"{threads_fleet.url}/db").status == 200
    after = {port: scrape(m) for port, m in ports.items()}

    served = {port: requests_of(after[port], "DbHandler") - requests_of(before[port], "DbHandler") for port in ports}
    assert sum(served.values()) == 20
    assert all(n > 0 for n in served.values()), served  # least_conn alternates between idle processes
    for port, samples in after.items():
        assert value(samples, "fleet_process_info", mode="threads", port=str(port), pid=_pid(threads_fleet, port)) == 1
        assert value(samples, "fleet_process_start_time_seconds") <= time.time()
        assert value(samples, "process_start_time_seconds") > 0
        # One find_one per /db, timed in the latency histogram of that operation and of the handler.
        db_ops = value(samples, "fleet_db_operation_duration_seconds_count", operation="find_one")
        assert (
            db_ops - (value(before[port], "fleet_db_operation_duration_seconds_count", operation="find_one") or 0)
            == (served[port])
        )
        handler_count = value(samples, "fleet_http_request_duration_seconds_count", handler="DbHandler")
        assert handler_count == requests_of(samples, "DbHandler")
        assert value(samples, "fleet_http_requests_in_flight") == 0


def _pid(config, port: int) -> str:
    return str(probe.ready(config.app_address(port))["pid"])


@pytest.mark.fleet
def test_metrics_are_served_per_process_and_not_through_nginx(threads_fleet):
    response = get(f"{threads_fleet.url}/metrics")
    assert response.status == 404
    assert b"fleet_http_requests_total" not in response.body
    pids = {
        value(
            scrape(metrics_port(threads_fleet, p)),
            "fleet_process_info",
            mode="threads",
            port=str(p),
            pid=_pid(threads_fleet, p),
        )
        for p in threads_fleet.app_ports
    }
    assert pids == {1.0}


@pytest.mark.fleet
def test_loop_lag_gauges_move_when_a_process_stalls(threads_fleet):
    port = threads_fleet.app_ports[0]
    victim = next(p for p in Supervisor(threads_fleet.socket).app_processes() if p["name"] == f"app-{port}")
    before = scrape(metrics_port(threads_fleet, port))
    assert value(before, "fleet_event_loop_lag_seconds") is not None
    # Freeze the whole process for 0.6 s: when it runs again, its loop's heartbeat is 0.6 s late.
    os.kill(victim["pid"], signal.SIGSTOP)
    try:
        time.sleep(0.6)
    finally:
        os.kill(victim["pid"], signal.SIGCONT)
    after = probe.wait_until(
        lambda: (
            (s := scrape(metrics_port(threads_fleet, port)))[("fleet_event_loop_stalls_total", frozenset())]
            > before[("fleet_event_loop_stalls_total", frozenset())]
            and s
        ),
        5,
    )
    assert after, "the stall was not counted"
    assert value(after, "fleet_event_loop_lag_max_seconds") >= 0.5
    # The stall is over: a heartbeat later, the lag now is back to what a free loop shows; the maximum stays.
    recovered = probe.wait_until(
        lambda: value(s := scrape(metrics_port(threads_fleet, port)), "fleet_event_loop_lag_seconds") < 0.1 and s, 5
    )
    assert recovered, "the lag gauge did not come back down"
    assert value(recovered, "fleet_event_loop_lag_max_seconds") >= 0.5


@pytest.mark.fleet
def test_pool_gauges_move_under_load(threads_fleet):
    port = threads_fleet.app_ports[0]
    mport = metrics_port(threads_fleet, port)
    idle = scrape(mport)
    assert value(idle, "fleet_pool_threads", pool="db") == DB_THREADS
    assert value(idle, "fleet_pool_threads", pool="blocking") == 4
    assert value(idle, "fleet_pool_queued", pool="db") == 0

    stop = threading.Event()
    errors = []

    def load():
        # Straight to one process (not through nginx), 8 at a time, each request 20 reads: more than 2 threads.
        while not stop.is_set():
            status = get(f"{threads_fleet.app_url(port)}/queries?queries=20", timeout=30).status
            if status != 200:
                errors.append(status)

    workers = [threading.Thread(target=load) for _ in range(8)]
    for worker in workers:
        worker.start()
    seen = []
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(s["queued"] > 0 and s["active"] == DB_THREADS for s in seen):
            samples = scrape(mport)
            seen.append(
                {
                    "active": value(samples, "fleet_pool_active", pool="db"),
                    "queued": value(samples, "fleet_pool_queued", pool="db"),
                    "in_flight": value(samples, "fleet_db_operations_in_flight"),
                }
            )
    finally:
        stop.set()
        for worker in workers:
            worker.join(30)
    assert errors == []
    busy = [s for s in seen if s["queued"] > 0 and s["active"] == DB_THREADS]
    assert busy, f"the db pool never showed a queue: {seen[-5:]}"
    assert all(s["in_flight"] >= s["active"] + s["queued"] for s in busy)
    # And back: with the load gone, nothing runs or waits.
    drained = probe.wait_until(
        lambda: (
            value(s := scrape(mport), "fleet_pool_active", pool="db") == 0
            and value(s, "fleet_pool_queued", pool="db") == 0
        ),
        10,
    )
    assert drained
