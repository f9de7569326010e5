"""The mode switch and the rolling restart across several hosts, one host at a time: `python -m fleet.hosts`
(scripts/fleet-hosts).

Each host runs its own fleet and its own scripts; this command only runs them, host after host, through a command
template (FLEET_HOST_COMMAND or --command; `{host}` is replaced by the host's name): `ssh {host}` in production,
`ip netns exec {host} env FLEET_VAR_DIR=/tmp/x/{host}` in tests/whole_fleet/test_multihost.py. The checkout is at
the same path on every host (FLEET_HOST_DIR or --dir; default: this checkout's path).

First every host must answer `scripts/switch-db-mode --status` with every process ready (nothing is touched
otherwise). Then, for each host in turn:
1. `scripts/drain-host`: /hostz answers 503 and the load balancer moves the host's traffic to the others;
2. `scripts/switch-db-mode MODE` or `scripts/rolling-restart`: one process at a time, as on a single host (with no
   traffic, each drain is immediate);
3. `scripts/undrain-host --wait-traffic S`: /hostz answers 200 and the load balancer sends requests again, so the
   next host is drained only once this one carries its share.
The first failure stops everything: the host that failed stays drained (unless its drain itself failed, which
undrains it), the hosts after it are untouched, and the command says how to roll back.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable

from app.settings import DB_MODES
from fleet.config import ROOT
from fleet.exit_status import fail

DEFAULT_COMMAND = "ssh {host}"
HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]*$")
# Arguments reach the host through a remote shell (ssh) or not at all (ip netns exec): only characters that mean
# the same to both, so nothing needs quoting.
SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/-]*$")
STEP_TIMEOUT = 600.0
SETTLE_SECONDS = 15.0


class UsageError(ValueError):
    """A bad host list, command template or folder: nothing was run."""


class HostsFailed(RuntimeError):
    """A step failed on one host; the message says where, what state each host is in, and how to roll back."""


@dataclasses.dataclass(frozen=True)
class Remote:
    """How to run this checkout's scripts on a host."""

    template: str
    directory: str

    def __post_init__(self) -> None:
        if "{host}" not in self.template:
            raise UsageError(f"command template {self.template!r} has no {{host}}")
        try:
            shlex.split(self.template)
        except ValueError as exc:
            raise UsageError(f"command template {self.template!r}: {exc}") from None
        if not SAFE_PATH.match(self.directory):
            raise UsageError(f"--dir {self.directory!r}: an absolute path of letters, digits and . _ / - only")

    def argv(self, host: str, script: str, *args: str) -> list[str]:
        return [*shlex.split(self.template.replace("{host}", host)), f"{self.directory}/scripts/{script}", *args]


@dataclasses.dataclass(frozen=True)
class StepResult:
    code: int
    output: str


def run_step(
    remote: Remote, host: str, script: str, *args: str, timeout: float = STEP_TIMEOUT, log=print
) -> StepResult:
    """Run one script on `host`, printing its lines as they come (prefixed with the host); exit code 124 when it
    ran out of time (it is killed)."""
    argv = remote.argv(host, script, *args)
    log(f"[{host}] $ {shlex.join(argv)}")
    lines: list[str] = []
    try:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    except OSError as exc:
        return StepResult(127, f"cannot run {argv[0]}: {exc.strerror}")
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    try:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            log(f"[{host}] {lines[-1]}")
        code = process.wait()
    finally:
        timer.cancel()
    if code < 0:
        lines.append(f"killed after {timeout:g}s")
        code = 124
    return StepResult(code, "\n".join(lines))


def parse_modes(status_output: str) -> list[str]:
    """The MODE column of `switch-db-mode --status`: scripts/status's table (fleet/status.py's COLUMNS: PORT, STATE,
    MODE, ...), read by the header's offsets since a state may be two words ("not ready")."""
    modes, column = [], None
    for line in status_output.splitlines():
        fields = line.split()
        if fields[:1] == ["PORT"] and "MODE" in fields:
            column = line.index("MODE")
        elif not fields:
            column = None  # the table ends; the summary line follows
        elif column is not None:
            cell = line[column:].split()[:1]
            if cell and cell[0] in DB_MODES:
                modes.append(cell[0])
    return modes


def preflight(remote: Remote, hosts: list[str], log=print) -> dict[str, list[str]]:
    """Every host's process modes; HostsFailed (before anything changed) when a host is unreachable or not ready."""
    modes = {}
    for host in hosts:
        result = run_step(remote, host, "switch-db-mode", "--status", timeout=60, log=log)
        if result.code != 0:
            raise HostsFailed(
                f"host {host} is not ready (switch-db-mode --status exited {result.code}); nothing was changed on "
                f"any host"
            )
        modes[host] = parse_modes(result.output)
    return modes


def run_hosts(
    remote: Remote,
    hosts: list[str],
    action: list[str],
    *,
    quiet: float,
    drain_timeout: float,
    settle: float,
    rollback: Callable[[str, list[str]], str],
    log=print,
) -> None:
    """Drain, run `action` (a script and its arguments), undrain: host after host. `rollback(host, done)` says what
    to do when `host` failed after `done` succeeded."""
    done: list[str] = []
    for number, host in enumerate(hosts, 1):
        log(f"--- host {number}/{len(hosts)}: {host}")
        steps = [
            ("drain-host", "--quiet", f"{quiet:g}", "--timeout", f"{drain_timeout:g}"),
            tuple(action),
            ("undrain-host", "--wait-traffic", f"{settle:g}"),
        ]
        for step in steps:
            result = run_step(remote, host, *step, log=log)
            if result.code != 0:
                state = (
                    "it was undrained again and is unchanged"
                    if step[0] == "drain-host"
                    else "it stays drained (out of the load balancer's rotation)"
                )
                untouched = hosts[number:]
                raise HostsFailed(
                    f"host {host}: {' '.join(step)} exited {result.code}; {state}. "
                    f"Done: {', '.join(done) or 'none'}; untouched: {', '.join(untouched) or 'none'}.\n"
                    + rollback(host, done)
                )
        done.append(host)


