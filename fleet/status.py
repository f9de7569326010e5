"""Print the fleet's processes as a table in the terminal: `scripts/status` (``python -m fleet.status``).

By default it reads the running fleet's env file (``var/fleet.env``, or the one under FLEET_VAR_DIR) for the app
ports and asks every process itself, exactly as the /status page does (app/process_status.py), so it also works while
nginx is down or the page is turned off. With ``--url`` it prints a status.json served elsewhere instead (another
host's nginx, for instance).

Exit status: 0 when every process is ready, 1 when at least one is not, 2 when there is nothing to ask (the fleet
is not running: no supervisord answers on its socket, whatever files it left behind; or no status.json at --url).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
import urllib.parse
from collections.abc import Iterable, Sequence

from app import process_status
from app.process_status import ProcessStatus
from app.settings import Settings, SettingsError
from fleet import probe
from fleet.config import SOCKET_SUBDIR, FleetConfig
from fleet.exit_status import fail
from fleet.supervisor import Supervisor, app_port

COLUMNS = (
    ("PORT", lambda p: p["port"]),
    ("STATE", lambda p: p["state"]),
    ("MODE", lambda p: p.get("mode") or "-"),
    ("PID", lambda p: p.get("pid") or "-"),
    ("UPTIME", lambda p: uptime(p.get("uptime_s"))),
    ("REQ/S", lambda p: number(p.get("requests_per_s"))),
    ("IN FLIGHT", lambda p: number(p.get("in_flight"))),
    ("LAG MS", lambda p: number((p.get("loop") or {}).get("lag_ms"))),
    ("MAX LAG MS", lambda p: number((p.get("loop") or {}).get("max_lag_ms"))),
    ("STALLS", lambda p: number((p.get("loop") or {}).get("stalls"))),
    ("DB POOL", lambda p: pool((p.get("pools") or {}).get("db"))),
    ("BLOCKING POOL", lambda p: pool((p.get("pools") or {}).get("blocking"))),
    ("DETAIL", lambda p: p.get("detail") or ""),
)


# scripts/status's own: 1 is "a process is not ready" here, so a fleet that is not running is 2.
EXIT_NOTHING_TO_ASK = 2


class StatusError(RuntimeError):
    """Nothing to ask: no env file, or no status.json at the URL."""


class NotRunning(StatusError):
    """No supervisord answers on the fleet's socket: the fleet is stopped (a leftover env file says nothing)."""


def collect_local(config: FleetConfig) -> dict:
    """/status.json of the fleet whose env file is under `config.var_dir`, asked of its processes from here."""
    return process_status.report(processes(config))


def processes(config: FleetConfig, supervisor: Supervisor | None = None) -> list[ProcessStatus]:
    """Every process of the fleet whose env file is under `config.var_dir` (the ports are in that file), as it
    answers and as its supervisord sees it: what scripts/status prints and the rolling restart acts on."""
    supervisor = supervisor or Supervisor(config.socket)
    if not supervisor.running():
        leftover = "" if config.env_file.exists() else f" (and no fleet env file at {config.env_file})"
        run = f"{'' if config.var_dir == FleetConfig().var_dir else f'FLEET_VAR_DIR={config.var_dir} '}scripts/run"
        raise NotRunning(f"fleet not running: no supervisord answers on {config.socket}{leftover}; start it with {run}")
    if not config.env_file.exists():
        raise StatusError(f"no fleet env file at {config.env_file}: is the fleet running? (scripts/run)")
    try:
        settings = Settings.load({"FLEET_ENV_FILE": str(config.env_file)})
    except SettingsError as exc:
        raise StatusError(f"{config.env_file}: {exc}") from None
    infos = supervisor.app_processes()
    # What this fleet's supervisord runs is what there is (FLEET_APP_PORTS may lag a scale in progress).
    ports = [app_port(info) for info in infos] or settings.fleet_ports(config.app_port_base)
    # Its processes listen where its env file says (not the caller's FLEET_APP_LISTEN): on sockets, in the fleet's
    # own folder whatever folder the file names, or on TCP.
    if settings.socket_dir:
        settings = dataclasses.replace(settings, socket_dir=str(config.var_dir / SOCKET_SUBDIR))
    found = asyncio.run(process_status.collect(ports, settings, request_timeout=settings.db_timeout_ms / 1000 + 1.0))
    return with_supervisord(found, infos)


