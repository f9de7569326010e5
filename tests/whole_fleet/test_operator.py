"""The operator's first hour, from the outside: the scripts a person types, on a real fleet.

- A second fleet (another FLEET_VAR_DIR) on the first one's ports is refused, naming the holding processes, and
  nothing of it starts (a port held by a stranger, without a fleet: tests/fleet/test_launcher.py).
- A process that cannot bind its port is marked failed by supervisord (not restarted in a loop), and
  `scripts/run` says so with the log line; `scripts/status` shows it down.
- `FLEET_PROCS=4 scripts/run` on a running 2-process fleet, then `scripts/scale 2`, under load: zero failed
  requests, the running processes keep their pids, nginx routes to exactly the processes that run.
- Other changed settings are refused at once with what would change and the command that applies it.
- `scripts/status` on a stopped fleet (its env file left behind) says "not running" and exits 2.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

from app.settings import read_env_file
from bench.loadgen import Load, all_note_ids
from fleet import launcher, probe
from fleet.config import ROOT, FleetConfig
from fleet.sandbox import fleet_config, free_port_block, script_env, short_tmp_dir, stop_fleet
from fleet.supervisor import Supervisor

pytestmark = pytest.mark.fleet

CLIENTS = 8
# Requests per second per client: well below what the shared 2-core machine serves, so a failure means a request
# was lost by the scaling, not by an overloaded machine.
RATE = 6.0


def script(name: str, *args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ROOT / "scripts" / name), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


@pytest.fixture(scope="module")
def fleet():
    """A 2-process fleet on a block of ports with room for 4 app processes and their metrics ports."""
    config = dataclasses.replace(fleet_config("motor", 4, prefix="operator-"), procs=2)
    try:
        launcher.up(config, log=lambda *_: None)
        yield config
    finally:
        stop_fleet(config)


def pids(config: FleetConfig) -> dict[str, int]:
    return {p["name"]: p["pid"] for p in Supervisor(config.socket).app_processes()}


def pids_behind_nginx(config: FleetConfig, expected: set[int], tries: int = 200) -> set[int]:
    """The pids nginx routes /readyz to, asked until all of `expected` were seen (or `tries` requests)."""
    seen: set[int] = set()
    for _ in range(tries):
        code, body = probe.get_json(config.port, "/readyz")
        if code == 200:
            seen.add(body["pid"])
        if seen >= expected:
            break
    return seen


def wait_for_requests(load: Load, more: int = 30) -> None:
    target = load.count() + more
    assert probe.wait_until(lambda: load.count() >= target, 60), "the load generator stopped making requests"


def test_a_second_fleet_on_the_same_ports_is_refused_naming_the_holders(fleet):
    before = pids(fleet)
    db_pid = Supervisor(fleet.socket).process("db")["pid"]
    nginx_pid = Supervisor(fleet.socket).process("nginx")["pid"]
    offset = fleet.app_settings().metrics_port_offset
    second = short_tmp_dir("operator-second-")
    try:
        # As issue 16 found it: a second FLEET_VAR_DIR with only the public port changed.
        env = {**script_env(fleet), "FLEET_VAR_DIR": str(second), "FLEET_PORT": str(free_port_block(1))}
        result = script("run", env=env)
        assert result.returncode == 3, result.stdout + result.stderr
        assert "nothing was started" in result.stderr
        for name in before:
            # The processes listen on unix sockets in the first fleet's folder; nginx serves their metrics ports.
            metrics_port = int(name.split("-")[1]) + offset
            held = f"port {metrics_port} (metrics of {name}, FLEET_METRICS_PORT_OFFSET) is held by pid {nginx_pid} ("
            assert held in result.stderr, result.stderr
        assert f"port {fleet.db_port} (embedded database, FLEET_DB_PORT) is held by pid {db_pid} (" in result.stderr
        assert not (second / "supervisor.sock").exists() and not (second / "fleet.env").exists()
        # Nor does its status talk to the first fleet's processes.
        status = script("status", env=env)
        assert status.returncode == 2 and "fleet not running" in status.stderr
    finally:
        shutil.rmtree(second, ignore_errors=True)
    assert pids(fleet) == before


def test_a_process_that_cannot_bind_is_marked_failed_and_named(fleet):
    supervisor = Supervisor(fleet.socket)
    victim = fleet.app_ports[1]
    name = f"app-{victim}"
    supervisor.rpc.stopProcess(f"app:{name}", True)
    # A folder where its socket goes: the app will not remove what is not a socket (app/addresses.py).
    taken = Path(fleet.app_address(victim))
    taken.unlink(missing_ok=True)
    taken.mkdir()
    try:
        supervisor.rpc.startProcess(f"app:{name}", False)

        def gave_up() -> str:
            state = supervisor.process(f"app:{name}")["statename"]
            return state if state in ("EXITED", "FATAL") else ""

        assert probe.wait_until(gave_up, 60), supervisor.process(f"app:{name}")
        # It stays down: supervisord does not restart a process that could not listen.
        assert not probe.wait_until(lambda: supervisor.process(f"app:{name}")["statename"] == "STARTING", 3)

        result = script("run", env=script_env(fleet))
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"{name}: " in result.stderr and "Address already in use" in result.stderr
        assert f"scripts/ctl start app:{name}" in result.stderr
        status = script("status", env=script_env(fleet))
        assert status.returncode == 1
        assert any(line.split()[:2] == [str(victim), "down"] for line in status.stdout.splitlines()), status.stdout
    finally:
        taken.rmdir()
    started = script("ctl", "start", f"app:{name}", env=script_env(fleet))
    assert started.returncode == 0, started.stdout + started.stderr
    again = script("run", env=script_env(fleet))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "fleet ready" in again.stdout


def test_other_changed_settings_are_refused_saying_how_to_apply_them(fleet):
    before = pids(fleet)
    env = {**script_env(fleet), "FLEET_DB_MODE": "threads", "FLEET_DB_POOL_SIZE": "50", "FLEET_PORT": "1"}
    env |= {"FLEET_NGINX_LOG_BACKUPS": "7", "FLEET_PROMETHEUS": "false"}  # the latter as it runs: no change
    result = script("run", env=env)
    assert result.returncode == 4, result.stdout + result.stderr
    assert f"FLEET_PORT: {fleet.port} -> 1" in result.stderr
    assert "FLEET_NGINX_LOG_BACKUPS: 5 -> 7" in result.stderr and "FLEET_PROMETHEUS" not in result.stderr
    assert "FLEET_DB_MODE: motor -> threads" in result.stderr
    assert "FLEET_DB_POOL_SIZE: 100 -> 50" in result.stderr
    assert f"FLEET_VAR_DIR={fleet.var_dir} scripts/switch-db-mode threads" in result.stderr
    assert f"FLEET_VAR_DIR={fleet.var_dir} scripts/rolling-restart" in result.stderr
    assert read_env_file(fleet.env_file)["FLEET_DB_MODE"] == "motor"
    assert pids(fleet) == before


def test_scaling_up_and_down_under_load_fails_no_request(fleet):
    before = pids(fleet)
    env = script_env(fleet)
    # Each reload makes nginx's old workers close their idle keep-alive connections; a request that arrives on one
    # at that instant is sent again on a new connection, as a browser does (writes carry an Idempotency-Key).
    with Load(fleet.url, clients=CLIENTS, rate=RATE, retry_reused=True) as load:
        wait_for_requests(load)
        up = script("run", env={**env, "FLEET_PROCS": "4"})
        assert up.returncode == 0, up.stdout + up.stderr
        assert "scaling from 2 to 4" in up.stdout
        wait_for_requests(load)
        four = pids(fleet)
        assert len(four) == 4 and {n: four[n] for n in before} == before, "running processes were restarted"
        assert pids_behind_nginx(fleet, set(four.values())) == set(four.values())
        assert read_env_file(fleet.env_file)["FLEET_APP_PORTS"] == ",".join(
            str(fleet.app_port_base + i) for i in range(4)
        )

        down = script("scale", "2", env=env)
        assert down.returncode == 0, down.stdout + down.stderr
        wait_for_requests(load)
    result = load.result
    assert result.failures == [], f"{len(result.failures)} of {len(result.outcomes)} failed: {result.failures[:5]}"
    assert not set(result.acknowledged) - all_note_ids(fleet.url), "acknowledged writes are missing"

    assert pids(fleet) == before
    assert pids_behind_nginx(fleet, set(before.values()), tries=20) == set(before.values())
    removed = [fleet.app_port_base + 2, fleet.app_port_base + 3]
    assert all(probe.get_json(fleet.app_address(port), "/healthz")[0] == 0 for port in removed)
    status = script("status", env=env)
    assert status.returncode == 0 and "2 of 2 ready" in status.stdout, status.stdout + status.stderr


def test_status_of_a_stopped_fleet_says_not_running(fleet):
    env = script_env(fleet)
    stopped = script("stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert fleet.env_file.exists()  # left behind, as after every stop
    status = script("status", env=env)
    assert status.returncode == 2
    assert "fleet not running" in status.stderr
