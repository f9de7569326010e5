"""Fixtures. Everything runs for real: the embedded MongoDB-protocol server over TCP, app processes, and whole
fleets under supervisord with nginx. Nothing here mocks a driver.

- `mongo_uri` (session): a throw-away embedded server (secantusd-py, in memory) on a free port, seeded with the
  benchmark collections (`world`, `fortune`) in database `fleet`.
- `db_name`: a fresh database name per test, for tests that write.
- `mode` (parametrized: motor, threads, async): run the test once per database mode.
- `app_url` (session, per mode): one real app process (`python -m app`) on a free port against `mongo_uri`,
  shared by every module that asks for it (they only make requests; a test that needs other settings or a
  process of its own uses `start_app`).
- `start_app` (function): starts app processes with the settings given (`start_app(FLEET_FAULTS="true")`) on a
  free port against `mongo_uri`; returns a `fleet.sandbox.AppProcess` (url, port, metrics_port, log); all are
  stopped at teardown.
- `start_fleet` (function): boots a fleet (supervisord + nginx + app processes + its own embedded database) in a
  temporary folder on free ports; every fleet it started is stopped at teardown, also when the test fails.
- `fleet` (module, per mode): a running 2-process fleet, shared by the tests of a module.

tests/fleets.py holds what test modules import: `module_fleet(mode, procs, **env)` makes a module-scoped fixture
with one fleet of that mode and settings; `app_processes(log_dir, ready_path, **env)` is what `start_app` is made
of, for app processes with other settings; `FleetFactory` boots and stops fleets.
"""

from __future__ import annotations

import uuid

import pytest

from app.settings import DB_MODES
from fleet.sandbox import embedded_db
from fleet.sandbox import start_app as start_app_process
from tests.fleets import FleetFactory, app_processes


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory):
    with embedded_db(log_dir=tmp_path_factory.mktemp("mongo")) as uri:
        yield uri


@pytest.fixture
def db_name() -> str:
    return f"test_{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=DB_MODES)
def mode(request) -> str:
    return request.param


@pytest.fixture(scope="session", params=DB_MODES)
def app_url(request, mongo_uri, tmp_path_factory):
    """A real app process in each mode, on the seeded `fleet` database."""
    env = {"FLEET_DB_MODE": request.param, "MONGODB_URI": mongo_uri}
    app = start_app_process(env, tmp_path_factory.mktemp(f"app-{request.param}"))
    try:
        yield app.url
    finally:
        app.stop()


@pytest.fixture
def start_app(mongo_uri, tmp_path):
    with app_processes(tmp_path, MONGODB_URI=mongo_uri) as start:
        yield start


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
