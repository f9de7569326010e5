"""`scripts/bench --compare`: the fleet side by side with plain Tornado, per request and per layer.

One run boots, on one embedded database: the plain-Tornado reference (bench/plain_tornado.py: N forked
processes on one SO_REUSEPORT port, no nginx, none of the template's features) and the fleet (N processes behind
nginx, every feature on), with the same N and the same driver; with `features`, also fleets with one feature off
each. For every endpoint it alternates wrk runs between them, round after round (the order rotates each round),
so that the machine's drift hits every variant alike, and reads each layer's CPU time from /proc around every run
(bench/cpu.py). Ratios are taken per round and reported as the median with their range, which says how well
a ratio repeats.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

from bench import cpu, wrk
from bench.endpoints import ENDPOINTS
from bench.errors import BenchError
from bench.harness import booted_fleet
from bench.machine import machine_info
from fleet import probe
from fleet.sandbox import VENV_BIN, embedded_db, free_port_block, short_tmp_dir, start_process, stop_process
from fleet.supervisor import Supervisor

PLAIN = "plain"
FLEET = "fleet"
# A variant's FleetConfig setting, not an app setting: how the processes listen.
LISTEN = "FLEET_APP_LISTEN"
# Each feature the report prices, by the app settings that turn it off (README "Performance").
FEATURES_OFF = {
    "no metrics": {"FLEET_METRICS": "false"},
    "no request ids": {"FLEET_REQUEST_IDS": "false"},
    "no watchdog, shedding": {"FLEET_WATCHDOG_MS": "0"},
    "no features": {"FLEET_METRICS": "false", "FLEET_REQUEST_IDS": "false", "FLEET_WATCHDOG_MS": "0"},
    # Not a feature: the other event loop, which FLEET_EVENT_LOOP chooses.
    "asyncio loop": {"FLEET_EVENT_LOOP": "asyncio"},
    # Nor this: the processes on loopback TCP ports instead of unix sockets (FLEET_APP_LISTEN; README "Security").
    "app on loopback TCP": {LISTEN: "tcp"},
}


@dataclasses.dataclass(frozen=True)
class ComparePlan:
    mode: str = "async"
    procs: int = 2
    endpoints: tuple[str, ...] = tuple(ENDPOINTS)
    rounds: int = 5
    duration_s: int = 5
    warmup_s: int = 1
    # Fleets with one feature off each, measured on these endpoints only (they are what the features cost on).
    features: bool = False
    feature_endpoints: tuple[str, ...] = ("json", "db")
    wrk: wrk.WrkOptions = dataclasses.field(default_factory=wrk.WrkOptions)

    def variants(self, endpoint: str) -> list[str]:
        extra = list(FEATURES_OFF) if self.features and endpoint in self.feature_endpoints else []
        return [PLAIN, FLEET, *extra]

    def connections(self, endpoint: str) -> int:
        return max(self.wrk.threads, self.wrk.connections // ENDPOINTS[endpoint].connections_divisor)

    def estimate_seconds(self) -> float:
        runs = sum(len(self.variants(e)) for e in self.endpoints)
        return runs * (self.warmup_s + self.rounds * (self.duration_s + 0.3)) + 8 * (
            2 + len(FEATURES_OFF) * self.features
        )


@dataclasses.dataclass(frozen=True)
class Target:
    """Something under load: where to send requests and which processes to account for."""

    url: str
    layers: cpu.Layers


def run(plan: ComparePlan, progress: Callable[[str], None] | None = None) -> dict:
    progress = progress or (lambda line: print(line, flush=True))
    folder = short_tmp_dir("compare-")
    results: dict = {"kind": "compare", "config": config_of(plan), "machine": machine_info(), "runs": []}
    try:
        with contextlib.ExitStack() as stack:
            progress("starting the embedded database and seeding it")
            db_uri = stack.enter_context(embedded_db(folder / "db", folder))
            db_pids = cpu.pids_matching("secantusd-py", f"{folder / 'db'}")
            targets = {PLAIN: stack.enter_context(plain_reference(plan, db_uri, db_pids, folder))}
            fleets = {FLEET: {}} | (FEATURES_OFF if plan.features else {})
            for variant, settings in fleets.items():
                progress(f"booting {variant}: {plan.procs} processes, {plan.mode} mode")
                env = {k: v for k, v in settings.items() if k != LISTEN}
                tcp = settings.get(LISTEN) == "tcp"
                config = stack.enter_context(booted_fleet(plan.mode, None, plan.procs, db_uri, tcp=tcp, **env))
                layers = cpu.fleet_layers(Supervisor(config.socket).pids(), db_pids)
                targets[variant] = Target(config.url, layers)
            pipeline = wrk.write_pipeline_script(folder)
            for endpoint in plan.endpoints:
                measure_endpoint(plan, endpoint, targets, pipeline, progress=progress, found=results["runs"])
    except (wrk.WrkError, RuntimeError, OSError) as exc:
        raise BenchError(str(exc), partial=results if results["runs"] else None) from exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # the database files and logs, as runner.run does
    return results


def measure_endpoint(plan: ComparePlan, endpoint: str, targets: dict, pipeline: Path, *, progress, found: list) -> None:
    spec = ENDPOINTS[endpoint]
    options = dataclasses.replace(plan.wrk, connections=plan.connections(endpoint))
    variants = plan.variants(endpoint)
    if plan.warmup_s:
        for variant in variants:
            wrk.run(
                targets[variant].url + spec.path, plan.warmup_s, options, pipeline_script=pipeline, depth=spec.depth
            )
    for index in range(plan.rounds):
        # Rotate the order every round: whoever runs first after a pause does not always get the same share.
        shift = index % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            target = targets[variant]
            before = target.layers.snapshot()
            result = wrk.run(
                target.url + spec.path, plan.duration_s, options, pipeline_script=pipeline, depth=spec.depth
            )
            cost = cpu.per_request_us(before, target.layers.snapshot(), result.requests)
            found.append(
                {
                    "variant": variant,
                    "endpoint": endpoint,
                    "round": index + 1,
                    "rps": result.rps,
                    "p50_ms": result.p50_ms,
                    "p99_ms": result.p99_ms,
                    "errors": result.errors,
                    "requests": result.requests,
                    "cpu_us": cost,
                }
            )
            served = cost.get("nginx", 0) + cost.get("app", 0)  # 0 when the run has no CPU figure
            progress(
                f"{endpoint} round {index + 1}/{plan.rounds} {variant}: {result.rps:,.0f} req/s, "
                f"nginx+app {served:,.0f} µs/request, {result.errors} errors"
            )


@contextlib.contextmanager
def plain_reference(plan: ComparePlan, db_uri: str, db_pids, folder: Path):
    port = free_port_block(1)
    args = [str(VENV_BIN / "python"), "-m", "bench.plain_tornado", "--port", str(port)]
    args += ["--procs", str(plan.procs), "--mode", plan.mode, "--mongodb-uri", db_uri]
    process = start_process(args, folder / "plain-tornado.log")
    try:
        if not probe.wait_until(lambda: probe.get_json(port, "/json")[0] == 200, 20):
            raise BenchError(f"plain Tornado did not start: {(folder / 'plain-tornado.log').read_text()[-1000:]}")
        workers = cpu.child_pids(process.pid)
        if len(workers) != plan.procs:
            raise BenchError(f"plain Tornado runs {len(workers)} workers, expected {plan.procs}")
        yield Target(f"http://127.0.0.1:{port}", cpu.Layers({"app": cpu.process_tree(process.pid), "db": db_pids}))
    finally:
        stop_process(process)


def config_of(plan: ComparePlan) -> dict:
    return {
        **{k: v for k, v in dataclasses.asdict(plan).items() if k != "wrk"},
        "wrk_threads": plan.wrk.threads,
        "connections": plan.wrk.connections,
        "python": sys.version.split()[0],
    }


# -- summaries ---------------------------------------------------------------------------------------------------


def runs_of(results: dict, variant: str, endpoint: str) -> list[dict]:
    return [r for r in results["runs"] if r["variant"] == variant and r["endpoint"] == endpoint]


def served_us(run: dict) -> float | None:
    """CPU µs per request of what serves it: nginx + app processes (the database and wrk are shared); None for a run
    without CPU figures (its processes changed during it: bench/cpu.py)."""
    if "app" not in run["cpu_us"]:
        return None
    return run["cpu_us"].get("nginx", 0.0) + run["cpu_us"]["app"]


def summary(results: dict, variant: str, endpoint: str) -> dict | None:
    runs = runs_of(results, variant, endpoint)
    if not runs:
        return None
    measured = [r for r in runs if served_us(r) is not None]
    layers = {layer for r in measured for layer in r["cpu_us"]}
    return {
        "rps": statistics.median(r["rps"] for r in runs),
        "served_us": statistics.median(served_us(r) for r in measured) if measured else 0.0,
        "cpu_us": {layer: statistics.median(r["cpu_us"].get(layer, 0.0) for r in measured) for layer in layers},
        "errors": sum(r["errors"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
    }


def round_ratios(results: dict, variant: str, base: str, endpoint: str, key: Callable[[dict], float]) -> list[float]:
    """variant ÷ base of `key`, round by round (each round measured both back to back)."""
    by_round = {r["round"]: r for r in runs_of(results, base, endpoint)}
    ratios = []
    for run_ in runs_of(results, variant, endpoint):
        other = by_round.get(run_["round"])
        if other and key(other) and key(run_) is not None:
            ratios.append(key(run_) / key(other))
    return ratios


def ratio_summary(ratios: list[float]) -> dict | None:
    if not ratios:
        return None
    return {"median": statistics.median(ratios), "low": min(ratios), "high": max(ratios)}
