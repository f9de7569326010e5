"""Fixtures. Everything runs for real: the embedded MongoDB-protocol server over TCP, app processes, and whole
fleets under supervisord with nginx. Nothing here mocks a driver.

- `mongo_uri` (session): a throw-away embedded server (secantusd-py, in memory) on a free port, seeded with the
  benchmark collections (`world`, `fortune`) in database `fleet`.
- `db_name`: a fresh database name per test, for tests that write.
- `mode` (parametrized: motor, threads, async): run the test once per database mode.
- `app_url` (module, per mode): one real app process (`python -m app`) on a free port against `mongo_uri`.
- `start_fleet` (function): boots a fleet (supervisord + nginx + app processes + its own embedded database) in a
  temporary folder on free ports; every fleet it started is stopped at teardown, also when the test fails.
- `fleet` (module, per mode): a running 2-process fleet, shared by the tests of a module.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from app.settings import DB_MODES
from fleet import launcher, probe
from fleet.config import FleetConfig
from fleet.seed import seed
from fleet.supervisor import Supervisor, wait_for_exit

VENV_BIN = Path(sys.executable).parent


def free_port_block(count: int) -> int:
    """The first of `count` consecutive ports that are free on 127.0.0.1 right now."""
    for _ in range(200):
        with socket.socket() as probe_socket:
            probe_socket.bind(("127.0.0.1", 0))
            base = probe_socket.getsockname()[1]
        if base + count >= 65000:
            continue
        if all(_port_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no block of free ports found")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def start_process(args: list[str], log_path: Path, env: dict | None = None) -> subprocess.Popen:
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})


def stop_process(process: subprocess.Popen) -> None:
    # By PID, never by name.
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory):
    port = free_port_block(1)
    log = tmp_path_factory.mktemp("mongo") / "secantusd.log"
    server = start_process(
        [str(VENV_BIN / "secantusd-py"), "--host", "127.0.0.1", "--port", str(port), "--storage-path", ":memory:"],
        log,
    )
    uri = f"mongodb://127.0.0.1:{port}/?retryWrites=false"
    try:
        seeded = probe.wait_until(lambda: _try_seed(uri), 20, interval=0.2)
        assert seeded, f"embedded server did not start: {log.read_text()[-2000:]}"
        yield uri
    finally:
        stop_process(server)


def _try_seed(uri: str) -> bool:
    from pymongo.errors import PyMongoError

    try:
        seed(uri, "fleet", timeout_ms=500)
        return True
    except PyMongoError:
        return False


@pytest.fixture
def db_name() -> str:
    return f"test_{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=DB_MODES)
def mode(request) -> str:
    return request.param


@pytest.fixture(scope="module", params=DB_MODES)
def app_url(request, mongo_uri, tmp_path_factory):
    """A real app process in each mode, on the seeded `fleet` database."""
    port = free_port_block(1)
    log = tmp_path_factory.mktemp(f"app-{request.param}") / "app.log"
    env = {"FLEET_DB_MODE": request.param, "MONGODB_URI": mongo_uri, "FLEET_ENV_FILE": ""}
    process = start_process([sys.executable, "-m", "app", "--port", str(port)], log, env)
    try:
        ready = probe.wait_until(lambda: probe.ready(port) or process.poll() is not None, 20)
        assert ready and process.poll() is None, f"app did not start: {log.read_text()[-2000:]}"
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


class FleetFactory:
    """Boots fleets in short-named folders under /tmp: pytest's own tmp folders are private (0700), which nginx's
    unprivileged workers cannot enter, and long enough to overflow a unix socket path (108 bytes)."""

    def __init__(self):
        self.started: list[FleetConfig] = []

    def __call__(self, mode: str = "motor", procs: int = 2, **app_env: str) -> FleetConfig:
        var_dir = Path(tempfile.mkdtemp(prefix=f"fleet-{mode}-"))
        os.chmod(var_dir, 0o755)  # nginx workers (user nobody) must reach their temp folders
        base = free_port_block(procs + 2)
        config = FleetConfig(
            var_dir=var_dir,
            port=base + procs,
            procs=procs,
            app_port_base=base,
            db_port=base + procs + 1,
            app_env={"FLEET_DB_MODE": mode, **app_env},
        )
        self.started.append(config)
        launcher.up(config, log=lambda *_: None)
        return config

    def stop_all(self) -> None:
        for config in self.started:
            supervisor = Supervisor(config.socket)
            pids = []
            if supervisor.running():
                pids = [supervisor.supervisord_pid()] + [p["pid"] for p in supervisor.processes() if p["pid"]]
            try:
                launcher.down(config, log=lambda *_: None)
            except launcher.FleetError:
                # Shutdown hung: kill what is left, by PID (never by name: other fleets may be running).
                for pid in wait_for_exit(pids, 0):
                    os.kill(pid, signal.SIGKILL)
                wait_for_exit(pids, 5)
            shutil.rmtree(config.var_dir, ignore_errors=True)
        self.started.clear()


@pytest.fixture
def start_fleet():
    factory = FleetFactory()
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="module", params=DB_MODES)
def fleet(request):
    factory = FleetFactory()
    try:
        yield factory(mode=request.param)
    finally:
        factory.stop_all()
