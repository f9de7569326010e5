"""The scripts answer --help without starting anything (scripts/run --help used to boot the fleet) and pass
their arguments on, so a wrong option is an error rather than silently ignored. The help names the script the
user typed (not an internal module), says which fleet it acts on, and lists its exit statuses; scripts/run's
lists every setting with its default."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess

import pytest

from app.settings import Settings, env_name
from fleet.config import DERIVED_SETTINGS, ROOT

SCRIPTS = [
    "run",
    "stop",
    "status",
    "switch-db-mode",
    "rolling-restart",
    "scale",
    "ctl",
    "drain-host",
    "undrain-host",
    "fleet-hosts",
]


def run_script(name: str, *args: str, var_dir) -> subprocess.CompletedProcess:
    # A var dir of its own and ports nobody uses: if the script did start a fleet, it would show there.
    env = {**os.environ, "FLEET_VAR_DIR": str(var_dir), "FLEET_PORT": "1", "FLEET_APP_PORT_BASE": "2"}
    return subprocess.run(
        [str(ROOT / "scripts" / name), *args], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT
    )


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_exits_0_and_starts_nothing(name, tmp_path):
    var_dir = tmp_path / "var"
    result = run_script(name, "--help", var_dir=var_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:")
    assert not var_dir.exists(), "--help wrote the fleet's runtime files"


def test_run_rejects_an_unknown_option(tmp_path):
    var_dir = tmp_path / "var"
    result = run_script("run", "--no-such-option", var_dir=var_dir)
    assert result.returncode == 2
    assert "unrecognized arguments: --no-such-option" in result.stderr
    assert not var_dir.exists()


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_names_the_script_its_fleet_and_its_exit_statuses(name, tmp_path):
    result = run_script(name, "--help", var_dir=tmp_path / "var")
    assert result.stdout.startswith(f"usage: scripts/{name}"), result.stdout[:200]
    assert "FLEET_VAR_DIR" in result.stdout and "var/" in result.stdout, "does not say which fleet it acts on"
    assert "exit status" in result.stdout.lower()
    # Every documented status is a number followed by what it means.
    assert re.search(r"\b0\b[^0-9]+\b1\b", result.stdout.lower().split("exit status", 1)[1])


def test_run_help_lists_every_setting_with_its_default(tmp_path):
    text = run_script("run", "--help", var_dir=tmp_path / "var").stdout
    for var, default in [("FLEET_PORT", "8080"), ("FLEET_APP_PORT_BASE", "8001"), ("FLEET_DB_PORT", "27018")]:
        assert re.search(rf"^  {var} +\[{default}\]", text, re.M), var
    # MONGODB_URI has no default to list; the derived ones (app ports, env file, socket folder) scripts/run computes.
    settings = {env_name(f.name) for f in dataclasses.fields(Settings)} - {"MONGODB_URI"} - DERIVED_SETTINGS
    missing = [var for var in sorted(settings) if not re.search(rf"^  {var} +\[", text, re.M)]
    assert not missing, f"app settings missing from scripts/run --help: {missing}"
    for status in ("0", "1", "2", "3", "4"):
        assert re.search(rf"^  {status}  \S", text, re.M), f"exit status {status} not explained"


def test_scale_refuses_a_bad_count_and_a_stopped_fleet(tmp_path):
    var_dir = tmp_path / "var"
    bad = run_script("scale", "zero", var_dir=var_dir)
    assert bad.returncode == 2 and "invalid int value" in bad.stderr
    stopped = run_script("scale", "3", var_dir=var_dir)
    assert stopped.returncode == 1 and "the fleet is not running" in stopped.stderr
    assert not var_dir.exists()


def test_status_of_a_fleet_that_never_ran_says_not_running(tmp_path):
    result = run_script("status", var_dir=tmp_path / "var")
    assert result.returncode == 2
    assert "fleet not running" in result.stderr


def test_without_a_venv_every_fleet_wrapper_says_not_running_with_its_own_status(tmp_path):
    # A checkout where scripts/run never ran: lib.sh's require_venv answers with the program's documented "not
    # running" status (scripts/status 2, scripts/ctl 7, the rest 1) instead of installing packages; scripts/stop
    # alone answers 0 (a fleet that never ran is stopped).
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "scripts", checkout / "scripts")
    for name in ["status", "switch-db-mode", "rolling-restart", "scale", "ctl", "drain-host", "undrain-host"]:
        result = subprocess.run(
            [str(checkout / "scripts" / name), "x"], capture_output=True, text=True, timeout=60, cwd=checkout
        )
        assert result.returncode == {"status": 2, "ctl": 7}.get(name, 1), (name, result.stderr)
        assert "the fleet is not running (no .venv yet); start it with scripts/run" in result.stderr, name
    stop = subprocess.run([str(checkout / "scripts" / "stop")], capture_output=True, text=True, timeout=60)
    assert stop.returncode == 0 and "not running" in stop.stdout
    assert not (checkout / ".venv").exists()
