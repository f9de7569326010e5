"""Per-process Prometheus metrics: each process counts what it served, on its own port and never through nginx;
loop-lag gauges move when a process stalls, pool gauges move under load, database errors are counted, and each
mode reports the pools it has."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.settings import Settings, SettingsError
from fleet import probe
from fleet.config import FleetConfig
from fleet.sandbox import APP_METRICS_OFFSET, free_port_block, start_app
from fleet.supervisor import Supervisor
from tests.client import get
from tests.fleets import module_fleet

# Two threads for the database: concurrent requests must queue for them, which the gauges have to show.
DB_THREADS = 2


threads_fleet = module_fleet("threads", FLEET_DB_THREADS=str(DB_THREADS))


def metrics_port(config, app_port: int) -> int:
    return app_port + int(config.app_env["FLEET_METRICS_PORT_OFFSET"])


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    """{(sample name, labels): value} from the Prometheus text on port's /metrics."""
    response = get(f"http://127.0.0.1:{port}/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


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


def test_database_errors_are_counted_by_operation_and_class(tmp_path):
    dead_db = free_port_block(1)
    env = {
        "FLEET_DB_MODE": "async",
        "MONGODB_URI": f"mongodb://127.0.0.1:{dead_db}/?retryWrites=false",
        "FLEET_DB_TIMEOUT_MS": "200",
    }
    app = start_app(env, tmp_path, ready_path="/healthz")
    try:
        assert get(f"{app.url}/readyz").status == 503
        assert get(f"{app.url}/db").status == 503
        samples = scrape(app.metrics_port)
    finally:
        app.stop()
    errors = {"ServerSelectionTimeoutError"}
    for operation in ("ping", "find_one"):
        counted = {
            dict(labels)["error"]
            for (name, labels), v in samples.items()
            if name == "fleet_db_operation_errors_total" and dict(labels)["operation"] == operation and v == 1
        }
        assert counted == errors, (operation, counted)
        assert value(samples, "fleet_db_operation_duration_seconds_count", operation=operation) == 1
    assert value(samples, "fleet_http_requests_total", handler="DbHandler", method="GET", status="503") == 1


def test_each_mode_reports_its_pools(app_url):
    port = int(app_url.rsplit(":", 1)[1])
    mode = probe.ready(port)["db_mode"]
    # app_url's processes are started by fleet.sandbox.start_app, their metrics port right after the app port.
    samples = scrape(port + APP_METRICS_OFFSET)
    assert value(samples, "fleet_pool_threads", pool="blocking") == 4
    db_pool = value(samples, "fleet_pool_threads", pool="db")
    if mode == "threads":
        assert db_pool == 16
        assert value(samples, "fleet_pool_active", pool="db") == 0
    elif mode == "motor":
        # Motor's own pool, sized by FLEET_DB_THREADS as the threads pool is; how many of its threads run is not
        # readable.
        assert db_pool == 16
        assert value(samples, "fleet_pool_active", pool="db") is None
        assert value(samples, "fleet_pool_queued", pool="db") is not None
    else:
        assert db_pool is None  # async: no thread runs a database call


def test_metrics_ports_that_collide_are_refused_before_anything_starts():
    with pytest.raises(SettingsError, match=r"FLEET_METRICS_PORT_OFFSET: metrics ports 8080-8081 collide .*\[8080\]"):
        FleetConfig(port=8080, procs=2, app_port_base=8001, app_env={"FLEET_METRICS_PORT_OFFSET": "79"}).validate()
    with pytest.raises(SettingsError, match=r"FLEET_METRICS_PORT_OFFSET: .* above 65535"):
        FleetConfig(port=8080, procs=2, app_port_base=65000, app_env={"FLEET_METRICS_PORT_OFFSET": "1000"}).validate()
    # 0: no metrics listener, nothing to collide with; the env file lists the fleet's ports for /status.
    config = FleetConfig(port=8080, procs=3, app_port_base=8001, app_env={"FLEET_METRICS_PORT_OFFSET": "0"})
    config.validate()
    assert config.app_settings().fleet_ports(8001) == [8001, 8002, 8003]
    with pytest.raises(SettingsError, match="FLEET_APP_PORTS: must be comma-separated port numbers"):
        Settings.from_mapping({"FLEET_APP_PORTS": "8001,eighty"})
