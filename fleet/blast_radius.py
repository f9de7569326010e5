"""Blast radius: what one blocked app process costs the fleet, measured through nginx (`scripts/blast-radius`).

Scenarios are grouped by fleet: one fleet of N processes per group (free ports, a /tmp folder, FLEET_FAULTS on,
stall shedding on or off), whose nginx gets each scenario's config by a reload: the shipped deploy/nginx.conf,
or it with one option changed. Then a bounded load runs on /json and /db through nginx while event loops are
blocked for T seconds, K times (`GET /fault/block` on one process's own port; or on two processes in turn; or
through nginx, like a slow "query of death"). Per scenario and endpoint it reports requests, failed, the share
delayed beyond 100 ms and beyond 1 s, p50/p99/max latency, and how many processes' watchdogs saw a stall.

Two loads: "steady" is an open loop at a fixed rate (latency counted from each request's due time, so waiting
for a free connection counts); "saturating" is a closed loop that keeps every connection busy, the case where
many requests are already on their way to a process when it blocks.

Outputs (under --out, default results/blast-radius/): summary.md (the tables), results.json (every figure and
the parameters), requests.csv.gz (one row per request), blast-radius.png and nginx-options.png (latency over
time, block intervals shaded); --readme also writes the figures into README.md. One embedded database, in
memory, serves every fleet: `/db` figures are bounded by it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import dataclasses
import datetime
import gzip
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

from fleet import launcher, nginx_reload, probe, sandbox
from fleet.bench.errors import BenchError
from fleet.bench.machine import command_version
from fleet.bench.report import replace_readme_block
from fleet.bench.stats import percentile
from fleet.bench.tuning import NO_KEEPALIVE_EDITS
from fleet.config import ROOT, FleetConfig, nginx_binary
from fleet.openloop import HttpConnection, Sample, run_load
from fleet.supervisor import Supervisor

PATHS = ("/json", "/db")
DEFAULT_OUT = ROOT / "results" / "blast-radius"
README = ROOT / "README.md"
README_BEGIN = "<!-- blast-radius:begin (written by scripts/blast-radius --readme) -->"
README_END = "<!-- blast-radius:end -->"
TARGET = "N >= 2, one process blocked: 0 failed requests and at most 1% delayed beyond 1 s"


# --- nginx options compared -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Edit:
    """A regex substitution on the rendered nginx.conf; it must match (count=0: every match, at least one)."""

    pattern: str
    replacement: str
    count: int = 1


# The alternative to stall shedding, compared and rejected: added to `location /` for the comparison, fast
# idempotent routes get a short read timeout and are retried once on another process when it fires.
FAST_READ_TIMEOUT = "500ms"
ADD_FAST_ROUTE_TIMEOUT = Edit(
    r"^([ \t]*)proxy_send_timeout 30s;\n",
    r"\g<0>\1location ~ ^/(json|plaintext|db|fortunes)$ {\n"
    r"\1    proxy_pass http://app;\n"
    r"\1    proxy_next_upstream error timeout;\n"
    r"\1    proxy_next_upstream_tries 2;\n"
    rf"\1    proxy_read_timeout {FAST_READ_TIMEOUT};\n"
    r"\1}\n",
)
# The first version's setting: a process that failed a request is skipped for 2 s.
MAX_FAILS_1 = Edit(r"max_fails=0;", "max_fails=1 fail_timeout=2s;", count=0)


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    summary: str
    edits: tuple[Edit, ...] = ()

    def apply(self, conf: str) -> str:
        for edit in self.edits:
            conf, matched = re.subn(edit.pattern, edit.replacement, conf, count=edit.count, flags=re.M)
            if not matched:
                raise BenchError(f"nginx option {self.name!r}: {edit.pattern!r} matches nothing in nginx.conf")
        return conf


SHIPPED = "least_conn"


def variants() -> dict[str, Variant]:
    """The nginx options compared: deploy/nginx.conf as shipped, or with the changes named."""
    # The first version's upstream: a new connection to a process for every request.
    no_keepalive = tuple(Edit(pattern, replacement) for pattern, replacement in NO_KEEPALIVE_EDITS)
    timeout_everywhere = (
        Edit(r"^([ \t]*)proxy_next_upstream error;$", r"\1proxy_next_upstream error timeout;"),
        Edit(r"^([ \t]*)proxy_read_timeout 30s;$", rf"\1proxy_read_timeout {FAST_READ_TIMEOUT};"),
    )
    found = [
        Variant("round-robin", "round robin instead of least_conn", (Edit(r"^[ \t]*least_conn;\n", ""),)),
        Variant(
            SHIPPED,
            "deploy/nginx.conf as shipped: least_conn, upstream keep-alive, retry on connection errors only, "
            "max_fails=0",
        ),
        Variant("no-keepalive", "without upstream keep-alive (a new connection per request)", no_keepalive),
        Variant(
            "max_fails=1", "max_fails=1 fail_timeout=2s: a process that failed a request is skipped 2 s", (MAX_FAILS_1,)
        ),
        Variant(
            "fast-timeout",
            f"+ /json, /plaintext, /db, /fortunes: read timeout {FAST_READ_TIMEOUT}, retried once on timeout; "
            "max_fails=1 fail_timeout=2s (a timeout takes the process out for 2 s)",
            (ADD_FAST_ROUTE_TIMEOUT, MAX_FAILS_1),
        ),
        Variant(
            "fast-timeout,max_fails=0",
            "the same with max_fails=0 (a timeout does not take the process out)",
            (ADD_FAST_ROUTE_TIMEOUT,),
        ),
        Variant(
            "timeout-everywhere",
            f"every route: read timeout {FAST_READ_TIMEOUT} and retry on timeout (never do this)",
            timeout_everywhere,
        ),
    ]
    return {v.name: v for v in found}


# --- what runs -----------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LoadShape:
    """How hard the open-loop load presses on each path (not fleet.loadgen's Load, which writes notes)."""

    name: str
    rate: float  # requests/s per path; 0: closed loop
    connections: int  # per path


LOADS = {
    "steady": LoadShape("steady", rate=100, connections=16),
    "saturating": LoadShape("saturating", rate=0, connections=8),
}


# Blocks on two processes in turn follow each other this closely (seconds).
ALTERNATE_GAP = 0.5
FAULT_NOTES = {
    "direct": "",
    "alternate": " (2 processes, in turn)",
    "nginx": " (slow GET via nginx)",
    "sigstop": " (whole process frozen: SIGSTOP)",
}
# A process frozen whole (SIGSTOP: what swapping, a C extension holding the GIL or a debugger does) is out of every
# in-process mechanism's reach, its watchdog thread included; frozen this long, as the design's outside check does.
SIGSTOP_SECONDS = 3.0


@dataclasses.dataclass(frozen=True)
class Timing:
    block_seconds: float
    blocks: int
    gap: float  # seconds between the end of one block and the start of the next
    warmup: float = 1.0
    tail: float = 1.5

    @property
    def starts(self) -> list[float]:
        return [self.warmup + k * (self.block_seconds + self.gap) for k in range(self.blocks)]

    @property
    def duration(self) -> float:
        return self.starts[-1] + self.block_seconds + self.tail


@dataclasses.dataclass(frozen=True)
class Scenario:
    procs: int
    mode: str
    variant: str  # nginx option, a key of variants()
    load: str
    shedding: bool = True  # FLEET_STALL_SHEDDING
    # Where each block is sent: "direct", the first process's own port; "alternate", the first and the second
    # process's ports in turn (one process blocked after another); "nginx", a slow GET through nginx; "sigstop", the
    # first process frozen with SIGSTOP and thawed with SIGCONT.
    fault_via: str = "direct"

    @property
    def key(self) -> str:
        via = "" if self.fault_via == "direct" else f" fault-via-{self.fault_via}"
        shedding = "shedding" if self.shedding else "no-shedding"
        return f"N={self.procs} {self.mode} {self.variant} {shedding} {self.load}{via}"

    @property
    def shipped(self) -> bool:
        return self.variant == SHIPPED and self.shedding and self.fault_via == "direct"


def plan(quick: bool) -> list[list[Scenario]]:
    """Scenarios grouped by fleet (one boot each: procs, mode and shedding are fixed per fleet)."""
    if quick:
        return [
            [Scenario(2, "motor", SHIPPED, "saturating", shedding=False)],
            [Scenario(2, "motor", SHIPPED, "saturating"), Scenario(2, "motor", "no-keepalive", "saturating")],
            [Scenario(1, "motor", SHIPPED, "saturating")],
        ]
    both = tuple(LOADS)
    without = [
        Scenario(2, "motor", v, load, shedding=False)
        for v in ("round-robin", SHIPPED, "no-keepalive", "fast-timeout", "fast-timeout,max_fails=0")
        for load in both
    ]
    without += [
        Scenario(2, "motor", "timeout-everywhere", "steady", False, "nginx"),
        Scenario(2, "motor", "fast-timeout", "steady", False, "alternate"),
    ]
    shedding = [Scenario(2, "motor", v, load) for v in (SHIPPED, "max_fails=1") for load in both]
    shedding += [Scenario(2, "motor", "no-keepalive", "saturating")]
    shedding += [Scenario(2, "motor", SHIPPED, "steady", True, "nginx")]
    shedding += [Scenario(2, "motor", v, "steady", True, "alternate") for v in (SHIPPED, "max_fails=1")]
    fleets = [without, shedding]
    fleets += [[Scenario(procs, "motor", SHIPPED, load) for load in both] for procs in (1, 4)]
    fleets += [[Scenario(2, mode, SHIPPED, "saturating")] for mode in ("threads", "async")]
    fleets += [[Scenario(3, "motor", SHIPPED, load, True, "sigstop") for load in both]]
    return fleets


# --- running it ----------------------------------------------------------------------------------------------------


class Fleet:
    """A fleet booted for the benchmark; `use(variant)` reloads its nginx with that variant of the config."""

    def __init__(self, procs: int, mode: str, shedding: bool, db_uri: str):
        env = {"FLEET_FAULTS": "true", "FLEET_STALL_SHEDDING": str(shedding).lower()}
        self.config: FleetConfig = sandbox.fleet_config(mode, procs, mongodb_uri=db_uri, prefix="blast-", **env)
        self.supervisor: Supervisor | None = None
        self.base_conf = ""

    def __enter__(self) -> Fleet:
        try:
            self.supervisor = launcher.up(self.config, log=lambda *_: None)
        except BaseException:
            sandbox.stop_fleet(self.config)
            raise
        self.base_conf = (self.config.var_dir / "nginx.conf").read_text()
        return self

    def __exit__(self, *exc) -> None:
        sandbox.stop_fleet(self.config)

    def use(self, variant: Variant) -> None:
        """Reload nginx with `variant` applied to the shipped config; returns once only it answers."""
        try:
            nginx_reload.load(self.config, self.supervisor, variant.apply(self.base_conf), variant.name)
        except nginx_reload.ReloadError as exc:
            raise BenchError(str(exc)) from None

    def stalls(self) -> dict[int, int]:
        """Each process's watchdog stall count (the fleet is idle and every loop free when this is called)."""
        counts = {}
        for port in self.config.app_ports:
            ready = probe.wait_until(lambda port=port: probe.ready(port), 15)
            if not ready:
                raise BenchError(f"process {port} not ready; see {self.config.var_dir}/log/")
            counts[port] = ready["loop_stalls"]
        return counts


async def inject_blocks(ports: list[int], t0: float, timing: Timing) -> list[dict]:
    """Block a loop at each of timing.starts, sending the k-th block to ports[k % len(ports)]; returns when each
    block was asked for and answered. Blocks on two processes in turn follow each other closely (ALTERNATE_GAP):
    the second process stalls while nginx may still remember the first one's failures."""
    blocks = []
    conns = [HttpConnection(port, timeout=timing.block_seconds + 30) for port in ports]
    gap = timing.gap if len(ports) == 1 else min(timing.gap, ALTERNATE_GAP)
    try:
        for k, start in enumerate(dataclasses.replace(timing, gap=gap).starts):
            delay = t0 + start - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            began = time.monotonic() - t0
            status = await conns[k % len(conns)].get(f"/fault/block?seconds={timing.block_seconds:g}")
            blocks.append({"start": round(began, 3), "end": round(time.monotonic() - t0, 3), "status": status})
    finally:
        await asyncio.gather(*(conn.close() for conn in conns))
    return blocks


async def inject_stops(pid: int, t0: float, timing: Timing) -> list[dict]:
    """Freeze process `pid` (SIGSTOP) at each of timing.starts for timing.block_seconds, then thaw it (SIGCONT)."""
    stops = []
    try:
        for start in timing.starts:
            delay = t0 + start - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            began = time.monotonic() - t0
            os.kill(pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(timing.block_seconds)
            finally:
                os.kill(pid, signal.SIGCONT)
            stops.append({"start": round(began, 3), "end": round(time.monotonic() - t0, 3), "status": "SIGSTOP"})
    finally:
        os.kill(pid, signal.SIGCONT)
    return stops


async def drive(fleet: Fleet, scenario: Scenario, timing: Timing) -> tuple[list[Sample], list[dict]]:
    load = LOADS[scenario.load]
    t0 = time.monotonic() + 0.2
    if scenario.fault_via == "sigstop":
        faults = inject_stops(fleet.supervisor.pids()[f"app-{fleet.config.app_ports[0]}"], t0, timing)
    else:
        targets = {
            "direct": fleet.config.app_ports[:1],
            "alternate": fleet.config.app_ports[:2],
            "nginx": [fleet.config.port],
        }[scenario.fault_via]
        faults = inject_blocks(targets, t0, timing)
    runs = [
        run_load(fleet.config.port, path, t0=t0, duration=timing.duration, rate=load.rate, connections=load.connections)
        for path in PATHS
    ]
    *per_path, blocks = await asyncio.gather(*runs, faults)
    return [s for samples in per_path for s in samples], blocks


def run_scenario(fleet: Fleet, scenario: Scenario, variant: Variant, timing: Timing) -> tuple[dict, list[Sample]]:
    if scenario.fault_via == "sigstop":
        timing = dataclasses.replace(timing, block_seconds=SIGSTOP_SECONDS)
    fleet.use(variant)
    before = fleet.stalls()
    samples, blocks = asyncio.run(drive(fleet, scenario, timing))
    after = fleet.stalls()
    if MAX_FAILS_1 in variant.edits:
        # nginx keeps a process that failed out of rotation for fail_timeout: let that pass before the next run.
        time.sleep(2.0)
    result = {
        **dataclasses.asdict(scenario),
        "key": scenario.key,
        "shipped": scenario.shipped,
        "nginx": variant.summary,
        "blocks": blocks,
        # Stalls the watchdogs saw, all processes together: one per block, unless a slow request was replayed on
        # another process (or the machine itself stalled a loop past FLEET_WATCHDOG_MS).
        "stalls": sum(after[port] - before[port] for port in after),
        "stalled_processes": sum(1 for port in after if after[port] > before[port]),
        "endpoints": {path: summarize([s for s in samples if s.path == path], timing.duration) for path in PATHS},
    }
    return result, samples


def summarize(samples: list[Sample], duration: float) -> dict:
    latencies = sorted(s.latency for s in samples)
    count = len(latencies)
    if not count:
        return {"requests": 0, "failed": 0}

    def pct(p: float) -> float:
        return round(1000 * percentile(latencies, p), 1)

    return {
        "requests": count,
        "failed": sum(1 for s in samples if s.status != 200),
        "over_100ms_pct": round(100 * sum(1 for v in latencies if v > 0.1) / count, 2),
        "over_1s_pct": round(100 * sum(1 for v in latencies if v > 1.0) / count, 2),
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "max_ms": round(1000 * latencies[-1], 1),
        "rps": round(count / duration, 1),
    }


def run(
    fleets: list[list[Scenario]], timing: Timing, *, log=print, db_uri: str | None = None
) -> tuple[list[dict], dict[str, list[Sample]]]:
    """Run every scenario; `db_uri`: a seeded database to use (default: a fresh embedded one, in memory)."""
    options = variants()
    unknown = {s.variant for group in fleets for s in group} - set(options)
    if unknown:
        raise BenchError(f"unknown nginx option(s): {sorted(unknown)}")
    results: list[dict] = []
    samples: dict[str, list[Sample]] = {}
    with contextlib.nullcontext(db_uri) if db_uri else sandbox.embedded_db() as uri:
        for group in fleets:
            first = group[0]
            log(f"booting a fleet: N={first.procs}, {first.mode} mode, stall shedding {first.shedding}")
            with Fleet(first.procs, first.mode, first.shedding, uri) as fleet:
                for scenario in group:
                    result, scenario_samples = run_scenario(fleet, scenario, options[scenario.variant], timing)
                    results.append(result)
                    samples[scenario.key] = scenario_samples
                    log(progress_line(result))
    return results, samples


def progress_line(result: dict) -> str:
    parts = []
    for path, stats in result["endpoints"].items():
        parts.append(
            f"{path} {stats['requests']} req, {stats['failed']} failed, >1s {stats['over_1s_pct']}%, "
            f"p99 {stats['p99_ms']} ms, max {stats['max_ms']} ms"
        )
    return f"  {result['key']}: " + "; ".join(parts) + f"; stalls {result['stalls']} on {result['stalled_processes']}"


# --- reporting -----------------------------------------------------------------------------------------------------


def table(results: list[dict]) -> str:
    head = (
        "| N | mode | nginx | shedding | load | endpoint | requests | failed | > 100 ms | > 1 s | p50 ms | p99 ms "
        "| max ms | stalls (processes) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    for r in results:
        nginx = r["variant"] + FAULT_NOTES[r["fault_via"]]
        for path, s in r["endpoints"].items():
            rows.append(
                f"| {r['procs']} | {r['mode']} | {nginx} | {shedding(r)} | {r['load']} | `{path}` | {s['requests']} | "
                f"{s['failed']} | "
                f"{s['over_100ms_pct']}% | {s['over_1s_pct']}% | {s['p50_ms']} | {s['p99_ms']} | {s['max_ms']} | "
                f"{r['stalls']} ({r['stalled_processes']}) |"
            )
    return "\n".join(rows)


def shedding(result: dict) -> str:
    # A lone process never sheds (app/server.py): there is no other process to take the requests.
    if result["procs"] == 1:
        return "n/a (alone)"
    return "on" if result["shedding"] else "off"


def compact_table(results: list[dict]) -> str:
    """One row per scenario, /json and /db together: the comparison at a glance."""
    rows = [
        "| N | mode | nginx | shedding | load | requests | failed | > 100 ms | > 1 s | max ms | stalls (processes) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        stats = list(r["endpoints"].values())
        total = sum(s["requests"] for s in stats) or 1
        over_100 = sum(s["over_100ms_pct"] * s["requests"] for s in stats) / total
        over_1s = sum(s["over_1s_pct"] * s["requests"] for s in stats) / total
        nginx = f"`{r['variant']}`" + FAULT_NOTES[r["fault_via"]]
        rows.append(
            f"| {r['procs']} | {r['mode']} | {nginx} | {shedding(r)} | {r['load']} | {total} | "
            f"{sum(s['failed'] for s in stats)} | "
            f"{over_100:.2f}% | {over_1s:.2f}% | {max(s['max_ms'] for s in stats):.0f} | "
            f"{r['stalls']} ({r['stalled_processes']}) |"
        )
    return "\n".join(rows)


def verdict(shipped: list[dict]) -> str:
    fleet = [r for r in shipped if r["procs"] >= 2]
    if not fleet:
        return "Target: not measured (no run with N >= 2)."
    failed = sum(s["failed"] for r in fleet for s in r["endpoints"].values())
    worst = max(s["over_1s_pct"] for r in fleet for s in r["endpoints"].values())
    met = "met" if failed == 0 and worst <= 1.0 else "NOT met"
    return f"Target {met}: with N >= 2, {failed} failed requests; at most {worst}% delayed beyond 1 s in any row."


def report(results: list[dict], timing: Timing, meta: dict, options: dict[str, Variant]) -> str:
    shipped = [r for r in results if r["shipped"]]
    others = [r for r in results if r["procs"] == 2 and r["mode"] == "motor"]
    used = {r["variant"] for r in others}
    lines = [
        "# Blast radius",
        "",
        f"Measured {meta['date']} on {meta['machine']}; nginx {meta['nginx']}; embedded database (SecantusDB, one "
        "Python process, in memory) for every fleet: a real mongod is much faster.",
        f"Each run: one process's event loop blocked {timing.blocks} x {timing.block_seconds:g} s "
        f"(`GET /fault/block` on its own port), {timing.gap:g} s apart, under load on `/json` and `/db` through "
        f"nginx for {timing.duration:g} s. Loads: steady = open loop, {LOADS['steady'].rate:g} req/s per endpoint "
        f"(latency from the due time); saturating = closed loop, {LOADS['saturating'].connections} connections per "
        "endpoint. Target: " + TARGET + ". Stalls: what the processes' watchdogs saw, all together (one per "
        "block, more if a slow request was replayed on another process or the machine itself stalled a loop).",
        "",
        "## The shipped configuration, by N and database mode",
        "",
        verdict(shipped),
        "",
        table(shipped),
        "",
        "## nginx options (N = 2, motor)",
        "",
        "\n".join(f"- `{name}`: {options[name].summary}" for name in options if name in used),
        "",
        compact_table(others),
        "",
        "The same runs, per endpoint:",
        "",
        table(others),
        "",
        f"Command: `{meta['command']}`",
    ]
    return "\n".join(lines) + "\n"


def readme_block(results: list[dict], meta: dict, timing: Timing, out: Path, readme: Path = README) -> str:
    """The latest figures for README.md: the shipped configuration, the nginx options, the plots."""
    folder = os.path.relpath(out, readme.parent)
    shipped = [r for r in results if r["shipped"]]
    others = [r for r in results if r["procs"] == 2 and r["mode"] == "motor"]
    frozen = [r for r in results if r["fault_via"] == "sigstop"]
    return "\n".join(
        [
            f"Measured {meta['date']} on {meta['machine']}, nginx {meta['nginx']}, embedded database (`/db` is "
            f"bounded by it); `{meta['command']}` took {meta['seconds']} s. `/json` and `/db` together per run "
            f"(per endpoint, with p50 and p99: [{folder}/summary.md]({folder}/summary.md)); {timing.blocks} blocks "
            f"of {timing.block_seconds:g} s per run; stalls: what the processes' watchdogs saw, all together (one "
            "per block, more if a slow request was replayed on another process or the machine itself stalled a "
            "loop).",
            "",
            verdict(shipped),
            "",
            compact_table(shipped),
            "",
            "nginx options and stall shedding side by side (N = 2, motor). The blocks go to one process's port, "
            'except "2 processes, in turn" (the first, then the second: one process blocked after another) and '
            '"slow GET via nginx" (a GET sent through nginx, like a query of death):',
            "",
            compact_table(others),
            "",
            *(
                [
                    f"A process frozen whole instead (SIGSTOP for {SIGSTOP_SECONDS:g} s, then SIGCONT, "
                    f"{timing.blocks} times; no in-process mechanism reaches it, so only nginx routes around it):",
                    "",
                    compact_table(frozen),
                    "",
                ]
                if frozen
                else []
            ),
            f"![latency of every request, shipped configuration]({folder}/blast-radius.png)",
            "",
            f"![latency of every request, nginx options]({folder}/nginx-options.png)",
        ]
    )


def update_readme(block: str, readme: Path = README) -> None:
    try:
        readme.write_text(replace_readme_block(readme.read_text(), block, README_BEGIN, README_END))
    except ValueError as exc:
        raise BenchError(str(exc)) from None


def write_outputs(out: Path, results, samples, *, timing: Timing, meta: dict, options, plot: bool = True) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps({"meta": meta, "timing": dataclasses.asdict(timing), "scenarios": results}, indent=1) + "\n"
    )
    with gzip.open(out / "requests.csv.gz", "wt", newline="") as raw:
        writer = csv.writer(raw)
        writer.writerow(["scenario", "path", "at_s", "latency_ms", "status"])
        for key, rows in samples.items():
            for s in rows:
                writer.writerow([key, s.path, f"{s.at:.4f}", f"{1000 * s.latency:.2f}", s.status])
    (out / "summary.md").write_text(report(results, timing, meta, options))
    if plot:
        from fleet.blast_plot import plot_scenarios

        shipped = [r for r in results if r["shipped"]]
        compared = [r for r in results if r["procs"] == 2 and r["mode"] == "motor"]
        plot_scenarios(shipped, samples, out / "blast-radius.png", "Shipped nginx config: one process blocked")
        plot_scenarios(compared, samples, out / "nginx-options.png", "nginx options, N = 2, motor")


def machine_meta(argv: list[str]) -> dict:
    nginx = command_version([nginx_binary(), "-v"]).partition("/")[2]
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs (load average at start {load})",
        "nginx": nginx,
        "python": sys.version.split()[0],
        "command": " ".join(["scripts/blast-radius", *argv]),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="scripts/blast-radius", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer, shorter scenarios (~1 min)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--block-seconds", type=float, help="how long each block lasts (default 2, quick 1)")
    parser.add_argument("--blocks", type=int, help="blocks per scenario (default 3, quick 2)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plots")
    parser.add_argument("--readme", action="store_true", help="also put the latest figures into README.md")
    args = parser.parse_args(argv)
    timing = Timing(
        block_seconds=args.block_seconds if args.block_seconds is not None else (1.0 if args.quick else 2.0),
        blocks=args.blocks if args.blocks is not None else (2 if args.quick else 3),
        gap=1.0 if args.quick else 1.5,
        warmup=0.5 if args.quick else 1.0,
    )
    if not (0 < timing.block_seconds <= 20 and 1 <= timing.blocks <= 10):
        parser.error("--block-seconds must be in (0, 20] and --blocks in [1, 10]")
    # Stopped by SIGTERM (a CI timeout, kill PID): unwind like Ctrl-C, so every fleet it booted is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.readme and README_BEGIN not in README.read_text():
        parser.error(f"--readme: README.md has no {README_BEGIN!r} marker")
    meta = machine_meta(argv)
    started = time.monotonic()
    try:
        results, samples = run(plan(args.quick), timing)
    except (BenchError, launcher.FleetError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    meta["seconds"] = round(time.monotonic() - started)
    options = variants()
    write_outputs(args.out, results, samples, timing=timing, meta=meta, options=options, plot=not args.no_plot)
    print()
    print(report(results, timing, meta, options))
    if args.readme:
        update_readme(readme_block(results, meta, timing, args.out.resolve()))
    print(f"wrote {args.out}/ in {meta['seconds']} s" + (" and README.md" if args.readme else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
