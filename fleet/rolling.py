"""Rolling restart of the app processes, one at a time, with no failed request: `python -m fleet.rolling`
(behind scripts/rolling-restart; scripts/switch-db-mode uses the same steps after rewriting the env file).

For each process, in turn:
1. supervisord stops it (SIGTERM): the process drains (app/lifecycle.py) and exits; meanwhile nginx's connects
   to it are refused, and nginx passes those requests to the other processes (`proxy_next_upstream error`).
2. supervisord starts it again; it reads the env file (var/fleet.env) at start.
3. It must answer /readyz on its own port with a new pid and the expected database mode, and supervisord must
   see it RUNNING.
4. nginx must route to it again: the step ends only once a /readyz sent through nginx is answered by the new
   pid. With the shipped `max_fails=0` that is at once. It guards against `max_fails > 0` (the upstream's first
   setting): nginx then skips a process for `fail_timeout` after a refused connect, so right after step 3 it
   could still consider this one down, and stopping the next process would leave nginx with no live process at
   all (N = 2: every request answered 502 "no live upstreams", measured).
Only then is the next process touched. A process that exits or is not ready by the deadline is stopped (so nginx
never sends it a request it cannot serve), the others keep serving, and the command says which process failed,
the end of its log, and the command to run next. Processes that are not serving are restarted first: restarting
them costs no capacity.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import os
import re
import sys
import time
import xmlrpc.client
from collections.abc import Callable, Iterator
from pathlib import Path

from app import process_status
from app.process_status import ProcessStatus
from app.settings import Settings, SettingsError, read_env_file
from fleet import probe
from fleet import status as status_cli
from fleet.config import FleetConfig, running_app_listen
from fleet.exit_status import EXIT_FAILED, EXIT_INVALID, fail, invalid_setting
from fleet.supervisor import Supervisor

READY_TIMEOUT = 60.0
NGINX_LISTEN = re.compile(r"^\s*listen\s+(?:\S*:)?(\d+)\b[^;]*;\s*#\s*fleet:listen", re.M)
# supervisord states in which a process will not become ready by itself (it exited, or gave up restarting it).
GAVE_UP = ("BACKOFF", "EXITED", "FATAL", "STOPPED", "UNKNOWN")


class RollingError(RuntimeError):
    """Refused before anything changed (fleet not running, invalid env file, another restart in progress)."""

    exit_status = EXIT_FAILED


class InvalidEnvFile(RollingError):
    """The env file holds a setting a process would refuse: nothing was restarted."""

    exit_status = EXIT_INVALID


class RestartFailed(RuntimeError):
    """A process did not come back; the message says which, why, and what to run next."""


@dataclasses.dataclass(frozen=True)
class RunningFleet:
    """What the rolling restart needs of a running fleet: its supervisord, env file and nginx port."""

    config: FleetConfig
    supervisor: Supervisor
    nginx_port: int

    @property
    def env_file(self) -> Path:
        return self.config.env_file


def connect(config: FleetConfig) -> RunningFleet:
    """The running fleet of `config.var_dir`, or RollingError saying why there is none."""
    supervisor = Supervisor(config.socket)
    if not supervisor.running():
        raise RollingError(
            f"the fleet is not running (no supervisord answers on {config.socket}); start it with "
            f"{command('run', config)}"
        )
    processes = supervisor.processes()
    names = {p["name"]: p["statename"] for p in processes}
    if not any(p["group"] == "app" for p in processes):
        raise RollingError(f"supervisord on {config.socket} runs no app processes")
    if names.get("nginx") != "RUNNING":
        raise RollingError(f"nginx is {names.get('nginx', 'missing')}, not RUNNING; see {config.var_dir}/log/")
    # Its processes listen where its env file says, whatever the caller's environment says.
    config = dataclasses.replace(config, **running_app_listen(config.env_file))
    return RunningFleet(config, supervisor, nginx_port(config.var_dir / "nginx.conf"))


def nginx_port(rendered_conf: Path) -> int:
    """The public port of the running nginx: the `fleet:listen` line of the config it was started with."""
    try:
        match = NGINX_LISTEN.search(rendered_conf.read_text())
    except OSError as exc:
        raise RollingError(f"cannot read nginx's config {rendered_conf}: {exc.strerror}") from None
    if not match:
        raise RollingError(f"no 'listen PORT;  # fleet:listen' line in {rendered_conf}")
    return int(match[1])


def env_settings(env_file: Path) -> Settings:
    """The settings a process started now would load (RollingError if it would refuse them)."""
    try:
        return Settings.from_mapping(read_env_file(env_file))
    except SettingsError as exc:
        raise InvalidEnvFile(f"invalid setting in {env_file}: {exc}; nothing was restarted") from None


def status(running: RunningFleet) -> list[ProcessStatus]:
    """Every app process as supervisord and its own /readyz see it (fleet/status.py), in port order."""
    try:
        return status_cli.processes(running.config, running.supervisor)
    except status_cli.StatusError as exc:
        raise RollingError(str(exc)) from None


def namespec(row: ProcessStatus) -> str:
    """supervisord's name of the process with its group, for its RPC calls."""
    return f"app:{row.name}"


