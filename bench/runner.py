"""One benchmark run: the references, then one fleet per (process count, mode, loop), each endpoint through nginx.

Cells are ordered so that what is compared is measured close together in time (on a shared machine the noise
drifts): for each process count, every mode, and for each mode asyncio then uvloop back to back. All fleets use
one embedded database the run starts and seeds once, on disk like `scripts/run`'s, in the run's /tmp folder;
every process started is stopped by PID on the way out, also on errors and Ctrl-C.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from bench import cpu, references, wrk
from bench.endpoints import ENDPOINTS
from bench.errors import BenchError
from bench.harness import booted_fleet
from bench.machine import machine_info
from bench.stats import measurement
from fleet import probe
from fleet.sandbox import embedded_db, free_port_block, short_tmp_dir
from fleet.supervisor import Supervisor

# Seconds a fleet takes to boot and stop (for the time estimate only).
FLEET_OVERHEAD_S = 6.0
# How much longer than planned a run may last when its warm-up's latency is high (CellRunner.run_seconds).
MAX_STRETCH = 2


@dataclasses.dataclass(frozen=True)
class Plan:
    modes: tuple[str, ...] = ("motor", "threads", "async")
    loops: tuple[str, ...] = ("asyncio", "uvloop")
    procs: tuple[int, ...] = (1, 2, 4)
    endpoints: tuple[str, ...] = tuple(ENDPOINTS)
    # Endpoints also measured on one app process without nginx (the reference for the hop's cost).
    direct_endpoints: tuple[str, ...] = ("json", "db")
    runs: int = 3
    duration_s: int = 2
    warmup_s: int = 1
    wrk: wrk.WrkOptions = dataclasses.field(default_factory=wrk.WrkOptions)
    db_threads: int = 8
    # A running fleet to measure instead of booting fleets (its mode and loop are read from /readyz).
    url: str | None = None
    # The database for the "database alone" reference with --url (the run's own embedded one otherwise).
    mongodb_uri: str | None = None
    db_name: str = "fleet"

    def connections(self, endpoint) -> int:
        return max(self.wrk.threads, self.wrk.connections // endpoint.connections_divisor)

    def cell_seconds(self, stretched: bool = False) -> float:
        # wrk stops ~0.2 s after its duration; a run also pays process start-up. `stretched`: runs of an
        # endpoint whose latency may lengthen them (CellRunner.run_seconds: between 1 x and MAX_STRETCH x),
        # counted at the midpoint, so a run whose every stretched cell hits the cap takes longer than estimated.
        duration = self.duration_s * ((1 + MAX_STRETCH) / 2 if stretched and self.warmup_s else 1)
        return self.warmup_s + self.runs * (duration + 0.25) + (0.25 if self.warmup_s else 0)

    def estimate_seconds(self) -> float:
        references_s = 3 * self.cell_seconds()
        if self.url:
            return references_s + len(self.endpoints) * self.cell_seconds()
        fleets = len(self.modes) * len(self.loops) * len(self.procs)
        fleet_cells = sum(self.cell_seconds(ENDPOINTS[n].connections_divisor > 1) for n in self.endpoints)
        direct_cells = len(self.modes) * len(self.loops) * len(self.direct_endpoints) * self.cell_seconds()
        return references_s + fleets * (fleet_cells + FLEET_OVERHEAD_S) + direct_cells


class Progress:
    """Progress lines with elapsed time and an estimate of what is left."""

    def __init__(self, total_s: float, out=None):
        self.total_s = total_s
        self.start = time.monotonic()
        self.out = out or sys.stdout

    def __call__(self, message: str) -> None:
        elapsed = time.monotonic() - self.start
        left = max(0.0, self.total_s - elapsed)
        print(f"[{_clock(elapsed)} elapsed, ~{_clock(left)} left] {message}", file=self.out, flush=True)


def _clock(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


def run(plan: Plan, *, progress: Callable[[str], None] | None = None) -> dict:
    """Run the plan; returns the results dict that `report` and `plots` read (and results.json holds)."""
    progress = progress or Progress(plan.estimate_seconds())
    folder = short_tmp_dir("bench-")
    measurements: list[dict] = []
    info: dict = {}
    try:
        info = machine_info()
        pipeline_script = wrk.write_pipeline_script(folder)
        cell = CellRunner(plan, pipeline_script, progress)
        with contextlib.ExitStack() as stack:
            db_uri = plan.mongodb_uri
            if not plan.url:
                progress("starting the embedded database and seeding it")
                db_uri = stack.enter_context(embedded_db(folder / "db", folder))
            measure_references(plan, cell, folder, db_uri, progress, found=measurements)
            if plan.url:
                measure_given_fleet(plan, cell, found=measurements)
            else:
                measure_fleets(plan, cell, db_uri, progress, found=measurements)
    except (BenchError, wrk.WrkError, RuntimeError, OSError) as exc:
        # Minutes of measurements are worth keeping even when a later cell fails.
        partial = {"config": config_of(plan), "machine": info, "measurements": measurements}
        raise BenchError(str(exc), partial=partial if info and measurements else None) from exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"config": config_of(plan), "machine": info, "measurements": measurements}


def config_of(plan: Plan) -> dict:
    """The plan as saved beside the figures (results.json "config")."""
    if not plan.url:
        database = "the embedded SecantusDB, started by the run, on disk (as `scripts/run` runs it)"
    elif plan.mongodb_uri:
        database = f"the given fleet's; the database alone was measured on {plan.mongodb_uri}"
    else:
        database = "the given fleet's (not measured alone: pass --mongodb-uri)"
    return {
        **{k: v for k, v in dataclasses.asdict(plan).items() if k != "wrk"},
        "wrk_threads": plan.wrk.threads,
        "connections": plan.wrk.connections,
        "wrk_timeout_s": plan.wrk.timeout_s,
        "database": database,
    }


class CellRunner:
    """Measures one URL: a warm-up run (discarded), then `runs` wrk runs, one progress line per run.

    A run must last several times the requests' latency, or it ends before most requests started in it do (wrk
    starts every connection at once, so with a latency near the run's length almost nothing completes). The
    warm-up's p99 tells: runs then last 4 x that p99, up to twice the planned duration.
    """

    def __init__(self, plan: Plan, pipeline_script: Path, progress):
        self.plan = plan
        self.pipeline_script = pipeline_script
        self.progress = progress

    def __call__(
        self, label: str, url: str, depth: int = 1, connections: int | None = None, layers: cpu.Layers | None = None
    ) -> list[dict]:
        duration_s = self.run_seconds(self.warm_up(url, depth, connections))
        runs = []
        for i in range(self.plan.runs):
            run_label = f"{label} run {i + 1}/{self.plan.runs}"
            runs.append(self.once(run_label, url, depth, connections, duration_s=duration_s, layers=layers))
        return runs

    def options(self, connections: int | None) -> wrk.WrkOptions:
        return dataclasses.replace(self.plan.wrk, connections=connections or self.plan.wrk.connections)

    def warm_up(self, url: str, depth: int = 1, connections: int | None = None) -> wrk.WrkResult | None:
        if not self.plan.warmup_s:
            return None
        options = self.options(connections)
        return wrk.run(url, self.plan.warmup_s, options, pipeline_script=self.pipeline_script, depth=depth)

    def run_seconds(self, warm_up: wrk.WrkResult | None) -> int:
        planned = self.plan.duration_s
        if warm_up is None:
            return planned
        if warm_up.requests == 0:
            return MAX_STRETCH * planned
        if warm_up.p99_ms is None:
            return planned
        return min(MAX_STRETCH * planned, max(planned, math.ceil(4 * warm_up.p99_ms / 1000)))

    def once(
        self,
        label: str,
        url: str,
        depth: int = 1,
        connections: int | None = None,
        *,
        duration_s: int | None = None,
        layers: cpu.Layers | None = None,
    ) -> dict:
        """One measured wrk run, as a run dict (see `bench.stats`); with `layers`, also each layer's CPU µs
        per request (bench/cpu.py)."""
        options = self.options(connections)
        duration_s = duration_s or self.plan.duration_s
        before = layers.snapshot() if layers else None
        result = wrk.run(url, duration_s, options, pipeline_script=self.pipeline_script, depth=depth)
        cost = cpu.per_request_us(before, layers.snapshot(), result.requests) if layers and before else {}
        p99 = "n/a" if result.p99_ms is None else f"{result.p99_ms:.1f} ms"
        self.progress(f"{label}: {result.rps:,.0f} req/s, p99 {p99}, {result.errors} errors")
        return {
            "rps": result.rps,
            "p50_ms": result.p50_ms,
            "p99_ms": result.p99_ms,
            "errors": result.errors,
            "requests": result.requests,
            "socket_errors": result.socket_errors,
            "non_2xx": result.non_2xx,
            "connections": options.connections,
            "duration_s": duration_s,
            "cpu_us": cost,
        }


def measure_references(
    plan: Plan, cell: CellRunner, folder: Path, db_uri: str | None, progress, *, found: list[dict]
) -> None:
    with references.NginxAlone(folder / "nginx-alone", free_port_block(1)) as nginx:
        found.append(measurement("nginx", "plain", cell("nginx alone, return 200", nginx.url)))
        depth = ENDPOINTS["plaintext"].depth
        found.append(measurement("nginx", "pipelined", cell("nginx alone, pipelined", nginx.url, depth), depth=depth))
    if db_uri:
        if plan.warmup_s:
            references.database_alone(db_uri, plan.db_name, plan.db_threads, plan.warmup_s)
        runs = []
        for index in range(plan.runs):
            result = references.database_alone(db_uri, plan.db_name, plan.db_threads, plan.duration_s)
            runs.append(result)
            progress(
                f"database alone ({plan.db_threads} PyMongo threads) run {index + 1}/{plan.runs}: "
                f"{result['rps']:,.0f} find_one/s, p99 {result['p99_ms']:.1f} ms, {result['errors']} errors"
            )
        found.append(measurement("db", "find_one", runs, threads=plan.db_threads))


def measure_given_fleet(plan: Plan, cell: CellRunner, *, found: list[dict]) -> None:
    url = urllib.parse.urlsplit(plan.url)
    # The fleet's root: a path given with --url (http://host:8080/x) is not where the endpoints are.
    base = f"{url.scheme}://{url.netloc}"
    try:
        port = url.port or 80
    except ValueError as exc:
        raise BenchError(f"--url {plan.url}: {exc}") from None
    ready = probe.ready((url.hostname or "127.0.0.1", port))
    if not ready:
        raise BenchError(f"{base}/readyz does not answer 200: is the fleet up?")
    mode, loop = ready.get("db_mode", "?"), ready.get("event_loop", "?")
    for name in plan.endpoints:
        endpoint = ENDPOINTS[name]
        runs = cell(f"{base} {endpoint.path}", base + endpoint.path, endpoint.depth, plan.connections(endpoint))
        found.append(measurement("fleet", name, runs, mode=mode, loop=loop, procs=None, path=endpoint.path))


def measure_fleets(plan: Plan, cell: CellRunner, db_uri: str, progress, *, found: list[dict]) -> None:
    smallest = min(plan.procs)
    db_pids = cpu.pids_matching("secantusd-py", str(urllib.parse.urlsplit(db_uri).port))
    for procs in plan.procs:
        for mode in plan.modes:
            for loop in plan.loops:
                label = f"{mode}/{loop} procs={procs}"
                progress(f"{label}: booting the fleet")
                # On TCP, every cell alike: one process of the smallest fleet is also measured without nginx.
                with booted_fleet(mode, loop, procs, db_uri, tcp=True) as config:
                    layers = cpu.fleet_layers(Supervisor(config.socket).pids(), db_pids)
                    for name in plan.endpoints:
                        endpoint = ENDPOINTS[name]
                        url = config.url + endpoint.path
                        connections = plan.connections(endpoint)
                        runs = cell(f"{label} {endpoint.path}", url, endpoint.depth, connections, layers)
                        found.append(
                            measurement("fleet", name, runs, mode=mode, loop=loop, procs=procs, path=endpoint.path)
                        )
                    if procs != smallest:
                        continue
                    direct = probe.url(config.app_address(config.app_ports[0]))
                    for name in plan.direct_endpoints:
                        endpoint = ENDPOINTS[name]
                        url = direct + endpoint.path
                        connections = plan.connections(endpoint)
                        runs = cell(f"{label} direct {endpoint.path}", url, endpoint.depth, connections, layers)
                        found.append(
                            measurement("direct", name, runs, mode=mode, loop=loop, procs=1, path=endpoint.path)
                        )
