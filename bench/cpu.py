"""CPU time per request, per layer (nginx, the app processes, the database, the load generator), from /proc.

On a shared 2-core machine requests/s moves by ±30% from run to run, while the CPU time each layer spends per
request moves far less: it is what a layer costs, whatever else the machine does. Each process's user + system
time is read from /proc/PID/stat before and after a load run; the load generator (wrk, a child of this process)
from getrusage(RUSAGE_CHILDREN), which counts children once they have exited (so nothing else may be started and
reaped between the two readings: the benchmark runs only wrk there). A run during which a process of a layer
exited or was replaced (a crash, an nginx reload's new workers) has no CPU figure: its deltas would be wrong.
"""

from __future__ import annotations

import dataclasses
import os
import resource
from collections.abc import Iterable, Mapping
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")
# The layers, in the order reports show them; "wrk" is filled from getrusage.
LAYERS = ("nginx", "app", "db", "wrk")


def stat_fields(pid: int, proc: Path = PROC) -> list[str]:
    """/proc/PID/stat's fields from the third on (state, ppid, ...); empty if the process is gone."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return []
    # The command name (field 2) may hold spaces and parentheses: split after its closing parenthesis.
    return stat.rsplit(")", 1)[1].split()


def cpu_seconds(pid: int, proc: Path = PROC) -> float:
    """User + system CPU seconds of one process so far (0 if it is gone)."""
    return fields_cpu_seconds(stat_fields(pid, proc))


def fields_cpu_seconds(fields: list[str]) -> float:
    """User + system CPU seconds (utime and stime, stat fields 14 and 15) from `stat_fields`' list."""
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND if fields else 0.0


ALIVE = "_alive"


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def child_pids(parent: int, proc: Path = PROC) -> list[int]:
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        fields = stat_fields(int(entry.name), proc)
        if fields and int(fields[1]) == parent:
            found.append(int(entry.name))
    return found


def command_line(pid: int, proc: Path = PROC) -> list[str]:
    try:
        return (proc / str(pid) / "cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def pids_matching(*words: str, proc: Path = PROC) -> list[int]:
    """Processes whose command line contains every one of `words` as an argument (e.g. "--port", "27018")."""
    found = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            args = command_line(int(entry.name), proc)
            if all(any(word in arg for arg in args) for word in words):
                found.append(int(entry.name))
    return found


@dataclasses.dataclass(frozen=True)
class Layers:
    """The processes of each layer of one thing under load (a fleet, or the plain reference)."""

    pids: Mapping[str, tuple[int, ...]]

    def snapshot(self) -> dict[str, float]:
        taken: dict[str, float] = {}
        alive = set()
        for layer, pids in self.pids.items():
            taken[layer] = 0.0
            for pid in pids:
                fields = stat_fields(pid)
                if fields:
                    taken[layer] += fields_cpu_seconds(fields)
                    # With its start time (stat field 22), so that a reused pid is told apart.
                    alive.add((pid, int(fields[19])))
        taken["wrk"] = children_cpu_seconds()
        # Which processes were there, to tell a run whose processes changed.
        taken[ALIVE] = hash(frozenset(alive))
        return taken


def fleet_layers(process_pids: Mapping[str, int], db_pids: Iterable[int] = ()) -> Layers:
    """A fleet from supervisord's name -> pid map (fleet.supervisor.Supervisor.pids): nginx, master and workers;
    the app processes (app-PORT); the database (its own `db` program, or `db_pids` when it runs elsewhere)."""
    nginx, app, db = [], [], list(db_pids)
    for name, pid in process_pids.items():
        if name == "nginx":
            nginx += [pid, *child_pids(pid)]
        elif name.startswith("app-"):
            app.append(pid)
        elif name == "db":
            db.append(pid)
    return Layers({"nginx": tuple(nginx), "app": tuple(app), "db": tuple(db)})


def process_tree(parent: int) -> tuple[int, ...]:
    """`parent` and its children (the plain reference: the forking parent and its workers)."""
    return (parent, *child_pids(parent))


def per_request_us(before: Mapping[str, float], after: Mapping[str, float], requests: int) -> dict[str, float]:
    """CPU microseconds per request of each layer between two snapshots; empty when nothing was served or the
    processes changed in between."""
    if requests <= 0 or before.get(ALIVE) != after.get(ALIVE):
        return {}
    return {layer: 1e6 * (after[layer] - before[layer]) / requests for layer in after if layer != ALIVE}