def format_status(rows: list[ProcessStatus]) -> str:
    """The table scripts/status prints."""
    return status_cli.render(process_status.report(rows))


@contextlib.contextmanager
def exclusive(config: FleetConfig) -> Iterator[None]:
    """One switch or rolling restart at a time per fleet: two at once could stop two processes together."""
    path = config.var_dir / "rolling.lock"
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "?"
            raise RollingError(f"another switch or rolling restart of this fleet is running (pid {holder})") from None
        lock.truncate(0)
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            yield
        finally:
            lock.truncate(0)


def restart_order(rows: list[ProcessStatus]) -> list[ProcessStatus]:
    # Not serving first: restarting those costs no capacity. Then port order.
    return sorted(rows, key=lambda r: (r.ready, r.port))


@dataclasses.dataclass(frozen=True)
class Restarted:
    pid: int
    stopped: float  # seconds to stop (the drain)
    ready: float  # seconds from start to ready
    routed: float  # seconds from ready to nginx routing to it


def restart_process(running: RunningFleet, row: ProcessStatus, mode: str, timeout: float) -> Restarted:
    """Stop, start and wait for one process (steps 1-4 above); raises RestartFailed if it does not come back."""
    supervisor = running.supervisor
    began = time.monotonic()
    state = supervisor.process(namespec(row))["statename"]
    if state in ("STARTING", "RUNNING", "BACKOFF"):
        # Blocks until the process has exited: its drain, bounded by supervisord's stopwaitsecs.
        supervisor.rpc.stopProcess(namespec(row), True)
    try:
        # Not waiting here: readiness below is the real test, and it fails fast if the process exits.
        supervisor.rpc.startProcess(namespec(row), False)
    except xmlrpc.client.Fault as fault:
        raise failure(running, row, f"supervisord could not start it: {fault.faultString}") from None
    started = time.monotonic()
    deadline = started + timeout
    new_pid = 0
    last = "no answer"
    while True:
        info = supervisor.process(namespec(row))
        new_pid = info["pid"] or new_pid
        if info["statename"] in GAVE_UP:
            why = info["spawnerr"] or "see its log"
            raise failure(running, row, f"it exited at start ({info['statename']}: {why})")
        code, body = probe.get_json(running.config.app_address(row.port), "/readyz", timeout=2.0)
        body = body or {}
        if code:
            last = f"/readyz answered {code} {body.get('status', '')} {body.get('error', '')}".rstrip()
        if code == 200 and body.get("pid") == new_pid and body.get("db_mode") != mode:
            raise failure(running, row, f"it came back in mode {body.get('db_mode')!r}, not {mode!r}")
        if info["statename"] == "RUNNING" and code == 200 and body.get("pid") == new_pid:
            break
        if time.monotonic() >= deadline:
            raise failure(running, row, f"not ready {timeout:g}s after its start ({last})")
        time.sleep(0.05)

    def routed_by_nginx() -> bool:
        code, body = probe.get_json(running.nginx_port, "/readyz", timeout=2.0)
        return code == 200 and (body or {}).get("pid") == new_pid

    ready = time.monotonic()
    if not probe.wait_until(routed_by_nginx, max(deadline - ready, 10.0), interval=0.02):
        raise failure(running, row, f"ready, but nginx (port {running.nginx_port}) did not route a request to it")
    return Restarted(new_pid, started - began, ready - started, time.monotonic() - ready)


