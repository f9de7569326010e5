"""scripts/run's launcher (fleet/launcher.py) without a fleet: which settings a re-run compares with a running
fleet; a bad setting, a production start with a placeholder secret, and a port held by a stranger are refused
before anything starts.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

from app.settings import DEV_SECRET_KEY, Settings
from fleet import launcher, probe
from fleet.config import ROOT
from fleet.sandbox import fleet_config, script_env


def test_only_settings_given_and_not_empty_are_compared():
    environ = {"FLEET_PROCS": "4", "FLEET_DB_MODE": "", "FLEET_APP_PORTS": "1,2", "HOME": "/root", "MONGODB_URI": "x"}
    assert launcher.explicit_settings(environ) == {"FLEET_PROCS": "4", "MONGODB_URI": "x"}


def test_app_settings_are_compared_as_the_settings_parse_them():
    env = Settings.from_mapping({"MONGODB_URI": "mongodb://127.0.0.1:1/"}).to_env()
    same = {"FLEET_DB_POOL_SIZE": "0100", "FLEET_DB_JOURNAL": "yes", "FLEET_SECRET_KEY": DEV_SECRET_KEY}
    assert launcher.app_setting_changes(env, same) == {}
    changed = launcher.app_setting_changes(env, {"FLEET_DB_POOL_SIZE": "50", "FLEET_PORT": "1"})
    assert changed == {"FLEET_DB_POOL_SIZE": ("100", "50")}


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_") and k != "MONGODB_URI"}
    return subprocess.run(args, env={**clean, **env}, capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_the_fleet_will_not_start_in_production_with_a_placeholder_secret(tmp_path):
    # Without any key, a first production start generates one (tests/whole_fleet/test_security_restart.py).
    env = {"FLEET_VAR_DIR": str(tmp_path), "FLEET_ENV": "production", "FLEET_SECRET_KEY": "changeme"}
    result = run([sys.executable, "-m", "fleet.launcher", "up"], env)
    assert result.returncode == 2
    assert "invalid setting: FLEET_SECRET_KEY: must be set to a secret of your own" in result.stderr
    assert not (tmp_path / "supervisor.sock").exists() and not (tmp_path / "fleet.env").exists()


def test_a_bad_setting_stops_scripts_run_with_a_clear_message(tmp_path):
    env = {**os.environ, "FLEET_VAR_DIR": str(tmp_path), "FLEET_DB_MODE": "turbo"}
    result = subprocess.run([str(ROOT / "scripts" / "run")], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "invalid setting: FLEET_DB_MODE: must be one of motor, threads, async" in result.stderr
    assert not (tmp_path / "supervisor.sock").exists()


def script(name: str, *args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ROOT / "scripts" / name), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def test_a_port_held_by_a_stranger_is_named_and_nothing_starts():
    config = fleet_config("motor", 2, prefix="operator-stranger-")
    stranger = socket.create_server(("127.0.0.1", config.port))
    try:
        result = script("run", env=script_env(config))
        assert result.returncode == 3, result.stdout + result.stderr
        assert f"port {config.port} (public port of nginx, FLEET_PORT) is held by pid {os.getpid()} (" in result.stderr
        assert "python" in result.stderr.split(f"pid {os.getpid()} (", 1)[1].split(")", 1)[0]
        assert not (config.var_dir / "supervisor.sock").exists()
        assert all(probe.get_json(config.app_address(port), "/healthz")[0] == 0 for port in config.app_ports)
    finally:
        stranger.close()
        shutil.rmtree(config.var_dir, ignore_errors=True)
