"""Settings: defaults, precedence (env file wins), and a clear error naming the variable for bad values."""

import os
import stat
import subprocess
import sys

import pytest

from app.settings import DEV_SECRET_KEY, Settings, SettingsError, read_env_file, write_env_file
from fleet.config import ROOT


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


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("mongodb://", "MONGODB_URI: Must provide at least one hostname"),
        ("mongodb://h:99999/", "MONGODB_URI: Port must be an integer"),
        ("mongodb://user:hunter2@h:0x/", "MONGODB_URI: Port contains non-digit characters"),
        ("mongodb+srv://", "MONGODB_URI: mongodb\\+srv:// needs a host name"),
    ],
)
def test_a_malformed_database_uri_is_refused_naming_the_variable(uri, message):
    with pytest.raises(SettingsError, match=message) as refused:
        Settings.from_mapping({"MONGODB_URI": uri})
    assert "hunter2" not in str(refused.value)  # the message may be logged: never the password


def test_a_valid_database_uri_is_accepted_without_connecting():
    uri = "mongodb://user:pw@db1.example,db2.example:27017/?replicaSet=rs0&retryWrites=false"
    assert Settings.from_mapping({"MONGODB_URI": uri}).mongodb_uri == uri
    # SRV needs DNS to parse: only its shape is checked, so no lookup happens here.
    assert Settings.from_mapping({"MONGODB_URI": "mongodb+srv://cluster.example/"}).mongodb_uri


@pytest.mark.parametrize("host", ["10.0.0.5", "::1", "localhost", "127.0.0.2"])
def test_an_address_nginx_cannot_reach_is_refused(host):
    with pytest.raises(SettingsError, match=f"FLEET_HOST: '{host}' is not supported: must be 127.0.0.1 or 0.0.0.0"):
        Settings.from_mapping({"FLEET_HOST": host})


def test_the_wildcard_address_is_allowed_in_development():
    assert Settings.from_mapping({"FLEET_HOST": "0.0.0.0"}).host == "0.0.0.0"


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


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_") and k != "MONGODB_URI"}
    return subprocess.run(args, env={**clean, **env}, capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_a_process_will_not_start_in_production_with_the_development_key():
    result = run([sys.executable, "-m", "app", "--port", "1"], {"FLEET_ENV": "production"})
    assert result.returncode == 2
    assert "invalid setting: FLEET_SECRET_KEY" in result.stderr
    assert DEV_SECRET_KEY not in result.stderr


TOKEN = "Abc.def+ghi/jkl=mno_pqr-stu~vwx0123456789"


@pytest.mark.parametrize(
    ("values", "on"),
    [
        ({}, True),
        (PRODUCTION, False),
        ({**PRODUCTION, "FLEET_BENCHMARK_ENDPOINTS": "true"}, True),
        ({"FLEET_BENCHMARK_ENDPOINTS": "false"}, False),
        ({"FLEET_BENCHMARK_ENDPOINTS": "auto"}, True),
    ],
)
def test_benchmark_endpoints_are_off_in_production_unless_asked_for(values, on):
    assert Settings.from_mapping(values).benchmarks_on is on


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"FLEET_STATUS_ALLOW": "127.0.0.1,10.0.0.300"}, "FLEET_STATUS_ALLOW: "),
        ({"FLEET_STATUS_TOKEN": "short"}, "FLEET_STATUS_TOKEN: must be at least 32 characters"),
        ({"FLEET_STATUS_TOKEN": 'x"; default 1; ' + "y" * 32}, "FLEET_STATUS_TOKEN: may hold only"),
        ({"FLEET_BENCHMARK_ENDPOINTS": "sometimes"}, "FLEET_BENCHMARK_ENDPOINTS: must be auto, true or false"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(values, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_mapping(values)


def test_the_token_is_never_shown():
    settings = Settings.from_mapping({**PRODUCTION, "FLEET_STATUS_TOKEN": TOKEN})
    assert TOKEN not in repr(settings)
