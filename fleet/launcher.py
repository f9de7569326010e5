"""Start and stop the whole fleet: `python -m fleet.launcher up|down` (behind scripts/run and scripts/stop).

`up` on a stopped fleet first checks that every port the fleet will use is free (nginx's public port, each app
port, each metrics port, the embedded database's port; fleet/ports.py names the holder of a taken one, and then
nothing is started). It writes var/fleet.env and var/nginx.conf from the environment (see the README's settings
table), starts supervisord with deploy/supervisord.conf, seeds the embedded database (rewrites the `world` or
`fortune` collection whenever its document count is not the expected 10,000 or 12: fleet/seed.py; notes are never
touched), and returns once every process is ready: the pid answering on its port is the one its own supervisord
runs (fleet/readiness.py). A process supervisord gave up on is reported with its log line.

`up` on a running fleet compares the settings given in the environment (only those set: an unset variable keeps
what runs) with what runs. Nothing changed: it reports the fleet. A new FLEET_PROCS: it scales the fleet without
restarting the running processes (fleet/scale.py). Any other change is refused at once, naming each change and
the command that applies it (an app setting: the rolling restart, with no failed request; a port or MONGODB_URI:
stop and start, which interrupts service).

`down` shuts supervisord down (it stops every process, app processes draining first) and waits until every
process it ran has exited.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping, Sequence

from pymongo.errors import PyMongoError

from app.settings import Settings, SettingsError, env_name, parse_bool, read_env_file
from fleet import dbauth, envfile, ports, privileges, probe, readiness, rolling, scale
from fleet.config import DERIVED_SETTINGS, ROOT, SUPERVISORD_CONF, FleetConfig, running_app_listen
from fleet.exit_status import EXIT_FAILED, EXIT_INVALID, EXIT_PORT_TAKEN, fail, invalid_setting
from fleet.seed import seed
from fleet.supervisor import Supervisor, app_port, wait_for_exit

READY_TIMEOUT = 60.0

EXIT_READY = 0
EXIT_REFUSED = 4

RUN_EXIT_HELP = f"""exit status:
  {EXIT_READY}  the fleet is ready: every process answers on its port with the pid its supervisord runs
  {EXIT_FAILED}  a process failed or was not ready in time (the message names it and quotes its log)
  {EXIT_INVALID}  invalid setting or option, or FLEET_USER cannot run this checkout (nothing started or changed)
  {EXIT_PORT_TAKEN}  a port the fleet needs is held by another program, named with its pid (nothing started)
  {EXIT_REFUSED}  the fleet runs with other settings this command cannot change while it runs; the message says
     what would change and the command that applies it (nothing changed)"""

# Settings that name the deployment's shape; the rest of the app settings are listed from app/settings.py.
SHAPE_SETTINGS = (
    ("FLEET_PORT", "8080", "nginx's public port"),
    ("FLEET_PROCS", "CPU count, at least 2", "number of app processes (a running fleet is scaled to it)"),
    ("FLEET_APP_PORT_BASE", "8001", "first app port: processes use BASE ... BASE+N-1"),
    ("FLEET_DB_PORT", "27018", "port of the embedded database"),
    ("FLEET_VAR_DIR", "var/", "runtime folder: supervisord socket, logs, env file, database files"),
    ("FLEET_APP_LISTEN", "unix", "unix: each process on a socket in FLEET_VAR_DIR/run; tcp: on 127.0.0.1:PORT"),
    ("FLEET_USER", "tornado-fleet as root, else you", "the account every program runs as (created when missing)"),
    ("MONGODB_URI", "unset: the embedded database", "the database; when set, the embedded one is not started"),
    ("FLEET_PROMETHEUS", "false", "true: supervisord also runs Debian's prometheus with the fleet's alerts"),
    ("FLEET_PROMETHEUS_PORT", "9090", "where that prometheus listens, on 127.0.0.1"),
    ("FLEET_PROMETHEUS_INTERVAL", "15s", "its scrape and alert-evaluation interval"),
    ("FLEET_NGINX_LOG_MAXBYTES", "10485760", "nginx's access log is rotated past this size; 0: never"),
    ("FLEET_NGINX_LOG_BACKUPS", "5", "rotated access logs kept"),
)
# Where a running fleet's value of a start-only setting shows: (supervisord program, pattern in its command).
RUNNING_COMMANDS = {
    "FLEET_PROMETHEUS_PORT": ("prometheus", r"--web\.listen-address=\S+:(\d+)"),
    "FLEET_NGINX_LOG_MAXBYTES": ("logrotate", r"--max-bytes (\d+)"),
    "FLEET_NGINX_LOG_BACKUPS": ("logrotate", r"--backups (\d+)"),
}
# Computed by scripts/run, never given: not compared with a running fleet.


class FleetError(RuntimeError):
    """The fleet could not be brought to the asked state; the message says why and where to look."""

    exit_status = EXIT_FAILED


class PortsTaken(FleetError):
    exit_status = EXIT_PORT_TAKEN


class ChangeRefused(FleetError):
    exit_status = EXIT_REFUSED


def needed_ports(config: FleetConfig) -> dict[int, str]:
    """Every port the fleet listens on, and what for."""
    needed = {config.port: "public port of nginx, FLEET_PORT"}
    if config.embedded_db:
        needed[config.db_port] = "embedded database, FLEET_DB_PORT"
    offset = config.app_settings().metrics_port_offset
    for port in config.app_ports:
        if config.socket_dir is None:  # else the process listens on a socket, nginx on its metrics port
            needed[port] = f"app process app-{port}"
        if offset:
            needed[port + offset] = f"metrics of app-{port}, FLEET_METRICS_PORT_OFFSET"
    if getattr(config, "prometheus", False):
        needed[config.prometheus_port] = "prometheus, FLEET_PROMETHEUS_PORT"
    return needed


def check_ports(config: FleetConfig) -> None:
    taken = ports.taken(needed_ports(config))
    if taken:
        lines = "\n".join(f"  {t}" for t in taken)
        raise PortsTaken(
            f"ports this fleet needs are in use; nothing was started:\n{lines}\n"
            f"Stop that program, or choose other ports (FLEET_PORT, FLEET_APP_PORT_BASE, FLEET_DB_PORT, "
            f"FLEET_METRICS_PORT_OFFSET)."
        )


def up(
    config: FleetConfig,
    *,
    log=print,
    ready_timeout: float = READY_TIMEOUT,
    requested: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
) -> Supervisor:
    """Start the fleet, or (running) apply `requested` (the settings given explicitly) as the module says."""
    supervisor = Supervisor(config.socket)
    if supervisor.running():
        log(f"fleet already running (supervisord pid {supervisor.supervisord_pid()}); not restarting it")
        # Leave a running fleet's files alone: its env file may hold a switched mode.
        reconfigure(config, supervisor, requested or {}, log)
        public_port = rolling.nginx_port(config.var_dir / "nginx.conf")
        # Its processes are where its env file says they listen (a fleet started before unix sockets: on TCP).
        config = dataclasses.replace(config, **running_app_listen(config.env_file))
    else:
        check_ports(config)
        config = privileges.prepare(config, log)  # the programs' own account (README "Security")
        if config.db_auth and not config.db_password:
            config = dataclasses.replace(config, db_password=dbauth.new_password())
        config.write_runtime_files()
        privileges.own_var_dir(config)
        if config.db_auth:
            try:
                dbauth.provision(config, log)
            except dbauth.ProvisionError as exc:
                raise FleetError(f"{exc}; see {config.var_dir}/db") from None
        for note in notes:  # what fleet/envfile.py changed in the env file
            log(note)
        # An allow-list of the caller's variables, not all of them: no secret reaches a program's environment.
        env = {**envfile.child_environment(os.environ), **config.supervisor_env()}
        supervisord = [sys.executable, "-m", "supervisor.supervisord", "-c", str(SUPERVISORD_CONF)]
        # From the checkout: supervisord imports its fleet plugin (fleet/supervisor_rpc.py) from there.
        result = subprocess.run(supervisord, env=env, capture_output=True, text=True, cwd=ROOT)
        if result.returncode != 0:
            raise FleetError(f"supervisord did not start: {result.stderr.strip() or result.stdout.strip()}")
        if not probe.wait_until(supervisor.running, 15):
            raise FleetError(f"supervisord did not answer on {config.socket}; see {config.var_dir}/log/supervisord.log")
        log(f"supervisord started (pid {supervisor.supervisord_pid()}), logs in {config.var_dir}/log/")
        public_port = config.port
    settings = Settings.from_mapping(read_env_file(config.env_file))
    db_port = embedded_db_port(supervisor, settings.mongodb_uri)
    if db_port:
        check_own_database(config, supervisor, db_port)
        seed_embedded(config, settings, log)
    wait_ready(config, supervisor, ready_timeout, public_port)
    return supervisor


def embedded_db_port(supervisor: Supervisor, uri: str) -> int | None:
    """The embedded database's port when this fleet runs one (its `db` program is not left STOPPED), else None."""
    if supervisor.process("db")["statename"] == "STOPPED":
        return None
    match = dbauth.EMBEDDED.match(uri)
    return int(match["port"]) if match else None


