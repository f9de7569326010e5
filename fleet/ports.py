"""Who holds a TCP port on this host: the check `scripts/run` and `scripts/scale` make before they start anything.

A port is taken when a socket bound to it would collide with ours (a listener on any local address, or a socket
without SO_REUSEADDR): the test is a real bind, as the fleet's own processes will do. The holder is then found the
way `ss -ltnp` finds it: the socket's inode in /proc/net/tcp{,6}, and the process with a descriptor on
`socket:[inode]` under /proc/*/fd. Processes of other users are invisible to a non-root caller; then the holder is
"not visible from here" rather than a guess.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path

PROC = Path("/proc")
# /proc/net/tcp's `st` column: the states in which a socket holds its local port against a new listener.
TIME_WAIT = "06"


@dataclasses.dataclass(frozen=True)
class Holder:
    pid: int
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.command})"


@dataclasses.dataclass(frozen=True)
class Taken:
    """A port the fleet needs that something else holds."""

    port: int
    role: str  # what the fleet needs it for, e.g. "app process app-8001"
    holders: tuple[Holder, ...]

    def __str__(self) -> str:
        who = ", ".join(map(str, self.holders)) if self.holders else "a process not visible from here"
        return f"port {self.port} ({self.role}) is held by {who}"


def bindable(port: int) -> bool:
    """True if a listener could bind `port` on every address right now (as nginx's `listen PORT` does)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def socket_inodes(port: int) -> set[int]:
    """Inodes of the TCP sockets (IPv4 and IPv6) bound to local port `port`, in any state but TIME_WAIT."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), open(PROC / "net" / table) as lines:
            next(lines, None)  # the header
            for line in lines:
                fields = line.split()
                if len(fields) < 10 or fields[3] == TIME_WAIT:
                    continue
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[9] != "0":
                    inodes.add(int(fields[9]))
    return inodes


def holders(port: int) -> list[Holder]:
    """The processes with a socket on `port` (several when they share it, e.g. nginx's master and workers)."""
    targets = {f"socket:[{inode}]" for inode in socket_inodes(port)}
    if not targets:
        return []
    found = []
    for pid_dir in PROC.iterdir():
        if not pid_dir.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in targets for fd in (pid_dir / "fd").iterdir()):
                found.append(Holder(int(pid_dir.name), command_line(int(pid_dir.name))))
    return sorted(found, key=lambda h: h.pid)


def command_line(pid: int, limit: int = 120) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return "?"
    text = " ".join(raw.replace(b"\0", b" ").decode(errors="replace").split()) or "?"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parent_pid(pid: int) -> int:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return 0
    # The command name in parentheses may hold spaces; the fields after the last ')' are fixed.
    return int(stat.rsplit(")", 1)[1].split()[1])


def descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        pid = parent_pid(pid)
    return False


def taken(needed: Mapping[int, str], own_root: int = 0) -> list[Taken]:
    """The ports of `needed` (port -> role) that cannot be bound, except those held only by processes descending
    from `own_root` (the fleet's own supervisord: its processes may already hold their ports)."""
    result = []
    for port, role in sorted(needed.items()):
        if bindable(port):
            continue
        who = holders(port)
        if own_root and who and all(descends_from(h.pid, own_root) for h in who):
            continue
        result.append(Taken(port, role, tuple(who)))
    return result


def held_by(port: int, pids: Iterable[int]) -> bool:
    """True if one of `pids` holds a socket on `port`."""
    wanted = set(pids)
    return any(h.pid in wanted for h in holders(port))
