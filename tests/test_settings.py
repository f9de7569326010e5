"""Settings: defaults, precedence (env file wins), and a clear error naming the variable for bad values."""

import subprocess
import sys

import pytest

from app.settings import Settings, SettingsError, read_env_file, write_env_file


def test_defaults_are_valid():
    settings = Settings.from_mapping({})
    assert settings.db_mode == "motor"
    assert "retryWrites=false" in settings.mongodb_uri


def test_env_file_wins_over_environment(tmp_path):
    env_file = tmp_path / "fleet.env"
    write_env_file(env_file, {"FLEET_DB_MODE": "threads", "FLEET_DB_THREADS": "7"})
    settings = Settings.load({"FLEET_ENV_FILE": str(env_file), "FLEET_DB_MODE": "async", "FLEET_DB_NAME": "x"})
    assert (settings.db_mode, settings.db_threads, settings.db_name) == ("threads", 7, "x")


def test_round_trip_through_env_file(tmp_path):
    original = Settings.from_mapping({"FLEET_DB_MODE": "async", "FLEET_DRAIN_SECONDS": "4.5"})
    write_env_file(tmp_path / "e.env", original.to_env())
    assert Settings.from_mapping(read_env_file(tmp_path / "e.env")) == original


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("FLEET_DB_MODE", "mongo", "FLEET_DB_MODE: must be one of motor, threads, async"),
        ("FLEET_DB_THREADS", "many", "FLEET_DB_THREADS='many': expected int"),
        ("FLEET_DB_THREADS", "0", "FLEET_DB_THREADS: must be at least 1"),
        ("MONGODB_URI", "localhost:27017", "MONGODB_URI: must start with mongodb://"),
        ("FLEET_DRAIN_SECONDS", "-1", "FLEET_DRAIN_SECONDS: must be positive"),
    ],
)
def test_bad_values_name_the_variable(var, value, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        Settings.from_mapping({var: value})


def test_malformed_env_file_line(tmp_path):
    (tmp_path / "bad.env").write_text("FLEET_DB_MODE=motor\nnot a setting\n")
    with pytest.raises(SettingsError, match=r"bad.env:2: expected KEY=VALUE"):
        read_env_file(tmp_path / "bad.env")


def test_process_refuses_to_start_with_a_bad_setting():
    result = subprocess.run(
        [sys.executable, "-m", "app", "--port", "1"],
        env={"FLEET_DB_MODE": "nope", "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "invalid setting: FLEET_DB_MODE" in result.stderr
