"""The fleet's own account (README "Security"): what `scripts/run` does before supervisord starts the programs as it.

Run as root, `scripts/run` gives every program (app processes, the embedded database, nginx, log rotation,
Prometheus) an unprivileged system account, FLEET_USER (default `tornado-fleet`, created when missing), through
supervisord's `user=`. Run as an ordinary user, everything runs as that user, and FLEET_VAR_DIR is 0700. What the
programs create is owner-only (supervisord's `umask = 077`), the env file 0600.

An account other than root's own may not be able to read the checkout: a clone under /root (0700), or a venv whose
interpreter lives there (pyenv). `check_readable` runs the programs' imports as that account first. When they fail,
a production fleet (or one whose FLEET_USER was given) is refused with what to do, and nothing is started; a
development fleet with no FLEET_USER given runs as root with a warning that says the same, so that the README's first
command works from any fresh clone.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

from fleet.config import ROOT, SOCKET_SUBDIR, STATUS_TOKEN_CONF, FleetConfig

# The lowest port an unprivileged nginx may bind (Linux's net.ipv4.ip_unprivileged_port_start, by default).
PRIVILEGED_PORTS = 1024


class AccountError(RuntimeError):
    """The fleet's account cannot run the fleet; the message says what to do."""


def drops_privileges(config: FleetConfig) -> bool:
    return os.geteuid() == 0 and config.run_user != "root"


def prepare(config: FleetConfig, log=print) -> FleetConfig:
    """Create the account if needed (root only) and check it can run this checkout: the config to start with (with
    FLEET_USER=root for a development fleet its account cannot run, see the module); AccountError if refused."""
    if config.user and os.geteuid() != 0 and config.run_user != pwd.getpwuid(os.geteuid()).pw_name:
        raise AccountError(
            f"FLEET_USER={config.user}: only root can run the fleet as another account; unset FLEET_USER to run it "
            f"as yourself"
        )
    if not drops_privileges(config):
        return config
    if not account_exists(config.run_user):
        create_account(config.run_user)
        log(f"created system user {config.run_user} for the fleet's programs (FLEET_USER to choose another)")
    if config.port < PRIVILEGED_PORTS:
        raise AccountError(
            f"FLEET_PORT={config.port}: nginx runs as {config.run_user} and cannot listen below {PRIVILEGED_PORTS}; "
            f"use a port of 1024 or more behind your load balancer, or FLEET_USER=root (no privilege drop)"
        )
    try:
        check_readable(config)
    except AccountError as exc:
        chosen = bool(os.environ.get("FLEET_USER", "").strip())
        if chosen or config.app_env.get("FLEET_ENV", "").strip() == "production":
            raise
        log(
            f"warning: {exc}".replace(
                "Nothing was started. Either",
                "Running every program as root instead, as a "
                "development fleet may (production refuses). To drop privileges, either",
            )
        )
        return dataclasses.replace(config, user="root")
    return config


def account_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def create_account(name: str) -> None:
    useradd = shutil.which("useradd") or shutil.which("useradd", path="/usr/sbin:/sbin") or "useradd"
    nologin = "/usr/sbin/nologin" if Path("/usr/sbin/nologin").exists() else "/bin/false"
    command = [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"]
    result = subprocess.run([*command, "--shell", nologin, name], capture_output=True, text=True)
    if result.returncode != 0:
        raise AccountError(f"could not create the system user {name}: {result.stderr.strip()}")


def check_readable(config: FleetConfig) -> None:
    """Run, as the fleet's account, what each program needs from the checkout and the venv: the interpreter, the
    app's and the tools' imports, the embedded database's entry point."""
    venv_bin = Path(sys.executable).parent
    code = "import app.server, fleet.logrotate, secantus, supervisor"
    try:
        result = subprocess.run(
            [str(venv_bin / "python"), "-c", code],
            cwd=ROOT,
            user=config.run_user,
            group=pwd.getpwnam(config.run_user).pw_gid,
            extra_groups=[],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            capture_output=True,
            text=True,
        )
    except OSError as exc:  # the interpreter (or the checkout, as the working folder) could not even be reached
        why = f"{exc.strerror}: {exc.filename}"
    else:
        if result.returncode == 0:
            return
        why = (result.stderr.strip().splitlines() or ["no output"])[-1]
    blocked = private_parents([ROOT, venv_bin / "python", Path(os.path.realpath(venv_bin / "python"))])
    where = f" ({', '.join(f'{p} is {p.stat().st_mode & 0o777:04o}' for p in blocked)})" if blocked else ""
    raise AccountError(
        f"the fleet's account {config.run_user} cannot run this checkout{where}: "
        f"{why}\n"
        f"Nothing was started. Either\n"
        f"  - clone the project (and create its .venv with a system-wide Python, e.g. /usr/bin/python3) in a folder "
        f"every account can read, such as /opt/tornado-fleet, and run scripts/run there; or\n"
        f"  - let {config.run_user} through: chmod o+x on each private folder above (and o+r on the files it must "
        f"read); or\n"
        f"  - run every program as root, without the privilege drop: FLEET_USER=root scripts/run"
    )


def private_parents(paths: list[Path]) -> list[Path]:
    """The folders on the way to `paths` that other accounts cannot enter."""
    blocked: list[Path] = []
    for path in paths:
        for parent in [*reversed(Path(path).absolute().parents)]:
            if parent.is_dir() and not parent.stat().st_mode & 0o001 and parent not in blocked:
                blocked.append(parent)
    return blocked


def own_var_dir(config: FleetConfig) -> None:
    """Give the folders the programs write (the database, nginx's, Prometheus's) and the env file to the fleet's
    account. FLEET_VAR_DIR itself and its log/ stay root's: supervisord, as root, writes its socket, pid and logs
    there, and an account that could rename them could point root's writes elsewhere. The fleet's group may only
    pass through FLEET_VAR_DIR (0710)."""
    if not drops_privileges(config):
        return
    account = pwd.getpwnam(config.run_user)
    os.chown(config.var_dir, 0, account.pw_gid)
    config.var_dir.chmod(0o710)
    for private in (config.env_file, config.var_dir / STATUS_TOKEN_CONF):  # read by the app and by nginx
        os.chown(private, account.pw_uid, account.pw_gid)
    for sub in ("db", "nginx", "prometheus", SOCKET_SUBDIR):
        for folder, _, files in os.walk(config.var_dir / sub):
            os.chown(folder, account.pw_uid, account.pw_gid)
            for name in files:
                os.chown(os.path.join(folder, name), account.pw_uid, account.pw_gid, follow_symlinks=False)
