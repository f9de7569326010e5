"""Overload protection of one app process, from the outside (app/admission.py, app/store/guard.py, app/blocking.py):
the in-progress bound, deadlines in every mode, the pool queue limit, and cancelled work for clients that left.

A database that does not answer is made by stopping the embedded server's process (SIGSTOP) and resuming it
(SIGCONT) in `finally`: the driver's connections stay open, so an operation is sent and waits, as it would on an
overloaded or partitioned mongod.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import re
import signal
import socket
from pathlib import Path

import pytest

from app.settings import embedded_uri
from fleet.probe import wait_until
from fleet.sandbox import free_port_block, start_embedded_db, stop_process
from tests.client import get, request


@pytest.fixture(scope="module")
def stoppable_db(tmp_path_factory):
    """(uri, pause): a seeded embedded server of this module's own (not the session's: pausing that one would stall
    every other test's app); `pause()` is a context manager that stops its process for the duration of the block.
    Each test pauses it only inside the block and starts its own app process."""
    port = free_port_block(1)
    server = start_embedded_db(port, ":memory:", tmp_path_factory.mktemp("stoppable-db") / "db.log")

    @contextlib.contextmanager
    def pause():
        os.kill(server.pid, signal.SIGSTOP)
        try:
            # The signal is delivered asynchronously: a request sent at once could still be answered.
            assert wait_until(lambda: process_state(server.pid) == "T", 10, 0.01)
            yield
        finally:
            os.kill(server.pid, signal.SIGCONT)

    try:
        yield embedded_uri(port), pause
    finally:
        os.kill(server.pid, signal.SIGCONT)
        stop_process(server, signal.SIGKILL)  # in memory: nothing to keep, and a clean stop takes ~2 s


def process_state(pid: int) -> str:
    """R, S, T (stopped), ... from /proc/PID/stat (the field after the parenthesised command)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def snapshot(app) -> dict:
    return get(f"http://127.0.0.1:{app.metrics_port}/process.json").json()


def metric(app, name: str, **labels: str) -> float:
    """One sample of the process's Prometheus metrics (0 if absent)."""
    text = get(f"http://127.0.0.1:{app.metrics_port}/metrics").text
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}(?:\{{{re.escape(wanted)}\}})? (\S+)$" if wanted else rf"^{re.escape(name)} (\S+)$"
    match = re.search(pattern, text, re.M)
    return float(match[1]) if match else 0.0


def in_background(count: int, call):
    pool = concurrent.futures.ThreadPoolExecutor(count)
    return pool, [pool.submit(call) for _ in range(count)]


def test_beyond_the_in_progress_bound_a_request_is_refused_at_once_and_counted(start_app):
    app = start_app(FLEET_FAULTS="true", FLEET_MAX_IN_FLIGHT="2", FLEET_DB_MODE="async")
    pool, slow = in_background(2, lambda: get(f"{app.url}/fault/sleep?seconds=3", timeout=20))
    try:
        assert wait_until(lambda: snapshot(app)["in_flight"] >= 2, 10)
        refused = get(f"{app.url}/db")
        assert refused.status == 503
        assert refused.headers["Retry-After"] == "1"
        assert refused.headers["Content-Type"] == "application/json"
        assert "overloaded" in refused.json()["error"]
        # Probes and the status data are never refused: a full process is busy, not unhealthy.
        assert get(f"{app.url}/healthz").status == 200
        assert get(f"{app.url}/readyz").status == 200
        assert snapshot(app)["refused_total"] == 1
        assert metric(app, "fleet_http_refused_total", reason="in_flight") == 1
    finally:
        statuses = [future.result().status for future in slow]
        pool.shutdown()
    assert statuses == [200, 200]  # the requests in progress were served
    assert get(f"{app.url}/db").status == 200  # and the process takes new ones again


