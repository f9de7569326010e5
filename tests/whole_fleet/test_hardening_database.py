"""A dead database, in every mode, on a whole fleet through nginx: fast JSON 503s, live processes, recovery without
a restart, and every acknowledged write still there after the database restarts (cleanly or after a SIGKILL)."""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import signal
import threading
import time
import uuid

import pytest

from fleet import probe
from fleet.supervisor import Supervisor
from tests.client import get, request

pytestmark = pytest.mark.fleet

# A request during the outage must be answered well within this (FLEET_DB_TIMEOUT_MS is 1 s); a hang fails it.
CLIENT_TIMEOUT = 5.0
UNAVAILABLE = {"error": "database unavailable, try again shortly"}


def timed(fn, *args, **kwargs):
    started = time.monotonic()
    result = fn(*args, **kwargs)
    return result, time.monotonic() - started


def app_pids(supervisor: Supervisor) -> dict[str, int]:
    # STARTING counts: a process answers /readyz before supervisord's startsecs have passed.
    return {p["name"]: p["pid"] for p in supervisor.app_processes() if p["statename"] in ("STARTING", "RUNNING")}


def test_a_stopped_database_gives_fast_json_503s_and_the_fleet_recovers_by_itself(fleet):
    mode = fleet.app_env["FLEET_DB_MODE"]
    supervisor = Supervisor(fleet.socket)
    pids = app_pids(supervisor)
    assert len(pids) == fleet.procs
    note = request("POST", f"{fleet.url}/api/notes", {"title": "before the outage"}).json()

    supervisor.rpc.stopProcess("db")  # returns once the database has exited
    try:
        # All at once, as clients would: every process notices on its own (503 from /readyz, /healthz still 200),
        # and every API call answers a 503 JSON through nginx, within the client's timeout.
        lost_title = f"during the outage {uuid.uuid4()}"
        calls = [
            ("GET", "/api/notes", None),
            ("GET", f"/api/notes/{note['id']}", None),
            ("POST", "/api/notes", {"title": lost_title}),
            ("PATCH", f"/api/notes/{note['id']}", {"title": "changed during the outage"}),
            ("DELETE", f"/api/notes/{note['id']}", None),
        ]
        with concurrent.futures.ThreadPoolExecutor(len(calls) + fleet.procs) as pool:
            readyz = [
                pool.submit(timed, get, f"{fleet.app_url(p)}/readyz", timeout=CLIENT_TIMEOUT) for p in fleet.app_ports
            ]
            api = [
                pool.submit(timed, request, m, fleet.url + path, body, timeout=CLIENT_TIMEOUT)
                for m, path, body in calls
            ]
            readyz_times, api_times = [], []
            for future in readyz:
                ready, elapsed = future.result()
                assert ready.status == 503 and ready.json()["status"] == "unavailable", ready.body
                readyz_times.append(elapsed)
            for (method, path, _), future in zip(calls, api, strict=True):
                response, elapsed = future.result()
                assert (response.status, response.json()) == (503, UNAVAILABLE), (method, path, response.body)
                api_times.append(elapsed)
        for port in fleet.app_ports:
            assert get(f"{fleet.app_url(port)}/healthz").status == 200
        assert get(f"{fleet.url}/healthz").status == 200
    finally:
        restart_called = time.monotonic()
        supervisor.rpc.startProcess("db")  # returns once supervisord sees it running (startsecs)
        db_running = time.monotonic()

    # No restart of any app process: the next request that reaches a process finds the database again.
    recovered = probe.wait_until(lambda: get(f"{fleet.url}/api/notes/{note['id']}").status == 200, 20, interval=0.05)
    recovered_at = time.monotonic()
    assert recovered, "the fleet did not recover after the database came back"
    assert probe.wait_until(lambda: all(probe.ready(fleet.app_address(port)) for port in fleet.app_ports), 10)
    all_ready_at = time.monotonic()
    assert app_pids(supervisor) == pids, "an app process crashed or was restarted"
    assert get(f"{fleet.url}/api/notes/{note['id']}").json() == note  # the refused PATCH and DELETE did nothing
    listed = get(f"{fleet.url}/api/notes?limit=100").json()["notes"]
    assert lost_title not in {n["title"] for n in listed}, "a write answered 503 was stored"
    print(
        f"\n[{mode}] database down: /readyz 503 in {max(readyz_times):.2f} s (slowest process), API 503 in "
        f"{max(api_times):.2f} s (slowest of {len(api_times)} calls); database back: first 200 "
        f"{recovered_at - db_running:.2f} s after it was running ({recovered_at - restart_called:.2f} s after the "
        f"start command), every process ready after {all_ready_at - db_running:.2f} s"
    )


def test_every_acknowledged_write_survives_a_database_crash(fleet):
    """Writers POST through nginx without pause while the database is killed with SIGKILL (no clean shutdown)
    and supervisord restarts it. Each answer is 201 (acknowledged with w=majority) or 503;
    afterwards every acknowledged note is there, unchanged."""
    mode = fleet.app_env["FLEET_DB_MODE"]
    supervisor = Supervisor(fleet.socket)
    db_pid = supervisor.process("db")["pid"]
    sequence = itertools.count()
    answers: list[tuple[str, object]] = []
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            title = f"durable {mode} {next(sequence)}"
            try:
                answers.append((title, request("POST", f"{fleet.url}/api/notes", {"title": title}, timeout=10)))
            except OSError as exc:
                answers.append((title, repr(exc)))

    def acknowledged() -> int:
        return sum(1 for _, answer in answers if getattr(answer, "status", None) == 201)

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        probe.wait_until(lambda: acknowledged() >= 30, 20)
        os.kill(db_pid, signal.SIGKILL)
        killed_with = acknowledged()
        restarted = probe.wait_until(
            lambda: (info := supervisor.process("db"))["statename"] == "RUNNING" and info["pid"] != db_pid, 30
        )
        probe.wait_until(lambda: acknowledged() >= killed_with + 30, 30)
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    assert restarted, "supervisord did not restart the database"
    statuses = [getattr(answer, "status", answer) for _, answer in answers]
    assert set(statuses) <= {201, 503}, set(statuses)
    assert statuses.count(201) >= killed_with + 30, "writes did not resume after the restart"
    missing = []
    for title, answer in answers:
        if answer.status == 201:
            stored = get(f"{fleet.url}/api/notes/{answer.json()['id']}")
            if stored.status != 200 or stored.json()["title"] != title:
                missing.append(title)
    print(
        f"\n[{mode}] database SIGKILL under writes: {len(answers)} POSTs, {statuses.count(201)} acknowledged "
        f"({killed_with} before the kill), {statuses.count(503)} answered 503, {len(missing)} acknowledged missing"
    )
    assert missing == []
