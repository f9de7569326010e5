"""The fleets and app processes the tests boot, for test modules to import (conftest.py's fixtures use them too).

Everything is booted through fleet.sandbox, as the benchmark boots its fleets, and stopped at the end of its block
or fixture, also when a test fails.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleet.config import FleetConfig
from fleet.sandbox import (
    AppProcess,
    booted,
    fleet_config,
    free_port_block,
    short_tmp_dir,
    start_embedded_db,
    stop_process,
)
from fleet.sandbox import start_app as start_app_process


@contextlib.contextmanager
def app_processes(log_dir: Path, ready_path: str = "/readyz", **base_env: str) -> Iterator[Callable[..., AppProcess]]:
    """`start(**env)` starts an app process with `base_env` and `env` (see `fleet.sandbox.start_app`); every one
    started is stopped when the block ends."""
    started: list[AppProcess] = []

    def start(**env: str) -> AppProcess:
        started.append(start_app_process({**base_env, **env}, log_dir, ready_path=ready_path))
        return started[-1]

    try:
        yield start
    finally:
        for app in started:
            app.stop()


@functools.cache
def seeded_storage() -> Path:
    """A database folder holding the seeded `world` and `fortune` collections, made once per test process (and
    removed at its exit), cleanly stopped so that its files are complete."""
    folder = short_tmp_dir("seeded-db-")
    atexit.register(shutil.rmtree, folder, True)
    server = start_embedded_db(free_port_block(1), folder / "db", folder / "db.log")
    stop_process(server)
    return folder / "db"


class FleetFactory:
    """Boots fleets in short-named folders under /tmp (see `fleet.sandbox.short_tmp_dir` for why not pytest's), each
    through `fleet.sandbox.booted` (as the benchmark does): `stop_all` stops every one, the last booted first.

    A fleet with its own database and no database user starts on a copy of `seeded_storage()`: the launcher finds
    the collections complete and writes nothing (fleet/seed.py is idempotent), which saves ~1.3 s of seeding per
    fleet; scripts/run and the fleets the tests start through it still seed as a user's fleet does."""

    def __init__(self):
        self._booted = contextlib.ExitStack()

    def __call__(self, mode: str = "motor", procs: int = 2, **app_env: str) -> FleetConfig:
        config = fleet_config(mode, procs, **app_env)
        if config.embedded_db and not config.db_auth:
            shutil.copytree(seeded_storage(), config.var_dir / "db")
        self._booted.enter_context(booted(config))
        return config

    def stop_all(self) -> None:
        self._booted.close()


def module_fleet(mode: str, procs: int = 2, **app_env: str):
    """A module-scoped fixture booting one fleet for a module's tests: `status_fleet = module_fleet("threads")`."""

    @pytest.fixture(scope="module")
    def booted():
        factory = FleetFactory()
        try:
            yield factory(mode, procs, **app_env)
        finally:
            factory.stop_all()

    return booted