def check_own_database(config: FleetConfig, supervisor: Supervisor, db_port: int) -> None:
    """The embedded database's port must be held by this fleet's `db` process before anything is written to it."""

    def answered() -> str:
        info = supervisor.process("db")
        if info["statename"] == "FATAL":  # it kept dying at start (autorestart = true: nothing else is final)
            raise FleetError(f"the embedded database failed: {readiness.failure_reason(info)}")
        return "yes" if info["pid"] and ports.held_by(db_port, [info["pid"]]) else ""

    if not probe.wait_until(answered, 30, interval=0.1):
        holders = ", ".join(map(str, ports.holders(db_port))) or "nobody"
        raise FleetError(
            f"the embedded database's port {db_port} is held by {holders}, not by this fleet's db process; "
            f"see {config.var_dir}/log/db.log"
        )


def seed_embedded(config: FleetConfig, settings, log) -> None:
    # The embedded server is ready ~0.4 s after start; allow for a slow first start of WiredTiger.
    deadline = time.monotonic() + 30
    while True:
        try:
            written = seed(settings.mongodb_uri, settings.db_name, timeout_ms=2000)
            break
        except PyMongoError as exc:
            if time.monotonic() > deadline:
                raise FleetError(f"embedded database not reachable: {exc}; see {config.var_dir}/log/db.log") from None
            # A refused connection fails at once: don't spin on it.
            time.sleep(0.2)
    if any(written.values()):
        log(f"seeded {written['world']} world and {written['fortune']} fortune documents")