@pytest.mark.parametrize("mode", ["motor", "threads", "async"])
def test_an_operation_past_the_request_deadline_is_a_503(mode, stoppable_db, start_app):
    uri, pause = stoppable_db
    # The socket timeout is far above the deadline: only the deadline can end these requests quickly.
    app = start_app(
        MONGODB_URI=uri, FLEET_DB_MODE=mode, FLEET_REQUEST_TIMEOUT_MS="400", FLEET_DB_SOCKET_TIMEOUT_MS="60000"
    )
    created = request("POST", f"{app.url}/api/notes", {"title": "before"})
    assert created.status == 201
    with pause():
        for method, path, body in (
            ("GET", "/db", None),
            ("GET", f"/api/notes/{created.json()['id']}", None),
            ("POST", "/api/notes", {"title": "during"}),
        ):
            answer = request(method, f"{app.url}{path}", body, timeout=30)
            assert answer.status == 503, (method, path, answer.body)
            assert "deadline" in answer.json()["error"], answer.body
            assert answer.headers["Retry-After"] == "1"
    assert metric(app, "fleet_http_refused_total", reason="deadline") == 3
    assert get(f"{app.url}/db", timeout=30).status == 200  # the database is back: so is the process


def test_the_pool_queue_limit_refuses_at_once(stoppable_db, start_app):
    uri, pause = stoppable_db
    app = start_app(
        MONGODB_URI=uri,
        FLEET_DB_MODE="threads",
        FLEET_DB_THREADS="1",
        FLEET_DB_QUEUE_LIMIT="1",
        # Long: the two calls must still be waiting when the third arrives, however loaded the machine is; they end
        # as soon as the database is resumed.
        FLEET_REQUEST_TIMEOUT_MS="20000",
        # Long enough that the driver's monitor does not give the frozen server up (it would then fail calls fast
        # instead of letting them wait in the pool).
        FLEET_DB_TIMEOUT_MS="10000",
    )
    assert get(f"{app.url}/db").status == 200
    with pause():
        pool = concurrent.futures.ThreadPoolExecutor(2)
        # One after the other: one call runs in the pool's only thread (waiting for the database), then one waits
        # for the thread (sent together, the second could find the first not yet taken by the thread, and be the
        # one refused).
        waiting = [pool.submit(get, f"{app.url}/db", timeout=30)]
        assert wait_until(lambda: snapshot(app)["pools"]["db"]["active"] == 1, 10), snapshot(app)
        waiting.append(pool.submit(get, f"{app.url}/db", timeout=30))
        assert wait_until(lambda: snapshot(app)["pools"]["db"]["queued"] == 1, 10), snapshot(app)
        refused = get(f"{app.url}/db")
        assert refused.status == 503
        assert refused.headers["Retry-After"] == "1"
        assert "wait for the db pool" in refused.json()["error"]
    statuses = sorted(future.result().status for future in waiting)
    pool.shutdown()
    # The two that got into the pool were served once the database answered.
    assert statuses == [200, 200], [future.result().body for future in waiting]
    assert metric(app, "fleet_http_refused_total", reason="queue_full") == 1
    assert snapshot(app)["pools"]["db"]["refused"] == 1
    assert get(f"{app.url}/db").status == 200


@pytest.mark.parametrize("mode", ["motor", "threads", "async"])
def test_a_handler_whose_client_left_issues_no_more_database_calls(mode, start_app):
    app = start_app(FLEET_DB_MODE=mode)
    before = metric(app, "fleet_db_operation_duration_seconds_count", operation="find_one")
    # /queries?queries=500 reads 500 documents one after the other; the client leaves after the first few.
    client = socket.create_connection(("127.0.0.1", app.port))
    try:
        client.sendall(b"GET /queries?queries=500 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_until(
            lambda: metric(app, "fleet_db_operation_duration_seconds_count", operation="find_one") > before, 10, 0.005
        )
    finally:
        client.close()
    assert wait_until(lambda: snapshot(app)["in_flight"] == 0 and snapshot(app)["db_in_flight"] == 0, 10)
    issued = metric(app, "fleet_db_operation_duration_seconds_count", operation="find_one") - before
    assert 0 < issued < 500
    assert metric(app, "fleet_http_refused_total", reason="client_gone") == 1
    # Nothing more is issued afterwards either, and the process serves on.
    assert get(f"{app.url}/db").status == 200
    after = metric(app, "fleet_db_operation_duration_seconds_count", operation="find_one") - before
    assert after == issued + 1
