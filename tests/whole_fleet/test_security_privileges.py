"""Least privilege (README "Security"): scripts/run as root runs every program as the fleet's own account.

As root only. The fleet's account must be able to read the checkout and run its venv's interpreter; a clone under a
private folder (/root, 0700), or a venv whose interpreter lives there (pyenv), does not allow that. scripts/run then
refuses with what to do (the first test). The second test needs a readable checkout: it builds one when this one is
not (a venv on Debian's /usr/bin/python3 of the same minor version over a copy of the installed packages, and a
copy of app/, fleet/ and deploy/), or skips saying why.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

from fleet.config import DEFAULT_FLEET_USER, ROOT
from fleet.privileges import account_exists, create_account
from fleet.sandbox import fleet_config, script_env
from fleet.supervisor import Supervisor
from tests.whole_fleet.test_security_restart import children

pytestmark = [
    pytest.mark.fleet,
    pytest.mark.skipif(os.geteuid() != 0, reason="scripts/run drops privileges only when run as root"),
]

STRANGER = "tornado-fleet-stranger"  # another local account, for what it must not be able to do


def run_as(user: str, args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, user=user, group=pwd.getpwnam(user).pw_gid, extra_groups=[], capture_output=True, text=True, **kwargs
    )


def readable_by(user: str, python: str, cwd: Path) -> bool:
    code = "import app.server, fleet.logrotate, secantus, supervisor"
    try:
        return run_as(user, [python, "-c", code], cwd=cwd, env={"PATH": "/usr/bin:/bin"}, timeout=60).returncode == 0
    except OSError:  # the interpreter cannot even be run
        return False


@pytest.fixture(scope="module")
def fleet_account() -> str:
    if not account_exists(DEFAULT_FLEET_USER):
        create_account(DEFAULT_FLEET_USER)
    if not account_exists(STRANGER):
        create_account(STRANGER)
    return DEFAULT_FLEET_USER


def test_scripts_run_as_root_refuses_a_checkout_its_account_cannot_read(fleet_account):
    if readable_by(fleet_account, sys.executable, ROOT):
        pytest.skip(f"{fleet_account} can read this checkout and its venv: nothing to refuse")
    config = fleet_config("async", 1, prefix="security-unreadable-")
    env = {**script_env(config), "FLEET_USER": fleet_account}
    try:
        result = subprocess.run([str(ROOT / "scripts" / "run")], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"the fleet's account {fleet_account} cannot run this checkout" in result.stderr
        assert "FLEET_USER=root scripts/run" in result.stderr and "Nothing was started" in result.stderr
        assert not config.socket.exists()
    finally:
        shutil.rmtree(config.var_dir, ignore_errors=True)


def test_a_development_fleet_whose_account_cannot_read_the_checkout_runs_as_root_with_a_warning(fleet_account):
    # The README's first command must work from a fresh clone anywhere (a clone under /root included): a development
    # fleet falls back to root and says how to drop privileges; production (or an explicit FLEET_USER) refuses.
    if readable_by(fleet_account, sys.executable, ROOT):
        pytest.skip(f"{fleet_account} can read this checkout and its venv: nothing to fall back from")
    config = fleet_config("async", 1, prefix="security-fallback-")
    env = {key: value for key, value in script_env(config).items() if key != "FLEET_USER"}
    try:
        result = subprocess.run([str(ROOT / "scripts" / "run")], env=env, capture_output=True, text=True, timeout=120)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert f"warning: the fleet's account {fleet_account} cannot run this checkout" in output
        assert "Running every program as root instead" in output
        apps = [p for p in Supervisor(config.socket).processes() if p["group"] == "app"]
        assert apps and all(pwd.getpwuid(os.stat(f"/proc/{p['pid']}").st_uid).pw_name == "root" for p in apps)
    finally:
        subprocess.run([str(ROOT / "scripts" / "stop")], env=env, capture_output=True, timeout=120)
        shutil.rmtree(config.var_dir, ignore_errors=True)


def readable_checkout(user: str, workdir: Path) -> tuple[str, Path]:
    """(python, checkout) that `user` can run: this venv and checkout when it can, else copies in `workdir`."""
    if readable_by(user, sys.executable, ROOT):
        return sys.executable, ROOT
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system_python = Path("/usr/bin") / version
    if not system_python.exists():
        pytest.skip(f"{user} cannot read this checkout's venv, and there is no {system_python} to build one on")
    venv = workdir / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {version}\n")
    (venv / "bin" / "python").symlink_to(system_python)
    packages = Path(sysconfig.get_paths()["purelib"])
    shutil.copytree(packages, venv / "lib" / version / "site-packages", symlinks=True)
    entry = (Path(sys.executable).parent / "secantusd-py").read_text().split("\n", 1)[1]
    (venv / "bin" / "secantusd-py").write_text(f"#!{venv / 'bin' / 'python'}\n{entry}")
    (venv / "bin" / "secantusd-py").chmod(0o755)
    checkout = workdir / "checkout"
    for part in ("app", "fleet", "deploy"):
        shutil.copytree(ROOT / part, checkout / part, ignore=shutil.ignore_patterns("__pycache__"))
    python = str(venv / "bin" / "python")
    if not readable_by(user, python, checkout):
        pytest.skip(f"{user} cannot run even a copy of the checkout in {workdir}")
    return python, checkout


SQUAT = """
import errno, json, socket, sys
path, port, found = sys.argv[1], int(sys.argv[2]), {}
def attempt(name, action):
    try:
        action()
        found[name] = "done"
    except PermissionError:
        found[name] = "denied"
    except OSError as exc:
        found[name] = "in use" if exc.errno == errno.EADDRINUSE else repr(exc)