def wait_ready(config: FleetConfig, supervisor: Supervisor, timeout: float, public_port: int | None = None) -> None:
    """Wait until every app process and nginx of this fleet are ready (fleet/readiness.py); FleetError at once for
    a process supervisord gave up on, or at the deadline."""
    public_port = public_port or config.port
    deadline = time.monotonic() + timeout
    while True:
        verdicts = [
            readiness.app_verdict(info, config.app_address(app_port(info))) for info in supervisor.app_processes()
        ]
        verdicts.append(readiness.nginx_verdict(supervisor, public_port))
        failed = [v for v in verdicts if v.failed]
        if failed:
            lines = "\n".join(f"  {v.name}: {v.why}" for v in failed)
            raise FleetError(
                f"{len(failed)} process(es) failed and will not be retried by supervisord:\n{lines}\n"
                f"Fix the cause, then start them again: {ctl_command(config, 'start', *(app_spec(v) for v in failed))}"
            )
        if all(v.ready for v in verdicts):
            return
        if time.monotonic() >= deadline:
            lines = "\n".join(f"  {v.name}: {v.why}" for v in verdicts if not v.ready)
            raise FleetError(f"fleet not ready after {timeout:.0f}s:\n{lines}\nsee {config.var_dir}/log/")
        time.sleep(0.2)


def app_spec(verdict: readiness.Verdict) -> str:
    return verdict.name if verdict.name in ("nginx", "db") else f"app:{verdict.name}"


def ctl_command(config: FleetConfig, *args: str) -> str:
    """The scripts/ctl command line (supervisorctl on this fleet's own socket) for `args`."""
    return rolling.command("ctl", config, *args)


