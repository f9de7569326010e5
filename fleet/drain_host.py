"""Take this host out of its load balancer's rotation: `python -m fleet.drain_host` (scripts/drain-host).

A load balancer in front of several hosts checks each host's `/hostz` (deploy/nginx.conf): 200 while at least one
app process is ready, 503 while the host is draining. Draining:
1. writes FLEET_VAR_DIR/host-draining.conf (one `return 503` line that nginx's /hostz location includes) and
   reloads nginx, then waits until /hostz answers 503 "draining";
2. waits until the load balancer has moved the traffic away: no new request in nginx's access log for `--quiet`
   seconds (the log is flushed every second; /hostz itself is not logged, and requests from the host itself are
   not counted), at most `--timeout` seconds. When the traffic does not stop, the host is undrained again (the
   load balancer is not checking /hostz, or not this host's) and the command fails: nothing is left half done;
3. optionally (`--then`) restarts every app process one at a time (fleet/rolling.py: a code deploy) or stops the
   whole fleet (scripts/stop).
The host stays out of rotation until `scripts/undrain-host` (fleet/undrain_host.py), also across a restart of the
fleet: the file stays until then.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from app.settings import SettingsError
from fleet import launcher, probe, rolling
from fleet.config import FleetConfig
from fleet.exit_status import EXIT_FAILED, fail, invalid_setting
from fleet.supervisor import Supervisor

DRAIN_CONF = "host-draining.conf"
# What nginx's /hostz location answers while the file is there (the body says why, for whoever looks).
DRAIN_DIRECTIVE = 'return 503 \'{"status": "draining"}\\n\';\n'
HEALTH_PATH = "/hostz"
QUIET_SECONDS = 3.0
DRAIN_TIMEOUT = 60.0
NGINX_TIMEOUT = 15.0
LOCAL_ADDRESSES = ("127.0.0.1", "::1")


class HostError(RuntimeError):
    """The host could not be drained or undrained; the message says why and what state it is left in."""


@dataclasses.dataclass(frozen=True)
class Host:
    """This host's fleet as drain and undrain see it: its folder, supervisord and nginx's public port."""

    config: FleetConfig
    supervisor: Supervisor
    nginx_port: int

    @property
    def drain_file(self) -> Path:
        return self.config.var_dir / DRAIN_CONF

    @property
    def access_log(self) -> Path:
        return self.config.var_dir / "nginx" / "logs" / "access.log"

    @property
    def draining(self) -> bool:
        return self.drain_file.exists()

    def hostz(self) -> tuple[int, dict | None]:
        return probe.get_json(self.nginx_port, HEALTH_PATH, timeout=5.0)


def connect(config: FleetConfig) -> Host:
    """The running fleet of `config.var_dir` (RollingError when it is not running or nginx is not up)."""
    running = rolling.connect(config)
    return Host(config, running.supervisor, running.nginx_port)


def set_draining(host: Host, draining: bool, timeout: float = NGINX_TIMEOUT) -> None:
    """Write or remove the drain file, reload nginx, and wait until /hostz says so."""
    if draining:
        tmp = host.drain_file.with_suffix(".tmp")
        tmp.write_text(DRAIN_DIRECTIVE)
        tmp.replace(host.drain_file)
    else:
        host.drain_file.unlink(missing_ok=True)
    # HUP: nginx's master re-reads its config (and the include) and starts new workers; the old ones finish the
    # requests they hold.
    host.supervisor.rpc.signalProcess("nginx", "HUP")

    def answered() -> bool:
        code, body = host.hostz()
        says_draining = code == 503 and (body or {}).get("status") == "draining"
        return says_draining if draining else (code != 0 and not says_draining)

    # nginx's old workers may take a new connection for ~100 ms after the reload: ask a few times in a row.
    if not probe.wait_until(lambda: all(answered() for _ in range(3)), timeout, interval=0.1):
        code, body = host.hostz()
        if code == 404:
            raise HostError(
                f"nginx on port {host.nginx_port} has no {HEALTH_PATH} location: its config predates it; restart "
                f"the fleet (scripts/stop, scripts/run) to render deploy/nginx.conf again"
            )
        want = "503 draining" if draining else "not draining"
        raise HostError(f"{HEALTH_PATH} did not answer {want} within {timeout:g}s (last: {code} {body})")


class AccessLog:
    """New requests in nginx's JSON access log since the last look. Left out: health checks, and requests from the
    host itself (127.0.0.1, ::1: the rolling restart's probes through nginx, scripts, an operator's curl), which
    are not the load balancer's traffic."""

    def __init__(self, path: Path):
        self.path = path
        self.inode = 0
        self.offset = 0
        self.partial = b""
        self.new_requests()  # start at the current end

    def new_requests(self) -> int:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return 0
        if stat.st_ino != self.inode or stat.st_size < self.offset:
            # First look, or the log was rotated: the new file's lines are new.
            first = self.inode == 0
            self.inode, self.offset, self.partial = stat.st_ino, (stat.st_size if first else 0), b""
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            data = self.partial + log.read()
        self.offset += len(data) - len(self.partial)
        *lines, self.partial = data.split(b"\n")
        return sum(1 for line in lines if line.strip() and is_traffic(line))