attempt("connect", lambda: socket.socket(socket.AF_UNIX).connect(path))
attempt("bind", lambda: socket.socket(socket.AF_UNIX).bind(path))
attempt("tcp", lambda: socket.create_server(("127.0.0.1", port)))
print(json.dumps(found))
"""


def squat(python: str, path: str, metrics_port: int) -> dict[str, str]:
    """What STRANGER gets trying to connect to a process's socket, to bind one in its place, and to bind its
    metrics port."""
    result = run_as(STRANGER, [python, "-c", SQUAT, path, str(metrics_port)], cwd="/", timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[2])  # effective
    raise AssertionError(pid)


def test_scripts_run_as_root_runs_every_program_as_the_fleet_account_with_private_files(fleet_account):
    workdir = Path(tempfile.mkdtemp(prefix="security-privileges-"))
    workdir.chmod(0o755)
    python, checkout = readable_checkout(fleet_account, workdir)
    config = fleet_config("async", 2, prefix="security-privileges-")
    # Production: the database requires the fleet's own user too, created by scripts/run as the fleet's account.
    env = {**script_env(config), "FLEET_USER": fleet_account, "FLEET_ENV": "production", "FLEET_SECRET_KEY": "k" * 43}
    account = pwd.getpwnam(fleet_account)
    try:
        result = subprocess.run(
            [python, "-m", "fleet.launcher", "up"], env=env, cwd=checkout, capture_output=True, text=True, timeout=180
        )
        assert result.returncode == 0, result.stdout + result.stderr
        supervisor = Supervisor(config.socket)
        programs = {p["name"]: p["pid"] for p in supervisor.processes() if p["pid"]}
        assert {"db", "nginx", "logrotate", *(f"app-{port}" for port in config.app_ports)} <= set(programs)
        pids = [*programs.values(), *children(programs["nginx"])]
        assert {pid: uid_of(pid) for pid in pids} == dict.fromkeys(pids, account.pw_uid)
        assert uid_of(supervisor.supervisord_pid()) == 0  # only supervisord keeps root, to switch accounts

        var = config.var_dir.stat()
        assert (stat.S_IMODE(var.st_mode), var.st_uid, var.st_gid) == (0o710, 0, account.pw_gid)
        env_file = config.env_file.stat()
        assert (stat.S_IMODE(env_file.st_mode), env_file.st_uid) == (0o600, account.pw_uid)
        db_files = [p for p in (config.var_dir / "db").rglob("*") if p.is_file()]
        assert db_files
        assert {(stat.S_IMODE(p.stat().st_mode), p.stat().st_uid) for p in db_files} == {(0o600, account.pw_uid)}

        # Another local account can read none of it.
        for path in (config.env_file, db_files[0], config.var_dir / "db"):
            denied = run_as(STRANGER, ["/bin/cat" if path.is_file() else "/bin/ls", str(path)], timeout=30)
            assert denied.returncode != 0 and "Permission denied" in denied.stderr, path
        # Nor use the database: it answers only the fleet's user (its password is in the env file above).
        query = f"from pymongo import MongoClient; MongoClient('127.0.0.1', {config.db_port}).fleet.world.find_one()"
        refused = run_as(STRANGER, [python, "-c", query], cwd="/", env={"PATH": "/usr/bin:/bin"}, timeout=60)
        assert refused.returncode != 0 and "requires authentication" in refused.stderr, refused.stderr
        # Nor reach a process behind nginx's back, nor take its place while it restarts: its socket is in a folder
        # only the fleet's account may enter, and nginx holds the metrics port (a free loopback port is anyone's).
        sockets = config.socket_dir.stat()
        assert (stat.S_IMODE(sockets.st_mode), sockets.st_uid) == (0o700, account.pw_uid)
        victim = config.app_ports[0]
        path, metrics_port = config.app_address(victim), victim + config.app_settings().metrics_port_offset
        assert {(stat.S_IMODE(os.stat(p).st_mode), os.stat(p).st_uid) for p in config.socket_dir.iterdir()} == {
            (0o600, account.pw_uid)
        }
        assert squat(python, path, metrics_port) == {"connect": "denied", "bind": "denied", "tcp": "in use"}
        supervisor.rpc.stopProcess(f"app:app-{victim}", True)  # the window of a restart
        assert squat(python, path, metrics_port) == {"connect": "denied", "bind": "denied", "tcp": "in use"}
        supervisor.rpc.startProcess(f"app:app-{victim}", True)
        # And the fleet's account cannot touch supervisord's files (root writes its logs there).
        log = run_as(fleet_account, ["/usr/bin/touch", str(config.var_dir / "log" / "planted")], timeout=30)
        assert log.returncode != 0
    finally:
        subprocess.run(
            [python, "-m", "fleet.launcher", "down"], env=env, cwd=checkout, capture_output=True, timeout=120
        )
        shutil.rmtree(config.var_dir, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
