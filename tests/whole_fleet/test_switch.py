"""Switching database modes and rolling restarts (scripts/switch-db-mode, scripts/rolling-restart, the drain in
app/lifecycle.py), on a whole 2-process fleet, under steady load through nginx: 16 clients reading and writing
notes and reading /db. What is asserted is what a user sees: failed requests (none), acknowledged writes that
can be read back (all), each process's mode and pid, exit codes and messages."""

from __future__ import annotations

import os
import subprocess
import threading

import pytest

from app.process_status import ProcessStatus
from app.settings import read_env_file, write_env_file
from bench.loadgen import Load, LoadResult, all_note_ids
from fleet import probe, rolling
from fleet.config import ROOT, FleetConfig
from fleet.supervisor import Supervisor, pid_alive
from tests.client import get
from tests.fleets import module_fleet

pytestmark = pytest.mark.fleet

CLIENTS = 16
# Requests per second per client: steady load well below what this shared 2-core machine can serve, so that a
# failure means a request was lost by the restart, not by an overloaded machine.
RATE = 6.0


# One 2-process fleet for the whole module, switched through every mode (instead of conftest's per-mode one);
# FLEET_FAULTS routes /fault/sleep, the slow request of the drain test.
fleet = module_fleet("motor", 2, FLEET_FAULTS="true")


