"""Running the blast radius: a fleet per group of scenarios, the faults (a blocked event loop, a frozen process)
at fixed times, and the load through nginx while they happen (bench/openloop.py), one record per request."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Iterator

from app.addresses import Address
from bench.blast_radius.nginx_options import MAX_FAILS_1, Variant, variants
from bench.blast_radius.scenarios import ALTERNATE_GAP, LOADS, PATHS, SIGSTOP_SECONDS, Scenario, Timing
from bench.errors import BenchError
from bench.openloop import HttpConnection, Sample, run_load
from bench.stats import percentile
from fleet import nginx_reload, probe, sandbox
from fleet.config import FleetConfig
from fleet.supervisor import Supervisor


@dataclasses.dataclass
class BlastFleet:
    """A fleet booted for the benchmark (`booted_fleet`); `use(variant)` reloads its nginx with that variant."""

    config: FleetConfig
    supervisor: Supervisor
    base_conf: str  # the nginx.conf it was rendered with: what each variant edits

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
            ready = probe.wait_until(lambda port=port: probe.ready(self.config.app_address(port)), 15)
            if not ready:
                raise BenchError(f"process {port} not ready; see {self.config.var_dir}/log/")
            counts[port] = ready["loop_stalls"]
        return counts


@contextlib.contextmanager
def booted_fleet(procs: int, mode: str, shedding: bool, db_uri: str) -> Iterator[BlastFleet]:
    """A fleet with FLEET_FAULTS on, for the duration of the block, listening as a shipped fleet does."""
    env = {"FLEET_FAULTS": "true", "FLEET_STALL_SHEDDING": str(shedding).lower()}
    config = sandbox.fleet_config(mode, procs, mongodb_uri=db_uri, prefix="blast-", **env)
    with sandbox.booted(config) as supervisor:
        yield BlastFleet(config, supervisor, (config.var_dir / "nginx.conf").read_text())


async def inject_blocks(targets: list[int | Address], t0: float, timing: Timing) -> list[dict]:
    """Block a loop at each of timing.starts, sending the k-th block to targets[k % len(targets)] (nginx's port, or
    an app process's address); returns when each
    block was asked for and answered. Blocks on two processes in turn follow each other closely (ALTERNATE_GAP):
    the second process stalls while nginx may still remember the first one's failures."""
    blocks = []
    conns = [HttpConnection(target, timeout=timing.block_seconds + 30) for target in targets]
    gap = timing.gap if len(targets) == 1 else min(timing.gap, ALTERNATE_GAP)
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


async def drive(fleet: BlastFleet, scenario: Scenario, timing: Timing) -> tuple[list[Sample], list[dict]]:
    load = LOADS[scenario.load]
    t0 = time.monotonic() + 0.2
    if scenario.fault_via == "sigstop":
        faults = inject_stops(fleet.supervisor.pids()[f"app-{fleet.config.app_ports[0]}"], t0, timing)
    else:
        apps = [fleet.config.app_address(port) for port in fleet.config.app_ports]
        targets = {"direct": apps[:1], "alternate": apps[:2], "nginx": [fleet.config.port]}[scenario.fault_via]
        faults = inject_blocks(targets, t0, timing)
    runs = [
        run_load(fleet.config.port, path, t0=t0, duration=timing.duration, rate=load.rate, connections=load.connections)
        for path in PATHS
    ]
    *per_path, blocks = await asyncio.gather(*runs, faults)
    return [s for samples in per_path for s in samples], blocks


def run_scenario(fleet: BlastFleet, scenario: Scenario, variant: Variant, timing: Timing) -> tuple[dict, list[Sample]]:
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
            with booted_fleet(first.procs, first.mode, first.shedding, uri) as fleet:
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
