"""`scripts/bench --profile ENDPOINT`: where one app process spends its time under load, found rather than guessed.

Boots a fleet (and its embedded database) as `--compare` does, loads ENDPOINT through nginx with wrk, and samples
one app process with py-spy (PyPI): a flame graph (profile-ENDPOINT.svg) and a table of the functions that take
the most of the event loop's thread, inclusive and self (profile-ENDPOINT.md, from py-spy's raw output).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import shutil
import subprocess
import time
from pathlib import Path

from bench import wrk
from bench.endpoints import ENDPOINTS
from bench.errors import BenchError
from bench.harness import booted_fleet
from bench.writer import table
from fleet.sandbox import VENV_BIN, embedded_db, short_tmp_dir
from fleet.supervisor import Supervisor

# The event loop's thread: every stack py-spy samples on it starts in app.server's main().
LOOP_THREAD_MARK = "(app/server.py:"
SAMPLE_RATE = 200
TOP = 30


@dataclasses.dataclass(frozen=True)
class ProfilePlan:
    endpoint: str = "json"
    mode: str = "async"
    procs: int = 2
    seconds: int = 10
    wrk: wrk.WrkOptions = dataclasses.field(default_factory=wrk.WrkOptions)


def run(plan: ProfilePlan, out: Path, progress=print) -> list[Path]:
    py_spy = shutil.which("py-spy", path=str(VENV_BIN)) or shutil.which("py-spy")
    if not py_spy:
        raise BenchError("py-spy is not installed (it is in requirements-dev.txt)")
    endpoint = ENDPOINTS[plan.endpoint]
    out.mkdir(parents=True, exist_ok=True)
    folder = short_tmp_dir("profile-")
    svg, raw = out / f"profile-{plan.endpoint}.svg", folder / "profile.txt"
    # The folder (database files, logs, the raw profile) goes when the stack unwinds, also on an error.
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, folder, ignore_errors=True)
        progress("starting the embedded database and a fleet")
        db_uri = stack.enter_context(embedded_db(folder / "db", folder))
        config = stack.enter_context(booted_fleet(plan.mode, None, plan.procs, db_uri))
        pid = next(p for name, p in sorted(Supervisor(config.socket).pids().items()) if name.startswith("app-"))
        url = config.url + endpoint.path
        for fmt, path in (("flamegraph", svg), ("raw", raw)):
            progress(f"py-spy {fmt}: pid {pid} under wrk on {endpoint.path} for {plan.seconds} s")
            command = wrk.command(url, plan.seconds + 3, plan.wrk, None, 1)
            load = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                time.sleep(1)  # past wrk's connection set-up
                args = [py_spy, "record", "-p", str(pid), "-d", str(plan.seconds), "-r", str(SAMPLE_RATE)]
                done = subprocess.run([*args, "-f", fmt, "-o", str(path)], capture_output=True, text=True)
                if done.returncode != 0:
                    raise BenchError(f"py-spy failed: {(done.stderr or done.stdout).strip()[-500:]}")
            finally:
                load.wait(plan.seconds + 30)
        text = summary_markdown(raw.read_text(), plan)
    md = out / f"profile-{plan.endpoint}.md"
    md.write_text(text)
    print(text)
    return [svg, md]


def loop_thread_samples(raw: str) -> list[tuple[list[str], int]]:
    """(frames outermost first, count) of each stack sampled on the event loop's thread."""
    stacks = []
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if LOOP_THREAD_MARK in stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def shares(stacks: list[tuple[list[str], int]]) -> tuple[int, collections.Counter, collections.Counter]:
    """Total samples, and samples per function: inclusive (anywhere on the stack) and self (innermost)."""
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    total = 0
    for frames, count in stacks:
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return total, inclusive, own


def summary_markdown(raw: str, plan: ProfilePlan) -> str:
    total, inclusive, own = shares(loop_thread_samples(raw))
    if not total:
        return "No samples of the event loop's thread (is the process under load?).\n"
    # Frames every sample shares (the interpreter's entry, asyncio's run loop) say nothing.
    informative = [(f, n) for f, n in inclusive.most_common() if n < 0.97 * total][:TOP]
    rows_inclusive = [[f"{100 * n / total:.1f}%", f"`{frame}`"] for frame, n in informative]
    rows_self = [[f"{100 * n / total:.1f}%", f"`{frame}`"] for frame, n in own.most_common(TOP)]
    return (
        "\n\n".join(
            [
                f"py-spy, {total} samples at {SAMPLE_RATE}/s of one app process's event-loop thread, {plan.mode} mode, "
                f"{plan.procs} processes, wrk -c{plan.wrk.connections} on `{ENDPOINTS[plan.endpoint].path}` through "
                "nginx. Share of the samples in which a function is on the stack (inclusive) and on top (self):",
                table(["inclusive", "function (file:line)"], rows_inclusive),
                table(["self", "function (file:line)"], rows_self),
            ]
        )
        + "\n"
    )