def command_line(remote: Remote, *args: str) -> str:
    parts = ["scripts/fleet-hosts", *args]
    if remote.template != DEFAULT_COMMAND:
        parts += ["--command", remote.template]
    if remote.directory != str(ROOT):
        parts += ["--dir", remote.directory]
    return shlex.join(parts)


def split_hosts(value: str) -> list[str]:
    hosts = [h.strip() for h in value.split(",") if h.strip()]
    if not hosts:
        raise UsageError("no hosts: give --hosts h1,h2,... or FLEET_HOSTS")
    bad = [h for h in hosts if not HOST_NAME.match(h)]
    if bad:
        raise UsageError(f"invalid host name(s): {', '.join(map(repr, bad))}")
    duplicates = [h for h, n in Counter(hosts).items() if n > 1]
    if duplicates:
        raise UsageError(f"host(s) listed twice: {', '.join(duplicates)}")
    return hosts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/fleet-hosts",
        description="Switch the database mode or restart every app process across several hosts, one host at a "
        "time: drain it (scripts/drain-host), switch or restart it, undrain it, next. Each host's own scripts "
        "run through a command template, on the fleet in that host's var/ (or the FLEET_VAR_DIR the template sets, "
        "e.g. 'ssh {host} env FLEET_VAR_DIR=/srv/fleet-var').",
        epilog="Exit status: 0 done on every host (status: every process ready), 1 a host failed (the command "
        "stops there and prints how to roll back) or is not ready beforehand (nothing changed), 2 bad arguments "
        "(nothing run).",
    )
    parser.add_argument("action", choices=("switch", "rolling-restart", "status"))
    parser.add_argument("mode", nargs="?", help=f"switch: the new mode ({', '.join(DB_MODES)})")
    parser.add_argument(
        "--hosts",
        default=os.environ.get("FLEET_HOSTS", ""),
        help="comma-separated hosts, in the order to go through them (default: FLEET_HOSTS)",
    )
    parser.add_argument(
        "--command",
        default=os.environ.get("FLEET_HOST_COMMAND", DEFAULT_COMMAND),
        help="how to run a command on a host; {host} is replaced (default: FLEET_HOST_COMMAND, else "
        f"{DEFAULT_COMMAND!r})",
    )
    parser.add_argument(
        "--dir",
        default=os.environ.get("FLEET_HOST_DIR", str(ROOT)),
        help="the checkout's path on every host (default: FLEET_HOST_DIR, else this checkout's path)",
    )
    parser.add_argument("--quiet", type=float, default=3.0, help="drain-host --quiet (default 3)")
    parser.add_argument("--drain-timeout", type=float, default=60.0, help="drain-host --timeout (default 60)")
    parser.add_argument(
        "--settle",
        type=float,
        default=SETTLE_SECONDS,
        help=f"undrain-host --wait-traffic: how long to wait for the load balancer to send traffic to a host again "
        f"before the next one (default {SETTLE_SECONDS:g})",
    )
    args = parser.parse_args(argv)
    if args.action == "switch" and args.mode not in DB_MODES:
        parser.error(f"switch needs a MODE: one of {', '.join(DB_MODES)}")
    if args.action != "switch" and args.mode:
        parser.error(f"{args.action} takes no MODE")
    try:
        hosts = split_hosts(args.hosts)
        remote = Remote(args.command, args.dir)
    except UsageError as exc:
        parser.error(str(exc))
    try:
        modes = preflight(remote, hosts)
        if args.action == "status":
            return 0
        if args.action == "switch":
            pending = [h for h in hosts if set(modes[h]) != {args.mode}]
            for host in hosts:
                if host not in pending:
                    print(f"[{host}] every process already serves {args.mode}; skipped")
            counts = Counter(m for h in pending for m in modes[h] if m != args.mode)
            previous = counts.most_common(1)[0][0] if counts else args.mode

            def rollback(host: str, done: list[str]) -> str:
                back = [host, *reversed(done)]
                return (
                    f"Roll back with: {command_line(remote, 'switch', previous, '--hosts', ','.join(back))}\n"
                    f"or fix {host} and go on with: "
                    f"{command_line(remote, 'switch', args.mode, '--hosts', ','.join(hosts))}"
                )

            run_hosts(
                remote,
                pending,
                ["switch-db-mode", args.mode],
                quiet=args.quiet,
                drain_timeout=args.drain_timeout,
                settle=args.settle,
                rollback=rollback,
            )
            print(f"switched {len(pending)} host(s) to {args.mode}: {', '.join(pending) or 'none needed'}")
        else:

            def rollback(host: str, done: list[str]) -> str:
                rest = hosts[hosts.index(host) :]
                return (
                    f"Fix {host}, then go on with: {command_line(remote, 'rolling-restart', '--hosts', ','.join(rest))}"
                )

            run_hosts(
                remote,
                hosts,
                ["rolling-restart"],
                quiet=args.quiet,
                drain_timeout=args.drain_timeout,
                settle=args.settle,
                rollback=rollback,
            )
            print(f"restarted every app process on {len(hosts)} host(s): {', '.join(hosts)}")
    except HostsFailed as exc:
        return fail(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