def explicit_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The settings given in `environ` (set and not empty), by variable name."""
    names = {name for name, _, _ in SHAPE_SETTINGS} | {env_name(f.name) for f in dataclasses.fields(Settings)}
    return {k: v for k, v in environ.items() if k in names - DERIVED_SETTINGS and v.strip()}


def reconfigure(config: FleetConfig, supervisor: Supervisor, requested: Mapping[str, str], log) -> None:
    """Bring the running fleet to the settings in `requested`: scale for FLEET_PROCS, refuse anything else."""
    running = scale.running_config(config, supervisor)
    env = read_env_file(config.env_file)
    refused: list[str] = []
    shape = {
        "FLEET_PORT": running.port,
        "FLEET_APP_PORT_BASE": running.app_port_base,
    }
    db_port = embedded_db_port(supervisor, env.get("MONGODB_URI", ""))
    if db_port:
        shape["FLEET_DB_PORT"] = db_port
    shape["FLEET_APP_LISTEN"] = running.app_listen
    for var, now in shape.items():
        # Each was parsed once already (FleetConfig.from_env): the conversion to the running value's type cannot fail.
        if var in requested and type(now)(requested[var].strip()) != now:
            refused.append(f"{var}: {now} -> {requested[var].strip()}")
    for var, (now, wanted) in start_setting_changes(config, supervisor, requested).items():
        refused.append(f"{var}: {now} -> {wanted}")
    if "MONGODB_URI" in requested and requested["MONGODB_URI"].strip() != env.get("MONGODB_URI"):
        refused.append("MONGODB_URI: differs from the running fleet's")
    restart_hint = (
        f"these need the fleet stopped and started again, which interrupts service: "
        f"{rolling.command('stop', config)}, then {rolling.command('run', config)} with the new settings"
    )
    app_changes = app_setting_changes(env, requested)
    lines = [f"  {line}" for line in refused]
    if app_changes:
        lines += [f"  {var}: {old} -> {new}" for var, (old, new) in app_changes.items()]
    if lines:
        hints = []
        if refused:
            hints.append(f"- {restart_hint}")
        if app_changes:
            hints.append(app_settings_hint(config, app_changes))
        raise ChangeRefused(
            "the fleet runs with other settings than those given; nothing was changed:\n"
            + "\n".join(lines)
            + "\nTo apply them:\n"
            + "\n".join(hints)
            + "\n(Unset a variable to keep what runs: only the settings set in the environment are compared.)"
        )
    if "FLEET_PROCS" in requested and config.procs != running.procs:
        log(f"scaling from {running.procs} to {config.procs} app processes (running ones are not restarted)")
        try:
            scale.scale(config, config.procs, log=log)
        except scale.PortsTaken as exc:
            raise PortsTaken(str(exc)) from None
        except (scale.ScaleError, rolling.RollingError) as exc:
            raise FleetError(str(exc)) from None


def start_setting_changes(
    config: FleetConfig, supervisor: Supervisor, requested: Mapping[str, str]
) -> dict[str, tuple[str, str]]:
    """The settings of Prometheus and nginx's log rotation given in `requested` that differ from the running
    fleet's (read from supervisord's programs and the rendered prometheus.yml; unknown ones are not compared)."""
    running: dict[str, str] = {}
    programs = {info["name"]: info for info in supervisor.rpc.getAllConfigInfo()}
    if "prometheus" in programs:
        running["FLEET_PROMETHEUS"] = str(supervisor.process("prometheus")["statename"] != "STOPPED").lower()
    for var, (program, pattern) in RUNNING_COMMANDS.items():
        match = re.search(pattern, programs.get(program, {}).get("command", ""))
        if match:
            running[var] = match[1]
    with contextlib.suppress(OSError):
        rendered = (config.var_dir / "prometheus" / "prometheus.yml").read_text()
        interval = re.search(r"scrape_interval:\s*(\S+)", rendered)
        if interval:
            running["FLEET_PROMETHEUS_INTERVAL"] = interval[1]
    changes = {}
    for var, now in running.items():
        if var not in requested:
            continue
        wanted = requested[var].strip()
        if var == "FLEET_PROMETHEUS":
            wanted = str(parse_bool(wanted)).lower()
        if wanted != now:
            changes[var] = (now, wanted)
    return changes


def app_setting_changes(env: Mapping[str, str], requested: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """App settings whose requested value differs from the env file's (compared as the settings parse them)."""
    given = {k: v for k, v in requested.items() if k.startswith("FLEET_") and k not in DERIVED_SETTINGS}
    given = {k: v for k, v in given.items() if k not in {name for name, _, _ in SHAPE_SETTINGS}}
    if not given:
        return {}
    current = Settings.from_mapping(env).to_env()
    wanted = Settings.from_mapping({**env, **given}).to_env()
    return {var: (current[var], wanted[var]) for var in given if current.get(var) != wanted.get(var)}


def app_settings_hint(config: FleetConfig, changes: Mapping[str, tuple[str, str]]) -> str:
    others = {var: new for var, (_, new) in changes.items() if var != "FLEET_DB_MODE"}
    hints = []
    if "FLEET_DB_MODE" in changes:
        hints.append(f"- {rolling.command('switch-db-mode', config, changes['FLEET_DB_MODE'][1])}  (no failed request)")
    if others:
        sets = " ".join(f"{var}={new}" for var, new in others.items())
        hints.append(
            f"- set {sets} in {config.env_file}, then {rolling.command('rolling-restart', config)}  (restarts one "
            f"process at a time, no failed request; the env file is what a running fleet's processes read)"
        )
    return "\n".join(hints)


