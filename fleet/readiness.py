"""Is this fleet's own process ready? What `scripts/run` and `scripts/scale` wait for.

A process is ready when supervisord runs it (RUNNING) and the pid answering /readyz on its port is the pid that
supervisord runs: another fleet's process on the same port answers 200 too, and must not count. nginx is ready
when supervisord's nginx holds the public port and a /readyz through it is answered. A process supervisord gave up
on (FATAL: it kept dying at start; EXITED with 2 or 3, which it does not restart, see deploy/supervisord.conf) or
that was stopped will not become ready by waiting: it is reported at once, with the line of its log that says why.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from app import addresses
from app.addresses import Address
from fleet import ports, probe
from fleet.rolling import tail_lines
from fleet.supervisor import Supervisor

# supervisord states from which a process does not become ready by itself. Not BACKOFF: supervisord starts it
# again (up to startretries, then FATAL); not every EXITED: one that exited with another status is restarted.
GAVE_UP = ("FATAL", "STOPPED", "UNKNOWN")
# The exit statuses supervisord does not restart an app process after (`exitcodes`, deploy/supervisord.conf): a bad
# setting (2), an address it cannot listen on (3).
NOT_RESTARTED = (2, 3)


@dataclasses.dataclass(frozen=True)
class Verdict:
    name: str
    ready: bool
    failed: bool  # will not become ready by waiting
    why: str  # when not ready


def gave_up(info: dict) -> bool:
    return info["statename"] in GAVE_UP or (info["statename"] == "EXITED" and info["exitstatus"] in NOT_RESTARTED)


def app_verdict(info: dict, address: Address) -> Verdict:
    """Whether the app process supervisord describes in `info` is ready: the pid at `address` (its socket or port,
    FleetConfig.app_address) is the one supervisord runs, and it answers /readyz with 200."""
    name, state, pid = info["name"], info["statename"], info["pid"]
    if gave_up(info):
        return Verdict(name, False, True, failure_reason(info))
    if state != "RUNNING":
        return Verdict(name, False, False, failure_reason(info) if state == "BACKOFF" else f"supervisord state {state}")
    code, body = probe.get_json(address, "/readyz", timeout=2.0)
    answered = (body or {}).get("pid")
    if code == 200 and answered == pid:
        return Verdict(name, True, False, "")
    if code and answered and answered != pid:
        # Only another fleet's process on the same port: a unix socket's folder is this fleet's alone.
        held = ports.holders(address[1]) if isinstance(address, tuple) else []
        holders = ", ".join(map(str, held)) or "another process"
        where = addresses.describe(address)
        return Verdict(name, False, False, f"{where} is answered by {holders}, not by its pid {pid}")
    return Verdict(name, False, False, f"/readyz answered {code}" if code else "/readyz: no answer")


def nginx_verdict(supervisor: Supervisor, public_port: int) -> Verdict:
    info = supervisor.process("nginx")
    if gave_up(info):
        return Verdict("nginx", False, True, failure_reason(info))
    if info["statename"] != "RUNNING":
        return Verdict("nginx", False, False, f"supervisord state {info['statename']}")
    if not ports.held_by(public_port, [info["pid"]]):
        holders = ", ".join(map(str, ports.holders(public_port))) or "nobody"
        return Verdict("nginx", False, False, f"port {public_port} is held by {holders}, not nginx pid {info['pid']}")
    if not probe.ready(public_port):
        return Verdict("nginx", False, False, f"/readyz through port {public_port}: not 200")
    return Verdict("nginx", True, False, "")


def failure_reason(info: dict) -> str:
    why = f"{info['statename']}"
    if info["statename"] == "EXITED":
        why += f" with status {info['exitstatus']}"
    if info.get("spawnerr"):
        why += f" ({info['spawnerr']})"
    line = telling_line(Path(info["stdout_logfile"])) if info.get("stdout_logfile") else ""
    return f"{why}; its log {info.get('stdout_logfile')} says: {line}" if line else why


def telling_line(path: Path, size: int = 8000) -> str:
    """The last line of a process log that reports an error (the app's JSON lines at ERROR, nginx's [emerg]),
    else its last line; shortened."""
    lines = tail_lines(path, size)
    errors = [line for line in lines if any(m in line for m in ('"ERROR"', "[emerg]", "Error", "error:"))]
    line = (errors or lines or [""])[-1]
    return line[:400]