def failure(running: RunningFleet, row: ProcessStatus, why: str) -> RestartFailed:
    """Stop the failed process (nginx then skips it instead of getting errors from it) and say what happened."""
    with contextlib.suppress(xmlrpc.client.Fault):
        running.supervisor.rpc.stopProcess(namespec(row), True)
    info = running.supervisor.process(namespec(row))
    log_path = info.get("stdout_logfile") or f"{running.config.var_dir}/log/"
    tail = log_tail(Path(log_path)) if log_path else ""
    serving = [r.name for r in status(running) if r.ready]
    message = (
        f"{row.name} (port {row.port}) failed: {why}. It is stopped; "
        f"{len(serving)} other process(es) keep serving{': ' + ', '.join(serving) if serving else ''}."
    )
    if tail:
        message += f"\n  its log ({log_path}) ends with: {tail}"
    return RestartFailed(message)


def log_tail(path: Path, size: int = 4000) -> str:
    """The last non-empty line of a process log, shortened."""
    lines = tail_lines(path, size)
    return lines[-1][:400] if lines else ""


def tail_lines(path: Path, size: int) -> list[str]:
    """The non-empty lines of the last `size` bytes of a log (empty if it cannot be read)."""
    try:
        with open(path, "rb") as log:
            log.seek(max(0, path.stat().st_size - size))
            return [line.strip() for line in log.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return []


def rolling_restart(
    running: RunningFleet,
    rows: list[ProcessStatus],
    mode: str,
    *,
    timeout: float = READY_TIMEOUT,
    log: Callable[[str], None] = print,
) -> float:
    """Restart `rows` one at a time (steps 1-4 above); returns the seconds it took."""
    started = time.monotonic()
    for number, row in enumerate(restart_order(rows), 1):
        done = restart_process(running, row, mode, timeout)
        old = f"pid {row.pid} ({row.mode or '?'})" if row.pid else f"{(row.supervisor_state or row.state).lower()}"
        log(
            f"[{number}/{len(rows)}] {row.name}: {old} -> pid {done.pid} ({mode}) in "
            f"{done.stopped + done.ready + done.routed:.1f}s (stopped {done.stopped:.1f}s, ready {done.ready:.1f}s "
            f"after start, routed by nginx {done.routed:.1f}s later)"
        )
    return time.monotonic() - started


def command(script: str, config: FleetConfig, *args: str) -> str:
    """The command line a user runs for this fleet (naming its folder when it is not the default one)."""
    prefix = "" if config.var_dir == FleetConfig().var_dir else f"FLEET_VAR_DIR={config.var_dir} "
    return " ".join([f"{prefix}scripts/{script}", *args])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/rolling-restart",
        description="Restart every app process, one at a time, with no failed request (e.g. after a code deploy). "
        "Each process drains, is started again with the settings in the env file, and must be ready and routed by "
        "nginx before the next one is touched. The fleet is the one in FLEET_VAR_DIR (default: var/).",
        epilog="Exit status: 0 done, 1 the fleet is not running or a process did not come back (the rest keep "
        "serving), 2 invalid env file (nothing restarted).",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=READY_TIMEOUT,
        help=f"seconds a process may take to be ready after its start (default {READY_TIMEOUT:g})",
    )
    args = parser.parse_args(argv)
    try:
        config = FleetConfig.from_env()
        running = connect(config)
        mode = env_settings(running.env_file).db_mode
        with exclusive(config):
            rows = status(running)
            print(f"restarting {len(rows)} app processes one at a time (mode {mode}, from {running.env_file})")
            seconds = rolling_restart(running, rows, mode, timeout=args.timeout)
    except SettingsError as exc:
        return invalid_setting(exc)
    except RollingError as exc:
        return fail(exc, exc.exit_status)
    except RestartFailed as exc:
        code = fail(exc)
        print(f"Fix the cause, then run again: {command('rolling-restart', config)}", file=sys.stderr)
        return code
    print(f"restarted {len(rows)} processes in {seconds:.1f}s; all ready in mode {mode}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