def down(config: FleetConfig, *, log=print, timeout: float = 60.0) -> None:
    supervisor = Supervisor(config.socket)
    if not supervisor.running():
        log("fleet is not running")
        return
    pids = [supervisor.supervisord_pid()] + [p["pid"] for p in supervisor.processes() if p["pid"]]
    supervisor.rpc.shutdown()
    alive = wait_for_exit(pids, timeout)
    if alive:
        raise FleetError(f"processes still running {timeout:.0f}s after shutdown: pids {alive}")
    log(f"fleet stopped ({len(pids)} processes)")


def settings_help() -> str:
    rows = [(name, default, meaning) for name, default, meaning in SHAPE_SETTINGS]
    skip = {"MONGODB_URI", *DERIVED_SETTINGS}
    app_rows = [
        (env_name(f.name), "(secret)" if f.name == "secret_key" else str(f.default), "")
        for f in dataclasses.fields(Settings)
        if env_name(f.name) not in skip and f.default is not dataclasses.MISSING
    ]
    width = max(len(name) for name, _, _ in rows + app_rows)
    lines = ["settings (environment variables; default in brackets):"]
    lines += [f"  {name.ljust(width)}  [{default}] {meaning}" for name, default, meaning in rows]
    lines.append("app settings, written to FLEET_VAR_DIR/fleet.env for every process (README, Settings):")
    lines += [f"  {name.ljust(width)}  [{default}]" for name, default, _ in app_rows]
    return "\n".join(lines)


def run_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="scripts/run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Start the fleet (nginx, FLEET_PROCS app processes and, unless MONGODB_URI is set, the embedded "
            "database) under supervisord, after checking that its ports are free, and return once every process is "
            "ready. On a running fleet: report it, scale it to a new FLEET_PROCS without restarting the running "
            "processes, or refuse any other change and say how to apply it. Installs nginx, curl and the Python "
            "packages first when missing.",
            100,
        ),
        epilog=f"{settings_help()}\n\n{RUN_EXIT_HELP}",
    )


def stop_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="scripts/stop",
        description="Stop the fleet in FLEET_VAR_DIR (default: var/ of this checkout): supervisord stops every "
        "process (app processes drain first) and this returns once all of them have exited.",
        epilog="exit status: 0 stopped, or was not running; 1 processes still running 60 s after the shutdown "
        "(their pids are printed); 2 invalid setting or option.",
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("up", "down"):
        print("usage: python -m fleet.launcher {up,down} [--help]  (scripts/run, scripts/stop)", file=sys.stderr)
        return EXIT_INVALID
    action, rest = argv[0], argv[1:]
    (run_parser() if action == "up" else stop_parser()).parse_args(rest)
    try:
        # A stopped fleet starts from its env file of the last run; only the settings given now change it.
        environ, notes = envfile.carry_over(os.environ) if action == "up" else (os.environ, [])
        config = FleetConfig.from_env(environ)
        if action == "down":
            down(config)
            return 0
        up(config, requested=explicit_settings(os.environ), notes=notes)
    except (SettingsError, privileges.AccountError) as exc:
        return invalid_setting(exc) if isinstance(exc, SettingsError) else fail(exc, EXIT_INVALID)
    except FleetError as exc:
        return fail(exc, exc.exit_status)
    except (rolling.RollingError, scale.ScaleError) as exc:
        return fail(exc)
    supervisor = Supervisor(config.socket)
    running = scale.running_config(config, supervisor)
    # The running fleet's own answer: its env file may hold a mode switched since it started.
    mode = (probe.ready(running.port) or {}).get("db_mode", "?")
    where = "embedded database" if config.embedded_db else "MONGODB_URI"
    print(
        f"fleet ready: {running.url}/  ({running.processes_where()}, db_mode={mode}, {where})\n"
        f"  status:  {rolling.command('status', config)}\n"
        f"  control: {ctl_command(config, 'status')}   (supervisorctl on this fleet's socket)\n"
        f"  scale:   {rolling.command('scale', config, 'N')}\n"
        f"  stop:    {rolling.command('stop', config)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
