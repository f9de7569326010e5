"""Secrets have no usable default outside development, and writes cannot be configured to go unacknowledged.

`FLEET_ENV=development` (the default, so `scripts/run` works with no settings) uses a public placeholder key;
`FLEET_ENV=production` refuses it, any known placeholder, a short key, fault injection and app ports reachable
from other hosts, and so does everything that loads the settings: `scripts/run` (fleet.launcher) and each process.
"""

import os
import stat
import subprocess
import sys

import pytest

from app.settings import DEV_SECRET_KEY, Settings, SettingsError, write_env_file
from app.web import make_app
from fleet.config import ROOT

GOOD_KEY = "k" * 16 + "9f3c1e7a2b5d8c4e6f0a"  # 36 characters, not a placeholder
PRODUCTION = {"FLEET_ENV": "production", "FLEET_SECRET_KEY": GOOD_KEY}


def test_development_needs_no_secret_and_production_accepts_a_real_one():
    development = Settings.from_mapping({})
    assert (development.env, development.secret_key) == ("development", DEV_SECRET_KEY)
    production = Settings.from_mapping(PRODUCTION)
    assert production.secret_key == GOOD_KEY
    assert GOOD_KEY not in repr(production)  # settings get logged; the key must not be


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"FLEET_SECRET_KEY": DEV_SECRET_KEY}, "FLEET_SECRET_KEY: must be set to a secret of your own"),
        ({"FLEET_SECRET_KEY": ""}, "FLEET_SECRET_KEY: must be set to a secret of your own"),
        ({"FLEET_SECRET_KEY": "changethis"}, "FLEET_SECRET_KEY: must be set to a secret of your own"),
        ({"FLEET_SECRET_KEY": " ChangeMe "}, "FLEET_SECRET_KEY: must be set to a secret of your own"),
        ({"FLEET_SECRET_KEY": "x" * 31}, "FLEET_SECRET_KEY: must be at least 32 characters"),
        ({"FLEET_FAULTS": "true"}, "FLEET_FAULTS: must be off in production"),
        ({"FLEET_HOST": "0.0.0.0"}, "FLEET_HOST: must be a loopback address in production"),
        ({"FLEET_ENV": "staging"}, "FLEET_ENV: must be one of development, production"),
    ],
)
def test_production_refuses_development_conveniences(overrides, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_mapping({**PRODUCTION, **overrides})


def test_production_without_a_key_is_refused():
    with pytest.raises(SettingsError, match="FLEET_SECRET_KEY: must be set"):
        Settings.from_mapping({"FLEET_ENV": "production"})


@pytest.mark.parametrize(("value", "ok"), [("majority", True), ("1", True), ("3", True), ("0", False), ("all", False)])
def test_the_write_concern_is_acknowledged(value, ok):
    if ok:
        assert Settings.from_mapping({"FLEET_DB_WRITE_CONCERN": value}).db_write_concern == value
    else:
        with pytest.raises(SettingsError, match="FLEET_DB_WRITE_CONCERN: must be majority or a number"):
            Settings.from_mapping({"FLEET_DB_WRITE_CONCERN": value})


def test_the_env_file_holding_the_key_is_owner_only(tmp_path):
    path = tmp_path / "fleet.env"
    write_env_file(path, Settings.from_mapping(PRODUCTION).to_env())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert f"FLEET_SECRET_KEY={GOOD_KEY}" in path.read_text().splitlines()


def test_the_key_signs_cookies():
    app = make_app(Settings.from_mapping(PRODUCTION), None, blocking=None, port=1)
    assert app.settings["cookie_secret"] == GOOD_KEY


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_") and k != "MONGODB_URI"}
    return subprocess.run(args, env={**clean, **env}, capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_the_fleet_will_not_start_in_production_with_a_placeholder_secret(tmp_path):
    # Without any key, a first production start generates one (tests/test_security_restart.py).
    env = {"FLEET_VAR_DIR": str(tmp_path), "FLEET_ENV": "production", "FLEET_SECRET_KEY": "changeme"}
    result = run([sys.executable, "-m", "fleet.launcher", "up"], env)
    assert result.returncode == 2
    assert "invalid setting: FLEET_SECRET_KEY: must be set to a secret of your own" in result.stderr
    assert not (tmp_path / "supervisor.sock").exists() and not (tmp_path / "fleet.env").exists()


def test_a_process_will_not_start_in_production_with_the_development_key():
    result = run([sys.executable, "-m", "app", "--port", "1"], {"FLEET_ENV": "production"})
    assert result.returncode == 2
    assert "invalid setting: FLEET_SECRET_KEY" in result.stderr
    assert DEV_SECRET_KEY not in result.stderr