def with_supervisord(processes: list[ProcessStatus], infos: list[dict]) -> list[ProcessStatus]:
    """Correct the processes with what this fleet's supervisord knows: a process it does not run is `down` (with
    its state and exit status), and an answer from a pid it does not run comes from someone else on that port."""
    by_port = {app_port(info): info for info in infos}
    for process in processes:
        info = by_port.get(process.port)
        if info is None:
            continue
        process.supervisor_state = info["statename"]
        if info["statename"] != "RUNNING":
            exited = f", exit status {info['exitstatus']}" if info["statename"] in ("EXITED", "FATAL") else ""
            process.state, process.detail = "down", f"supervisord: {info['statename']}{exited} (scripts/ctl status)"
        elif process.pid and process.pid != info["pid"]:
            process.state = "not ready"
            process.detail = f"answered by pid {process.pid}, not by this fleet's pid {info['pid']}"
        if not process.pid and info["pid"]:
            process.pid = info["pid"]
    return processes


def collect_url(url: str) -> dict:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise StatusError(f"--url: expected http://HOST[:PORT]/status.json, got {url!r}")
    code, body = probe.get_json((parts.hostname or "", parts.port or 80), parts.path or "/status.json", timeout=10)
    if code != 200 or not isinstance(body, dict) or "processes" not in body:
        raise StatusError(f"{url}: no fleet status there (HTTP {code or 'no answer'})")
    return body


def text_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """Left-aligned columns two spaces apart, headers first: the one table layout of the fleet's terminal tools."""
    cells = [[str(cell) for cell in row] for row in [headers, *rows]]
    widths = [max(len(cell) for cell in column) for column in zip(*cells, strict=True)]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells]


def render(report: dict) -> str:
    lines = text_table([name for name, _ in COLUMNS], ([get(p) for _, get in COLUMNS] for p in report["processes"]))
    summary = report["summary"]
    others = [
        f"{n} {state.replace('_', ' ')}" for state, n in summary.items() if state not in ("processes", "ready") and n
    ]
    when = time.strftime("%H:%M:%S", time.localtime(report["generated_at"]))
    lines.append(
        f"\n{summary['ready']} of {summary['processes']} ready" + "".join(f", {o}" for o in others) + f" at {when}"
    )
    return "\n".join(lines)


def uptime(seconds) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s >= 86400:
        return f"{s // 86400}d{s % 86400 // 3600}h"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def number(value) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def pool(stats) -> str:
    """running/waiting (threads); Motor's pool does not tell how many run."""
    if not stats:
        return "-"
    return f"{stats.get('active', '?')}/{stats['queued']} ({stats['size']})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/status",
        description="Print every app process of the fleet: state, mode, pid, uptime, request rate, loop lag, pools "
        "(running/waiting (threads)). The fleet is the one in FLEET_VAR_DIR (default: var/ of this checkout); its "
        "processes are asked directly, so it works while nginx is down.",
        epilog="exit status: 0 every process is ready; 1 at least one is not; 2 nothing to ask: the fleet is not "
        "running (prints 'fleet not running'), or no status.json at --url.",
    )
    parser.add_argument("--url", help="read this status.json (e.g. http://HOST:8080/status.json) instead")
    parser.add_argument("--json", action="store_true", help="print the raw JSON instead of a table")
    parser.add_argument("--watch", type=float, metavar="SECONDS", help="repeat every SECONDS until interrupted")
    args = parser.parse_args(argv)
    if args.watch is not None and args.watch <= 0:
        parser.error("--watch: must be positive")
    try:
        while True:
            report = collect_url(args.url) if args.url else collect_local(FleetConfig.from_env())
            text = json.dumps(report, indent=2) if args.json else render(report)
            if args.watch:
                print("\033[H\033[2J", end="")  # clear the terminal between tables
            print(text, flush=True)
            if not args.watch:
                break
            time.sleep(args.watch)
    except (StatusError, SettingsError) as exc:
        return fail(exc, EXIT_NOTHING_TO_ASK)
    except KeyboardInterrupt:
        return 130
    summary = report["summary"]
    return 0 if summary["ready"] == summary["processes"] else 1


if __name__ == "__main__":
    sys.exit(main())
