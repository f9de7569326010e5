"""Fixtures. Everything runs for real: the embedded MongoDB-protocol server over TCP, app processes, and whole
fleets under supervisord with nginx. Nothing here mocks a driver.

- `mongo_uri` (session): a throw-away embedded server (secantusd-py, in memory) on a free port, seeded with the
  benchmark collections (`world`, `fortune`) in database `fleet`.
- `db_name`: a fresh database name per test, for tests that write.
- `mode` (parametrized: motor, threads, async): run the test once per database mode.
- `app_url` (module, per mode): one real app process (`python -m app`) on a free port against `mongo_uri`.
- `start_app` (function): starts app processes with the settings given (`start_app(FLEET_FAULTS="true")`) on a
  free port against `mongo_uri`; returns an `AppProcess` (url, port, log); all are stopped at teardown.
- `start_fleet` (function): boots a fleet (supervisord + nginx + app processes + its own embedded database) in a
  temporary folder on free ports; every fleet it started is stopped at teardown, also when the test fails.
- `fleet` (module, per mode): a running 2-process fleet, shared by the tests of a module.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from app.settings import DB_MODES, embedded_uri
from fleet import launcher, probe
from fleet.config import FleetConfig
from fleet.sandbox import (
    VENV_BIN,
    fleet_config,
    free_port_block,
    start_embedded_db,
    start_process,
    stop_fleet,
    stop_process,
)

# Shared with scripts/bench (fleet/sandbox.py); re-exported for the test modules that import them from here.
__all__ = ["VENV_BIN", "free_port_block", "start_process", "stop_process"]


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory):
    port = free_port_block(1)
    server = start_embedded_db(port, ":memory:", tmp_path_factory.mktemp("mongo") / "secantusd.log")
    try:
        yield embedded_uri(port)
    finally:
        stop_process(server)


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


@dataclasses.dataclass
class AppProcess:
    port: int
    url: str
    log: Path
    process: subprocess.Popen

    def log_text(self) -> str:
        return self.log.read_text()


@pytest.fixture
def start_app(mongo_uri, tmp_path):
    started: list[AppProcess] = []

    def start(**env: str) -> AppProcess:
        port = free_port_block(1)
        log = tmp_path / f"app-{port}.log"
        settings = {"MONGODB_URI": mongo_uri, "FLEET_ENV_FILE": "", **env}
        process = start_process([sys.executable, "-m", "app", "--port", str(port)], log, settings)
        started.append(AppProcess(port, f"http://127.0.0.1:{port}", log, process))
        ready = probe.wait_until(lambda: probe.ready(port) or process.poll() is not None, 20)
        assert ready and process.poll() is None, f"app did not start: {log.read_text()[-2000:]}"
        return started[-1]

    try:
        yield start
    finally:
        for app in started:
            stop_process(app.process)


class FleetFactory:
    """Boots fleets in short-named folders under /tmp (see `fleet.sandbox.short_tmp_dir` for why not pytest's)."""

    def __init__(self):
        self.started: list[FleetConfig] = []

    def __call__(self, mode: str = "motor", procs: int = 2, **app_env: str) -> FleetConfig:
        config = fleet_config(mode, procs, **app_env)
        self.started.append(config)
        launcher.up(config, log=lambda *_: None)
        return config

    def stop_all(self) -> None:
        for config in self.started:
            stop_fleet(config)
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
