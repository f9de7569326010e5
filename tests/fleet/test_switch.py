"""The switch's decisions before anything restarts (fleet/switch.py, fleet/rolling.py), with a fake supervisord where
a real fleet would prove nothing more: an unknown mode, an invalid env file, a fleet that is not running (or whose
nginx is down, or that runs no app process) are refused with their exit status and message, the env file is left
as it was, and supervisord is asked to stop or start nothing. What only a fleet shows (switches under load, a
process that cannot start, the printed rollback, processes already in the mode left alone):
tests/whole_fleet/test_switch.py."""

from __future__ import annotations

import os
import subprocess

import pytest

from app.settings import read_env_file, write_env_file
from fleet import rolling, switch
from fleet.config import ROOT, FleetConfig


def script(config: FleetConfig, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLEET_VAR_DIR": str(config.var_dir)}
    return subprocess.run(
        [str(ROOT / "scripts" / args[0]), *args[1:]], env=env, capture_output=True, text=True, timeout=timeout
    )


class FakeSupervisor:
    """supervisord as fleet.rolling.connect asks it: whether it runs and what it runs (nginx and two app processes,
    all RUNNING unless told otherwise). Any other call (status, stop, start) fails the test: the decisions tested
    here are all taken before one."""

    def __init__(self, nginx: str = "RUNNING", apps: int = 2):
        self.nginx = nginx
        self.apps = apps
        self.calls: list[str] = []

    def __call__(self, socket_path) -> FakeSupervisor:  # stands in for the class fleet.rolling instantiates
        return self

    def running(self) -> bool:
        self.calls.append("running")
        return True

    def processes(self) -> list[dict]:
        self.calls.append("processes")
        apps = [{"name": f"app-{8001 + n}", "group": "app", "statename": "RUNNING"} for n in range(self.apps)]
        return [{"name": "nginx", "group": "nginx", "statename": self.nginx}, *apps]

    def __getattr__(self, name: str):
        raise AssertionError(f"supervisord asked for {name} although the switch should have stopped before")


@pytest.fixture
def stopped_fleet(tmp_path, monkeypatch) -> FleetConfig:
    """A fleet's folder as scripts/run writes it (env file in motor mode, nginx.conf), named by FLEET_VAR_DIR."""
    config = FleetConfig(var_dir=tmp_path, procs=2)
    config.write_runtime_files()
    monkeypatch.setenv("FLEET_VAR_DIR", str(tmp_path))
    return config


@pytest.fixture
def fake_supervisor(monkeypatch, stopped_fleet) -> FakeSupervisor:
    fake = FakeSupervisor()
    monkeypatch.setattr(rolling, "Supervisor", fake)
    return fake


def test_an_unknown_mode_is_refused_and_changes_nothing(stopped_fleet, fake_supervisor, capsys):
    env_before = stopped_fleet.env_file.read_text()
    assert switch.main(["turbo"]) == 2
    assert "unknown database mode 'turbo': choose one of motor, threads, async" in capsys.readouterr().err
    assert stopped_fleet.env_file.read_text() == env_before
    assert fake_supervisor.calls == []  # refused before the fleet is even asked
    # And through the script: the same status and message.
    result = script(stopped_fleet, "switch-db-mode", "turbo", timeout=60)
    assert result.returncode == 2
    assert "unknown database mode 'turbo': choose one of motor, threads, async" in result.stderr
    assert stopped_fleet.env_file.read_text() == env_before


def test_an_invalid_env_file_is_refused_before_anything_restarts(stopped_fleet, fake_supervisor, capsys):
    original = read_env_file(stopped_fleet.env_file)
    assert original["FLEET_DB_MODE"] == "motor"
    write_env_file(stopped_fleet.env_file, {**original, "FLEET_DB_POOL_SIZE": "0"})
    invalid = stopped_fleet.env_file.read_text()
    for main, args in ((switch.main, ["threads"]), (rolling.main, [])):
        assert main(args) == 2, main
        assert "FLEET_DB_POOL_SIZE: must be at least 1; nothing was" in capsys.readouterr().err
        assert stopped_fleet.env_file.read_text() == invalid  # the mode is still motor
    # Connected (supervisord and nginx up) but no process asked about, stopped or started.
    assert set(fake_supervisor.calls) == {"running", "processes"}


@pytest.mark.parametrize(
    ("fake", "message"),
    [
        (FakeSupervisor(nginx="STOPPED"), "nginx is STOPPED, not RUNNING"),
        (FakeSupervisor(apps=0), "runs no app processes"),
    ],
    ids=["nginx down", "no app process"],
)
def test_a_fleet_that_cannot_serve_is_refused(stopped_fleet, monkeypatch, capsys, fake, message):
    monkeypatch.setattr(rolling, "Supervisor", fake)
    env_before = stopped_fleet.env_file.read_text()
    for main, args in ((switch.main, ["threads"]), (switch.main, ["--status"]), (rolling.main, [])):
        assert main(args) == 1, args
        assert message in capsys.readouterr().err
    assert stopped_fleet.env_file.read_text() == env_before
    assert set(fake.calls) == {"running", "processes"}


def test_a_fleet_that_is_not_running_is_refused(tmp_path):
    config = FleetConfig(var_dir=tmp_path)
    for args in (("switch-db-mode", "threads"), ("switch-db-mode", "--status"), ("rolling-restart",)):
        result = script(config, *args, timeout=60)
        assert result.returncode == 1, args
        assert "the fleet is not running" in result.stderr and "scripts/run" in result.stderr
    assert list(tmp_path.iterdir()) == []
