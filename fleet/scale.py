"""Change the number of app processes of a running fleet with no failed request: `scripts/scale N`
(``python -m fleet.scale``; `FLEET_PROCS=N scripts/run` on a running fleet does the same).

Up (N above the current count), the new processes take the next ports (BASE+current ... BASE+N-1):
1. their app and metrics ports must be free (else exit 3, nothing changed);
2. the env file's FLEET_APP_PORTS lists all N ports (the new processes read it at start, so their status page
   and stall shedding know every peer; running ones see it at their next restart);
3. supervisord adds them to the running `app` group (fleet/supervisor_rpc.py: the running ones are not touched)
   and starts them; each must be RUNNING and answer /readyz with the pid supervisord runs;
4. only then nginx is reloaded with N upstream servers (fleet/nginx_reload.py: returns once the new config
   answers), so nginx never sends a request to a process that is not ready.
If one of them fails, the new ones are stopped and removed again, the env file is restored, nginx is untouched,
and the error quotes the failed process's log (exit 1).

Down, the processes with the highest ports go:
1. nginx is reloaded without them first, so no new request reaches them;
2. supervisord stops each (SIGTERM: it drains, finishing the requests it has, app/lifecycle.py), then removes it;
3. the env file's FLEET_APP_PORTS lists the N ports left.

The count stays what it is until the fleet stops: `scripts/stop` then `scripts/run` starts FLEET_PROCS processes
(default: CPU count, at least 2). `supervisorctl update` does not undo a scale (supervisord's parsed config is
left as the file says), but `supervisorctl reload` restarts everything with the count the fleet started with.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import time
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path

from app.settings import Settings, SettingsError, read_env_file, write_env_file
from fleet import nginx_reload, ports, probe, prometheus, readiness, rolling
from fleet.config import DERIVED_SETTINGS, FleetConfig, listen_of
from fleet.exit_status import EXIT_PORT_TAKEN, fail, invalid_setting
from fleet.supervisor import Supervisor, app_port

READY_TIMEOUT = 60.0
MAX_PROCS = 64
ALREADY_STARTED = 60  # supervisor.xmlrpc.Faults.ALREADY_STARTED

EXIT_HELP = """Exit status: 0 the fleet runs N processes, all ready and routed by nginx; 1 the fleet is not running,
or a new process did not become ready (the new ones are removed again, the others kept serving); 2 invalid
argument or setting; 3 a port the new processes need is taken (the holder is named; nothing changed)."""


class ScaleError(RuntimeError):
    """The fleet could not be scaled; nothing or only the named part changed (the message says which)."""


class PortsTaken(ScaleError):
    """A port the new processes need is held by another program: nothing was changed."""


def app_ports_of(supervisor: Supervisor) -> list[int]:
    return [app_port(p) for p in supervisor.app_processes()]


def running_config(config: FleetConfig, supervisor: Supervisor) -> FleetConfig:
    """`config`'s fleet as it runs now: its nginx port, app ports and env-file settings (not the environment's)."""
    current = app_ports_of(supervisor)
    if not current:
        raise ScaleError(f"supervisord on {config.socket} runs no app processes")
    env = read_env_file(config.env_file)
    return dataclasses.replace(
        config,
        port=rolling.nginx_port(config.var_dir / "nginx.conf"),
        procs=len(current),
        app_port_base=current[0],
        app_env={k: v for k, v in env.items() if k not in {"MONGODB_URI", *DERIVED_SETTINGS}},
        # How the running processes listen is in their env file, and the account they run as in supervisord's
        # environment, whatever the caller's says: nginx's config is rendered again for them.
        app_listen=listen_of(env),
        user=started_as(supervisor.supervisord_pid()) or config.user,
    )


def started_as(supervisord_pid: int) -> str:
    """The account supervisord runs the fleet's programs as: FLEET_RUN_USER in its environment (which
    deploy/supervisord.conf's `user=` lines expand); "" if it cannot be read."""
    try:
        environ = Path(f"/proc/{supervisord_pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return ""
    found = [item.partition(b"=")[2].decode() for item in environ if item.startswith(b"FLEET_RUN_USER=")]
    return found[0] if found else ""


def write_prometheus_targets(config: FleetConfig) -> None:
    """Prometheus's scrape targets follow the processes, as nginx's upstream does (fleet/prometheus.py)."""
    offset = config.app_settings().metrics_port_offset
    prometheus.write_targets(config.var_dir / "prometheus", app_ports=config.app_ports, metrics_offset=offset)


def set_app_ports(config: FleetConfig, app_ports: list[int]) -> None:
    env = read_env_file(config.env_file)
    write_env_file(config.env_file, {**env, "FLEET_APP_PORTS": ",".join(map(str, app_ports))})


def scale(
    config: FleetConfig, procs: int, *, log: Callable[[str], None] = print, timeout: float = READY_TIMEOUT
) -> tuple[list[int], list[int]]:
    """Scale `config`'s running fleet to `procs` app processes; returns (ports added, ports removed)."""
    if not 1 <= procs <= MAX_PROCS:
        raise SettingsError(f"FLEET_PROCS: must be between 1 and {MAX_PROCS}")
    supervisor = Supervisor(config.socket)
    if not supervisor.running():
        raise ScaleError(f"the fleet is not running (no supervisord answers on {config.socket})")
    now = running_config(config, supervisor)
    with rolling.exclusive(config):
        if procs > now.procs:
            return scale_up(now, supervisor, procs, log, timeout), []
        if procs < now.procs:
            return [], scale_down(now, supervisor, procs, log)
    return [], []


def scale_up(now: FleetConfig, supervisor: Supervisor, procs: int, log, timeout: float) -> list[int]:
    target = dataclasses.replace(now, procs=procs)
    new_ports = target.app_ports[now.procs :]
    offset = Settings.from_mapping(read_env_file(now.env_file)).metrics_port_offset
    needed = {port: f"app process app-{port}" for port in new_ports if now.socket_dir is None}
    if offset:
        needed.update({port + offset: f"metrics of app-{port}" for port in new_ports})
    taken = ports.taken(needed)
    if taken:
        raise PortsTaken("cannot add processes: " + "; ".join(map(str, taken)) + ". Nothing was changed.")
    try:
        target.check_metrics_ports(offset)
    except SettingsError as exc:
        raise ScaleError(f"cannot scale to {procs}: {exc}") from None
    started = time.monotonic()
    set_app_ports(now, target.app_ports)
    names: list[str] = []
    try:
        try:
            names = supervisor.app_group.addAppProcesses(new_ports)
        except xmlrpc.client.Fault as fault:
            raise ScaleError(
                f"supervisord cannot add processes ({fault.faultString}); a fleet started before scaling existed "
                f"needs one full restart: scripts/stop, then scripts/run"
            ) from None
        for name in names:
            # supervisord starts a new autostart process by itself at its next tick; either way it starts once.
            try:
                supervisor.rpc.startProcess(f"app:{name}", False)
            except xmlrpc.client.Fault as fault:
                if fault.faultCode != ALREADY_STARTED:
                    raise ScaleError(f"supervisord could not start {name}: {fault.faultString}") from None
        wait_ready(target, supervisor, names, timeout)
    except BaseException:
        # Leave the fleet as it was: the new processes out, the env file's port list back.
        for name in names:
            with contextlib.suppress(xmlrpc.client.Fault):
                supervisor.rpc.stopProcess(f"app:{name}", True)
        with contextlib.suppress(xmlrpc.client.Fault):
            supervisor.app_group.removeAppProcesses(names)
        set_app_ports(now, now.app_ports)
        raise
    ready = time.monotonic()
    nginx_reload.load(target, supervisor, target.nginx_conf(), f"scale {procs}")
    write_prometheus_targets(target)
    log(
        f"added {', '.join(names)}: ready {ready - started:.1f}s after start, routed by nginx "
        f"{time.monotonic() - ready:.1f}s later; {target.processes_where()}"
    )
    return new_ports


def wait_ready(config: FleetConfig, supervisor: Supervisor, names: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = list(names)
    verdicts: dict[str, readiness.Verdict] = {}
    while waiting:
        for name in list(waiting):
            info = supervisor.process(f"app:{name}")
            verdict = readiness.app_verdict(info, config.app_address(app_port(info)))
            verdicts[name] = verdict
            if verdict.failed:
                raise ScaleError(f"{name} did not start: {verdict.why}. Nothing was changed.")
            if verdict.ready:
                waiting.remove(name)
        if waiting and time.monotonic() >= deadline:
            why = "; ".join(f"{n}: {verdicts[n].why}" for n in waiting)
            raise ScaleError(f"not ready {timeout:g}s after start: {why}. Nothing was changed.")
        if waiting:
            time.sleep(0.1)


def scale_down(now: FleetConfig, supervisor: Supervisor, procs: int, log) -> list[int]:
    target = dataclasses.replace(now, procs=procs)
    removed = now.app_ports[procs:]
    names = [f"app-{port}" for port in removed]
    # nginx first: after the reload no new request reaches the processes about to stop.
    nginx_reload.load(target, supervisor, target.nginx_conf(), f"scale {procs}")
    write_prometheus_targets(target)
    started = time.monotonic()
    for name in names:
        # Blocks until the process has drained and exited (bounded by supervisord's stopwaitsecs).
        with contextlib.suppress(xmlrpc.client.Fault):
            supervisor.rpc.stopProcess(f"app:{name}", True)
    try:
        supervisor.app_group.removeAppProcesses(names)
    except xmlrpc.client.Fault as fault:
        log(f"note: stopped {', '.join(names)} but supervisord kept them listed ({fault.faultString})")
    set_app_ports(now, target.app_ports)
    log(
        f"removed {', '.join(names)} (out of nginx first, then drained and stopped in "
        f"{time.monotonic() - started:.1f}s); {target.processes_where()}"
    )
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/scale",
        description="Change the number of app processes of the running fleet, with no failed request: new "
        "processes are started and must be ready before nginx routes to them; removed ones leave nginx's upstream "
        "first, then drain and stop. Running processes are not restarted. The fleet is the one in FLEET_VAR_DIR "
        "(default: var/ of this checkout); `FLEET_PROCS=N scripts/run` on a running fleet does the same.",
        epilog=EXIT_HELP,
    )
    parser.add_argument("procs", type=int, metavar="N", help=f"the number of app processes wanted (1-{MAX_PROCS})")
    parser.add_argument(
        "--timeout",
        type=float,
        default=READY_TIMEOUT,
        help=f"seconds a new process may take to be ready (default {READY_TIMEOUT:g})",
    )
    args = parser.parse_args(argv)
    try:
        # Only the folder: the rest is read from the running fleet, not from this shell's environment.
        config = FleetConfig.from_env({k: v for k, v in os.environ.items() if k == "FLEET_VAR_DIR"})
        added, removed = scale(config, args.procs, timeout=args.timeout)
    except SettingsError as exc:
        return invalid_setting(exc)
    except PortsTaken as exc:
        return fail(exc, EXIT_PORT_TAKEN)
    except (ScaleError, rolling.RollingError, nginx_reload.ReloadError) as exc:
        return fail(exc)
    if not added and not removed:
        print(f"the fleet already runs {args.procs} app processes; nothing changed")
    ready = probe.ready(running_config(config, Supervisor(config.socket)).port)
    if ready is None:
        print("warning: nginx did not answer /readyz after scaling", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