def is_traffic(line: bytes) -> bool:
    """An access log line of a request from elsewhere (not a /hostz check, not from this host)."""
    try:
        entry = json.loads(line)
    except ValueError:
        return True  # not the fleet's format: count it rather than miss traffic
    return entry.get("uri") != HEALTH_PATH and entry.get("remote_addr") not in LOCAL_ADDRESSES


@dataclasses.dataclass(frozen=True)
class Quiet:
    requests: int  # requests that arrived after /hostz said draining
    last: float  # seconds from the drain to the last of them (0: none)
    waited: float  # seconds from the drain until the host was quiet


def wait_quiet(
    log: AccessLog, quiet: float, timeout: float, *, clock: Callable[[], float] = time.monotonic
) -> Quiet | None:
    """Wait until no request arrived for `quiet` seconds; None when requests still arrive after `timeout`."""
    began = clock()
    last_seen = began
    count = 0
    last = 0.0
    while True:
        new = log.new_requests()
        now = clock()
        if new:
            count += new
            last_seen = now
            last = now - began
        if now - last_seen >= quiet:
            return Quiet(count, last, now - began)
        if now - began >= timeout:
            return None
        time.sleep(0.2)


def drain(host: Host, *, quiet: float, timeout: float, log=print) -> Quiet:
    """Steps 1 and 2 above; on a timeout the host is undrained again and HostError raised."""
    watch = AccessLog(host.access_log)
    set_draining(host, True)
    log(
        f"host draining: {HEALTH_PATH} answers 503; waiting until no request arrives for {quiet:g}s "
        f"(at most {timeout:g}s)"
    )
    result = wait_quiet(watch, quiet, timeout)
    if result is None:
        set_draining(host, False)
        raise HostError(
            f"requests still arrived {timeout:g}s after the drain began: is the load balancer checking "
            f"{HEALTH_PATH} on this host? The host is undrained again; nothing was stopped"
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/drain-host",
        description="Take this host out of its load balancer's rotation: /hostz answers 503, then wait until no "
        "request arrives any more, then optionally restart or stop the fleet. The host stays out until "
        "scripts/undrain-host. The fleet is the one in FLEET_VAR_DIR (default: var/).",
        epilog="Exit status: 0 drained (and the --then action done), 1 the fleet is not running, traffic did not "
        "stop (the host is undrained again) or the restart failed (the host stays drained), 2 invalid setting.",
    )
    parser.add_argument(
        "--quiet",
        type=float,
        default=QUIET_SECONDS,
        help=f"seconds without a request that mean the load balancer has moved away (default {QUIET_SECONDS:g}; "
        "nginx writes its access log every second, so at least 2)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DRAIN_TIMEOUT,
        help=f"give up (and undrain) when requests still arrive after this many seconds (default {DRAIN_TIMEOUT:g})",
    )
    parser.add_argument(
        "--then",
        choices=("nothing", "restart", "stop"),
        default="nothing",
        help="once drained: restart every app process one at a time (scripts/rolling-restart), or stop the whole "
        "fleet (scripts/stop); default: nothing",
    )
    args = parser.parse_args(argv)
    if args.quiet < 2:
        parser.error("--quiet must be at least 2 seconds (nginx flushes its access log every second)")
    if args.timeout <= args.quiet:
        parser.error("--timeout must be longer than --quiet")
    try:
        config = FleetConfig.from_env()
        host = connect(config)
        result = drain(host, quiet=args.quiet, timeout=args.timeout)
        print(
            f"drained in {result.waited:.1f}s: {result.requests} requests arrived after the drain began, the last "
            f"{result.last:.1f}s after it; {HEALTH_PATH} answers 503 until {rolling.command('undrain-host', config)}"
        )
        if args.then == "restart":
            with rolling.exclusive(config):
                running = rolling.connect(config)
                mode = rolling.env_settings(running.env_file).db_mode
                rows = rolling.status(running)
                seconds = rolling.rolling_restart(running, rows, mode)
            print(f"restarted {len(rows)} processes in {seconds:.1f}s (mode {mode}); the host is still drained")
        elif args.then == "stop":
            launcher.down(config)
    except SettingsError as exc:
        return invalid_setting(exc)
    except (rolling.RollingError, rolling.RestartFailed, launcher.FleetError, HostError) as exc:
        code = fail(exc, exc.exit_status if isinstance(exc, rolling.RollingError) else EXIT_FAILED)
        if isinstance(exc, (rolling.RestartFailed, launcher.FleetError)):
            print(
                f"The host stays drained. Fix the cause, then: {rolling.command('undrain-host', config)}",
                file=sys.stderr,
            )
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
