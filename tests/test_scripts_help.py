"""The scripts answer --help without starting anything (scripts/run --help used to boot the fleet) and pass
their arguments on, so a wrong option is an error rather than silently ignored."""

from __future__ import annotations

import os
import subprocess

import pytest

from fleet.config import ROOT

SCRIPTS = ["run", "stop", "status", "switch-db-mode", "rolling-restart"]


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