def script(config: FleetConfig, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLEET_VAR_DIR": str(config.var_dir)}
    return subprocess.run(
        [str(ROOT / "scripts" / args[0]), *args[1:]], env=env, capture_output=True, text=True, timeout=timeout
    )


def processes(config: FleetConfig) -> dict[int, ProcessStatus]:
    return {row.port: row for row in rolling.status(rolling.connect(config))}


def wait_for_requests(load: Load, more: int = 30) -> None:
    target = load.count() + more
    assert probe.wait_until(lambda: load.count() >= target, 30), "the load generator stopped making requests"


def assert_nothing_lost(config: FleetConfig, result: LoadResult) -> None:
    failures = result.failures
    assert failures == [], f"{len(failures)} of {len(result.outcomes)} requests failed: {failures[:5]}"
    for op in ("write", "read_back", "db", "list"):
        assert result.count(op) > 0, f"no {op} requests were made"
    missing = set(result.acknowledged) - all_note_ids(config.url)
    assert not missing, f"{len(missing)} acknowledged writes cannot be read back: {sorted(missing)[:5]}"


def test_switching_modes_under_load_fails_no_request_and_loses_no_write(fleet):
    assert {row.mode for row in processes(fleet).values()} == {"motor"}
    with Load(fleet.url, clients=CLIENTS, rate=RATE) as load:
        wait_for_requests(load)
        for mode in ("threads", "async", "motor"):
            before = processes(fleet)
            served_before = load.count()
            result = script(fleet, "switch-db-mode", mode)
            assert result.returncode == 0, result.stdout + result.stderr
            assert f"switched 2 processes to {mode}" in result.stdout
            after = processes(fleet)
            assert {port: (row.mode, row.ready) for port, row in after.items()} == {
                port: (mode, True) for port in fleet.app_ports
            }
            # Each process was really restarted: a new pid, alive, in place of an old one that has exited.
            for port in fleet.app_ports:
                assert after[port].pid != before[port].pid
                assert not pid_alive(before[port].pid)
            assert read_env_file(fleet.env_file)["FLEET_DB_MODE"] == mode
            assert load.count() > served_before, "no request was served during the switch"
            wait_for_requests(load)
    assert_nothing_lost(fleet, load.result)


# The slow request of the drain test. Long enough that, on a loaded 2-core machine, it is surely still in flight
# after its process was found and told to stop (each step's window below is a share of it); shorter than the
# drain deadline (FLEET_DRAIN_SECONDS, 10 s by default), which it must not need to outlast.
SLOW_SECONDS = 8


def test_a_request_in_flight_when_its_process_is_told_to_stop_completes(fleet):
    supervisor = Supervisor(fleet.socket)
    answer: dict = {}

    def slow_request() -> None:
        response = get(f"{fleet.url}/fault/sleep?seconds={SLOW_SECONDS}", timeout=SLOW_SECONDS + 20)
        answer.update(status=response.status, body=response.json())

    client = threading.Thread(target=slow_request)
    client.start()
    try:
        # The process holding it counts it (and the probe itself) as in flight.
        holder = probe.wait_until(
            lambda: next(
                (p for p in fleet.app_ports if (probe.ready(fleet.app_address(p)) or {}).get("in_flight", 0) >= 2), None
            ),
            SLOW_SECONDS / 2,
        )
        assert holder, "the slow request did not reach a process"
        name = f"app:app-{holder}"
        old_pid = supervisor.process(name)["pid"]
        supervisor.rpc.stopProcess(name, False)  # SIGTERM, without waiting for the exit
        # It stops accepting at once, while the slow request is still being served...
        assert probe.wait_until(
            lambda: probe.get_json(fleet.app_address(holder), "/healthz", timeout=1)[0] == 0, SLOW_SECONDS / 4
        )
        assert pid_alive(old_pid)
        client.join(SLOW_SECONDS + 20)
        # ...and that request completes, answered by the process that was stopping.
        assert answer == {"status": 200, "body": {"slept_seconds": float(SLOW_SECONDS), "port": holder, "pid": old_pid}}
        assert probe.wait_until(lambda: supervisor.process(name)["statename"] == "STOPPED", 15)
    finally:
        client.join(SLOW_SECONDS + 20)
        for port in fleet.app_ports:  # leave the fleet whole for the next tests
            if supervisor.process(f"app:app-{port}")["statename"] == "STOPPED":
                supervisor.rpc.startProcess(f"app:app-{port}", True)
    assert probe.wait_until(lambda: all(probe.ready(fleet.app_address(p)) for p in fleet.app_ports), 20)


def test_status_shows_every_process(fleet):
    result = script(fleet, "switch-db-mode", "--status")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # The table scripts/status prints (one model and one renderer: app/process_status.py, fleet/status.py).
    assert lines[0].split()[:4] == ["PORT", "STATE", "MODE", "PID"]
    table = lines[1 : lines.index("")]  # a blank line, then the summary
    rows = {int(line.split()[0]): line.split() for line in table}
    assert sorted(rows) == fleet.app_ports
    for port, row in processes(fleet).items():
        assert (row.supervisor_state, row.ready) == ("RUNNING", True)
        assert rows[port][1:4] == ["ready", "motor", str(row.pid)]


def test_a_process_that_cannot_start_stops_the_rolling_restart_and_the_rest_keep_serving(fleet):
    original = read_env_file(fleet.env_file)
    first, second = fleet.app_ports
    before = processes(fleet)
    # Valid to the settings parser, fatal to the process: a socket folder that does not exist.
    write_env_file(fleet.env_file, {**original, "FLEET_SOCKET_DIR": str(fleet.var_dir / "missing")})
    try:
        with Load(fleet.url, clients=CLIENTS, rate=RATE) as load:
            wait_for_requests(load)
            failed = script(fleet, "rolling-restart")
            after = processes(fleet)
            wait_for_requests(load)
    finally:
        write_env_file(fleet.env_file, original)
    assert failed.returncode == 1
    assert f"app-{first} (port {first}) failed: it exited at start" in failed.stderr
    assert "No such file or directory" in failed.stderr  # the end of its log says why
    assert f"1 other process(es) keep serving: app-{second}" in failed.stderr
    # STOPPED by the restart, or left EXITED/FATAL by supervisord, which does not restart a process that cannot listen
    # (exit 3, deploy/supervisord.conf): either way it is not running and nginx skips it.
    assert after[first].supervisor_state in ("STOPPED", "EXITED", "FATAL") and not after[first].ready
    assert (after[second].pid, after[second].ready) == (before[second].pid, True)
    assert_nothing_lost(fleet, load.result)

    again = f"FLEET_VAR_DIR={fleet.var_dir} scripts/rolling-restart"
    assert f"Fix the cause, then run again: {again}" in failed.stderr
    fixed = script(fleet, "rolling-restart")
    assert fixed.returncode == 0, fixed.stderr
    assert all(row.ready and row.mode == "motor" for row in processes(fleet).values())


def test_a_switch_that_fails_prints_the_rollback_that_restores_the_fleet(fleet):
    first, second = fleet.app_ports
    before = processes(fleet)
    with Load(fleet.url, clients=CLIENTS, rate=RATE) as load:
        wait_for_requests(load)
        # supervisord reports a process RUNNING only after startsecs (1 s): a deadline below that always fails.
        failed = script(fleet, "switch-db-mode", "threads", "--timeout", "0.5")
        assert failed.returncode == 1
        assert f"app-{first} (port {first}) failed: not ready 0.5s after its start" in failed.stderr
        during = processes(fleet)
        assert during[first].supervisor_state == "STOPPED"
        assert (during[second].pid, during[second].mode, during[second].ready) == (before[second].pid, "motor", True)

        rollback = f"FLEET_VAR_DIR={fleet.var_dir} scripts/switch-db-mode motor"
        assert f"Roll back with: {rollback}" in failed.stderr
        rolled_back = script(fleet, "switch-db-mode", "motor")
        wait_for_requests(load)
    assert rolled_back.returncode == 0, rolled_back.stderr
    # Only the process that was not serving motor was restarted.
    assert "switching 1 of 2 app processes to motor" in rolled_back.stdout
    after = processes(fleet)
    assert {row.mode for row in after.values()} == {"motor"} and all(row.ready for row in after.values())
    assert after[second].pid == before[second].pid
    assert read_env_file(fleet.env_file)["FLEET_DB_MODE"] == "motor"
    assert_nothing_lost(fleet, load.result)


def test_processes_already_in_the_mode_are_left_alone(fleet):
    pids_before = {p: r.pid for p, r in processes(fleet).items()}
    result = script(fleet, "switch-db-mode", "motor")
    assert result.returncode == 0, result.stderr
    assert "every process already serves motor; nothing to restart" in result.stdout
    assert {p: r.pid for p, r in processes(fleet).items()} == pids_before
