"""The configuration survives restarts and secrets stay put (README "Security"), through scripts/run and scripts/stop.

A first production start without a key generates one, stored owner-only; `scripts/stop` + `scripts/run` without any
export keeps the profile, the key and the database mode; a setting given explicitly changes the file and is printed.
A secret given in the environment appears in no process's command line, and in no environment but the env file's
readers' (nginx, the database and supervisord never see it; the app processes read it from the file).
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from app.settings import read_env_file
from fleet import dbauth
from fleet.config import ROOT, FleetConfig
from fleet.sandbox import fleet_config, script_env
from fleet.supervisor import Supervisor
from tests import raw_http

pytestmark = pytest.mark.fleet


def script(name: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "scripts" / name)], env=env, capture_output=True, text=True, timeout=180)


def status_from_afar(config: FleetConfig) -> int:
    conn = raw_http.SourceConnection(config.url, "127.0.0.2")
    try:
        return conn.fetch("GET", "/status.json")[0]
    finally:
        conn.close()


def test_a_cold_restart_without_exports_keeps_the_profile_the_key_and_the_mode():
    config = fleet_config("threads", 1, prefix="security-restart-")
    env = {k: v for k, v in script_env(config).items() if k != "FLEET_SECRET_KEY"}
    env["FLEET_ENV"] = "production"
    bare = {k: v for k, v in env.items() if k not in ("FLEET_ENV", "FLEET_DB_MODE")}
    try:
        first = script("run", env)
        assert first.returncode == 0, first.stderr
        assert f"generated a random FLEET_SECRET_KEY for production, stored in {config.env_file}" in first.stdout
        key = read_env_file(config.env_file)["FLEET_SECRET_KEY"]
        assert len(key) >= 32 and key not in first.stdout + first.stderr
        assert stat.S_IMODE(config.env_file.stat().st_mode) == 0o600
        # As root, with FLEET_USER=root; the privilege drop: tests/whole_fleet/test_security_privileges.py.
        if os.geteuid() != 0:
            assert stat.S_IMODE(config.var_dir.stat().st_mode) == 0o700
        uri = read_env_file(config.env_file)["MONGODB_URI"]
        assert_database_needs_the_fleets_user(config, uri)
        # The other scripts, in the same shell (FLEET_ENV=production still exported, no key): the env file's key.
        status = script("status", env)
        assert status.returncode == 0 and "1 of 1 ready" in status.stdout, status.stdout + status.stderr
        assert script("stop", env).returncode == 0

        # As after a reboot: no FLEET_ENV, no FLEET_DB_MODE, no key in the environment.
        second = script("run", bare)
        assert second.returncode == 0, second.stderr
        assert "db_mode=threads" in second.stdout and "generated" not in second.stdout
        kept = read_env_file(config.env_file)
        assert (kept["FLEET_ENV"], kept["FLEET_SECRET_KEY"], kept["FLEET_DB_MODE"]) == ("production", key, "threads")
        assert kept["MONGODB_URI"] == uri  # the database user's password too: the fleet became ready with it
        assert_database_needs_the_fleets_user(config, uri)
        assert status_from_afar(config) == 403  # the production profile is in force, in nginx too
        assert script("stop", bare).returncode == 0

        # A setting given explicitly is applied, and said.
        third = script("run", {**bare, "FLEET_DB_MODE": "async"})
        assert third.returncode == 0, third.stderr
        assert f"{config.env_file}: FLEET_DB_MODE: threads -> async" in third.stdout
        assert "db_mode=async" in third.stdout
        assert read_env_file(config.env_file)["FLEET_SECRET_KEY"] == key
    finally:
        script("stop", bare)
        shutil.rmtree(config.var_dir, ignore_errors=True)


def assert_database_needs_the_fleets_user(config: FleetConfig, uri: str) -> None:
    """In production the embedded database answers only the fleet's own user (fleet/dbauth.py)."""
    anonymous = MongoClient(f"mongodb://127.0.0.1:{config.db_port}/?retryWrites=false", serverSelectionTimeoutMS=5000)
    with anonymous, pytest.raises(OperationFailure, match="requires authentication"):
        anonymous.fleet.world.find_one()
    guessed = uri.replace(dbauth.password_of(uri), "guessed-password")
    with MongoClient(guessed, serverSelectionTimeoutMS=5000) as wrong, pytest.raises(OperationFailure):
        wrong.fleet.world.find_one()
    with MongoClient(uri, serverSelectionTimeoutMS=5000) as fleet_user:
        assert fleet_user.fleet.world.count_documents({}) == 10_000


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


def test_a_secret_in_the_environment_reaches_no_command_line_and_only_the_env_file():
    config = fleet_config("async", 1, prefix="security-secrets-")
    key, token = f"key-{secrets.token_hex(20)}", f"token-{secrets.token_hex(20)}"
    env = {**script_env(config), "FLEET_ENV": "production", "FLEET_SECRET_KEY": key, "FLEET_STATUS_TOKEN": token}
    try:
        started = script("run", env)
        assert started.returncode == 0, started.stderr
        supervisor = Supervisor(config.socket)
        programs = {p["name"]: p["pid"] for p in supervisor.processes() if p["pid"]}
        nginx = [programs["nginx"], *children(programs["nginx"])]
        assert len(nginx) >= 2  # the master and its worker(s)
        every = [*nginx, programs["db"], programs[f"app-{config.app_port_base}"], supervisor.supervisord_pid()]

        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmdline = (entry / "cmdline").read_bytes()
                except OSError:
                    continue  # exited meanwhile
                assert key.encode() not in cmdline and token.encode() not in cmdline, entry.name
        for pid in every:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert key.encode() not in environ and token.encode() not in environ, pid
            assert b"FLEET_SECRET_KEY=" not in environ and b"MONGODB_URI=" not in environ, pid
        # Where they are: the env file (owner-only), and the token also in nginx's owner-only include.
        assert f"FLEET_SECRET_KEY={key}" in config.env_file.read_text().splitlines()
        token_conf = config.var_dir / "status-token.conf"
        assert token in token_conf.read_text() and stat.S_IMODE(token_conf.stat().st_mode) == 0o600
        assert token not in (config.var_dir / "nginx.conf").read_text()
        # And nothing that logs printed them.
        logs = "".join(p.read_text(errors="replace") for p in (config.var_dir / "log").glob("*.log"))
        assert key not in logs + started.stdout + started.stderr and token not in logs + started.stdout
    finally:
        script("stop", env)
        shutil.rmtree(config.var_dir, ignore_errors=True)
