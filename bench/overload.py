"""scripts/bench --overload: open-loop load through nginx ramped from 0.5x to 4x the fleet's measured capacity.

For each ramp (a database mode, a path, the fleet's settings) on a fleet of its own:
1. **capacity**: a closed loop (`CAPACITY_CONNECTIONS` connections, each sending as soon as it is answered) for
   `capacity_s`; capacity is its rate of 2xx answers;
2. **unloaded**: an open loop at `UNLOADED_FACTOR` x capacity: the latency the overload is compared with;
3. **ramp**: open loops at each of `factors` x capacity (3x for `hold_s`, the others for `step_s`), back to back;
4. **recovery**: right after the last step, the unloaded rate again; its p99 in the windows 0-1 s, 1-2 s and
   2-4 s after the overload ended.

Open loop (bench/openloop.py): request i is due at i / rate whatever happened before, and its latency counts
from then, so a generator that falls behind shows up as latency, never as a lower rate. The load is split over
`generators` processes (one asyncio loop is not enough for 4x capacity); they share the machine's CPUs with the
fleet and the database, so a generator falling behind adds to the latencies reported, never hides them.

Per step: offered rate, goodput (2xx/s), refused (503 and 429), failed (anything else, socket errors and
client timeouts included), p50/p99 of accepted requests, p99 of refusals, and each app process's largest RSS
(/proc/PID/status VmRSS, sampled every 0.25 s) against its RSS before the ramp.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from bench import machine, openloop, writer
from bench.errors import BenchError
from bench.stats import percentile
from fleet.probe import request
from fleet.sandbox import booted, fleet_config
from fleet.supervisor import app_port

README_BEGIN = "<!-- overload:begin (written by scripts/bench --overload --readme) -->"
README_END = "<!-- overload:end -->"
CAPACITY_CONNECTIONS = 64
UNLOADED_FACTOR = 0.25
REFUSED = (503, 429)
RSS_INTERVAL = 0.25
RECOVERY_WINDOWS = ((0.0, 1.0), (1.0, 2.0), (2.0, 4.0))


@dataclasses.dataclass(frozen=True)
class Ramp:
    name: str
    mode: str
    path: str
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)


DEFAULT_RAMPS = (
    Ramp("async /db", "async", "/db"),
    # The same overload with a bound sized for latency rather than for a 512-client burst (README "Overload").
    Ramp("async /db, max 32 in flight", "async", "/db", {"FLEET_MAX_IN_FLIGHT": "32"}),
    Ramp("motor /db", "motor", "/db"),
    Ramp("async API", "async", "/api/notes?limit=10"),
    Ramp("motor API", "motor", "/api/notes?limit=10"),
)


@dataclasses.dataclass(frozen=True)
class OverloadPlan:
    ramps: tuple[Ramp, ...] = DEFAULT_RAMPS
    procs: int = 2
    factors: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0, 4.0)
    step_s: float = 8.0
    # The target is stated for 30 s at 3x capacity.
    hold_factor: float = 3.0
    hold_s: float = 30.0
    capacity_s: float = 5.0
    unloaded_s: float = 5.0
    recovery_s: float = 4.0
    generators: int = 2
    # Per ramp, split over the generators: well above what nginx holds in flight (max_conns x N) plus the refusals
    # in transit, so a due request never waits for a free connection of the generator.
    connections: int = 1600
    request_timeout_s: float = 20.0

    def step_seconds(self, factor: float) -> float:
        return self.hold_s if factor == self.hold_factor else self.step_s

    def estimate_seconds(self) -> float:
        per_ramp = self.capacity_s + self.unloaded_s + self.recovery_s + sum(map(self.step_seconds, self.factors))
        return len(self.ramps) * (per_ramp + 15)  # + booting and stopping a fleet


# -- load -------------------------------------------------------------------------------------------------------


def _generate(port: int, path: str, *, t0: float, duration: float, rate: float, connections: int, timeout: float):
    """One generator process's share, as plain tuples (at, latency, status)."""
    samples = asyncio.run(
        openloop.run_load(
            port, path, t0=t0, duration=duration, rate=rate, connections=connections, request_timeout=timeout
        )
    )
    return [(s.at, s.latency, s.status) for s in samples]


def load(pool, plan: OverloadPlan, port: int, path: str, *, rate: float, duration: float) -> list[tuple]:
    """Open loop at `rate` (0: closed loop) for `duration`, split over the generator processes."""
    count = plan.generators if rate > 0 else 1
    connections = max(1, plan.connections // count) if rate > 0 else CAPACITY_CONNECTIONS
    t0 = time.monotonic() + 0.5  # CLOCK_MONOTONIC is the same in every process
    futures = [
        pool.submit(
            _generate,
            port,
            path,
            t0=t0,
            duration=duration,
            rate=rate / count,
            connections=connections,
            timeout=plan.request_timeout_s,
        )
        for _ in range(count)
    ]
    samples = [sample for future in futures for sample in future.result()]
    samples.sort()
    return samples


def summarize(samples: list[tuple], duration: float, offered: float) -> dict:
    accepted = [latency for _, latency, status in samples if 200 <= status < 300]
    refused = [latency for _, latency, status in samples if status in REFUSED]
    failed = [status for _, _, status in samples if not (200 <= status < 300 or status in REFUSED)]
    ms = 1000
    return {
        "offered_rps": round(offered, 1),
        "goodput_rps": round(len(accepted) / duration, 1),
        "accepted": len(accepted),
        "refused": len(refused),
        "failed": len(failed),
        "failed_statuses": sorted({str(s) for s in failed}),
        "p50_ms": round(ms * percentile(accepted, 50), 1) if accepted else None,
        "p99_ms": round(ms * percentile(accepted, 99), 1) if accepted else None,
        "refusal_p99_ms": round(ms * percentile(refused, 99), 1) if refused else None,
    }


def recovery_windows(samples: list[tuple]) -> list[dict]:
    windows = []
    for start, end in RECOVERY_WINDOWS:
        inside = [(at, latency, status) for at, latency, status in samples if start <= at < end]
        accepted = [latency for _, latency, status in inside if 200 <= status < 300]
        windows.append(
            {
                "window_s": [start, end],
                "p99_ms": round(1000 * percentile(accepted, 99), 1) if accepted else None,
                "not_2xx": sum(1 for _, _, status in inside if not 200 <= status < 300),
            }
        )
    return windows


# -- memory -----------------------------------------------------------------------------------------------------


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class RssSampler:
    """The largest RSS of each process while the block runs (a thread reading /proc every RSS_INTERVAL)."""

    def __init__(self, pids: Mapping[str, int]):
        self.pids = dict(pids)
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while True:
            for name, pid in self.pids.items():
                value = rss_kib(pid)
                if value is not None:
                    self.peak[name] = max(self.peak.get(name, 0), value)
            if self._stop.wait(RSS_INTERVAL):
                return


# -- one ramp ---------------------------------------------------------------------------------------------------


def run_ramp(pool, plan: OverloadPlan, ramp: Ramp, progress: Callable[[str], None]) -> dict:
    config = fleet_config(ramp.mode, plan.procs, prefix="overload-", **ramp.env)
    with booted(config) as supervisor:
        port = config.port
        if ramp.path.startswith("/api/notes"):
            for i in range(20):  # a page of notes to list
                request("POST", f"{config.url}/api/notes", {"title": f"overload {i}", "body": "x" * 200})
        apps = {f"app-{app_port(p)}": p["pid"] for p in supervisor.app_processes()}
        settings = config.app_settings()
        load(pool, plan, port, ramp.path, rate=0, duration=2)  # warm-up: connections, caches, the driver's pool
        capacity_samples = load(pool, plan, port, ramp.path, rate=0, duration=plan.capacity_s)
        capacity = summarize(capacity_samples, plan.capacity_s, 0)["goodput_rps"]
        if capacity <= 0:
            raise BenchError(f"{ramp.name}: no request succeeded while measuring capacity")
        progress(f"  {ramp.name}: capacity {capacity:.0f} req/s")
        unloaded_rate = UNLOADED_FACTOR * capacity
        unloaded = summarize(
            load(pool, plan, port, ramp.path, rate=unloaded_rate, duration=plan.unloaded_s),
            plan.unloaded_s,
            unloaded_rate,
        )
        rss_before = {name: rss_kib(pid) for name, pid in apps.items()}
        steps = []
        for factor in plan.factors:
            seconds, rate = plan.step_seconds(factor), factor * capacity
            with RssSampler(apps) as rss:
                step = summarize(load(pool, plan, port, ramp.path, rate=rate, duration=seconds), seconds, rate)
            step.update(factor=factor, seconds=seconds, rss_peak_kib=rss.peak)
            steps.append(step)
            progress(
                f"  {ramp.name}: {factor:g}x ({rate:.0f}/s for {seconds:g} s): goodput {step['goodput_rps']:.0f}/s, "
                f"p99 {step['p99_ms']} ms, refused {step['refused']}, failed {step['failed']}"
            )
        recovery = load(pool, plan, port, ramp.path, rate=unloaded_rate, duration=plan.recovery_s)
        return {
            "name": ramp.name,
            "mode": ramp.mode,
            "path": ramp.path,
            "env": dict(ramp.env),
            "max_in_flight": settings.max_in_flight,
            "capacity_rps": capacity,
            "unloaded": unloaded,
            "steps": steps,
            "recovery": recovery_windows(recovery),
            "rss_before_kib": rss_before,
        }


def run(plan: OverloadPlan, progress: Callable[[str], None] = print) -> dict:
    """Every ramp in turn. One whose fleet cannot be booted or measured is recorded in `failed_ramps` and the
    next one runs; BenchError (with what was measured) only if none could be."""
    results = {"machine": machine.machine_info(), "config": dataclasses.asdict(plan), "ramps": [], "failed_ramps": []}
    with concurrent.futures.ProcessPoolExecutor(plan.generators) as pool:
        for ramp in plan.ramps:
            progress(f"overload: {ramp.name} ({ramp.mode}, N = {plan.procs})")
            try:
                results["ramps"].append(run_ramp(pool, plan, ramp, progress))
            except (RuntimeError, OSError) as exc:  # FleetError and BenchError are RuntimeErrors
                progress(f"  {ramp.name}: could not be measured: {exc}")
                results["failed_ramps"].append({"name": ramp.name, "error": str(exc)[:500]})
    if not results["ramps"]:
        raise BenchError("no ramp could be measured: " + "; ".join(f["error"] for f in results["failed_ramps"]))
    return results


# -- report -----------------------------------------------------------------------------------------------------


def growth(ramp: dict, step: dict) -> float | None:
    """Largest RSS growth of any process during `step`, as a fraction of its RSS before the ramp."""
    ratios = [
        step["rss_peak_kib"][name] / before - 1
        for name, before in ramp["rss_before_kib"].items()
        if before and name in step["rss_peak_kib"]
    ]
    return max(ratios) if ratios else None


def fmt(value, suffix: str = "") -> str:
    return "—" if value is None else f"{value:g}{suffix}"


def markdown(results: dict) -> str:
    parts = [
        f"Machine: {machine.summary_line(results['machine'])}. N = {results['config']['procs']} processes, the "
        "embedded database (one Python process: it bounds every database endpoint here; a real mongod is much "
        "faster). Capacity: 2xx/s of a closed loop of 64 connections; each step an open loop at a multiple of it."
    ]
    for ramp in results["ramps"]:
        base = ramp["unloaded"]
        rows = []
        for step in ramp["steps"]:
            share = step["goodput_rps"] / ramp["capacity_rps"] if ramp["capacity_rps"] else None
            rss = growth(ramp, step)
            rows.append(
                [
                    f"{step['factor']:g}x ({step['seconds']:g} s)",
                    f"{step['offered_rps']:.0f}",
                    f"{step['goodput_rps']:.0f} ({share:.0%})" if share is not None else "—",
                    fmt(step["p50_ms"]),
                    fmt(step["p99_ms"]),
                    str(step["refused"]),
                    fmt(step["refusal_p99_ms"]),
                    str(step["failed"]) + (f" ({', '.join(step['failed_statuses'])})" if step["failed"] else ""),
                    f"{rss:+.0%}" if rss is not None else "—",
                ]
            )
        recovery = ", ".join(
            f"{w['window_s'][0]:g}-{w['window_s'][1]:g} s: {fmt(w['p99_ms'], ' ms')}" for w in ramp["recovery"]
        )
        parts += [
            f"**{ramp['name']}** (FLEET_MAX_IN_FLIGHT={ramp['max_in_flight']}): capacity "
            f"{ramp['capacity_rps']:.0f} req/s; unloaded ({UNLOADED_FACTOR:g}x) p50 {fmt(base['p50_ms'])} ms, "
            f"p99 {fmt(base['p99_ms'])} ms.",
            writer.table(
                [
                    "load",
                    "offered/s",
                    "goodput/s (of capacity)",
                    "p50 ms",
                    "p99 ms",
                    "refused",
                    "refusal p99 ms",
                    "failed",
                    "RSS growth",
                ],
                rows,
            ),
            f"After the load (p99 of accepted requests at {UNLOADED_FACTOR:g}x): {recovery}.",
        ]
    for failed in results.get("failed_ramps", []):
        parts.append(f"**{failed['name']}**: not measured ({failed['error']}).")
    return "\n\n".join(parts) + "\n"


def plot(results: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (good, lat) = plt.subplots(1, 2, figsize=(11, 4))
    for ramp in results["ramps"]:
        factors = [s["factor"] for s in ramp["steps"]]
        good.plot(
            factors, [s["goodput_rps"] / ramp["capacity_rps"] for s in ramp["steps"]], marker="o", label=ramp["name"]
        )
        (line,) = lat.plot(
            factors, [s["p99_ms"] for s in ramp["steps"]], marker="o", label=f"{ramp['name']}: accepted p99"
        )
        lat.plot(
            factors, [s["refusal_p99_ms"] for s in ramp["steps"]], marker="x", linestyle=":", color=line.get_color()
        )
    good.plot([0.5, 4], [1, 1], color="grey", linestyle="--", linewidth=0.8)
    good.set(xlabel="offered load (x capacity)", ylabel="goodput (x capacity)", title="Goodput", ylim=(0, None))
    lat.set(xlabel="offered load (x capacity)", ylabel="ms (log)", title="p99: accepted (o), refused (x)", yscale="log")
    good.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def failed_total(results: dict) -> int:
    return sum(step["failed"] for ramp in results["ramps"] for step in ramp["steps"])


def write(results: dict, out: Path, with_plot: bool = True) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [writer.write_json(out / "overload.json", results), out / "overload.md"]
    written[1].write_text(markdown(results))
    if with_plot:
        written.append(plot(results, out / "overload.png"))
    return written


def readme_block(results: dict, image: str | None) -> str:
    return markdown(results) + (f"\n![goodput and p99 under overload]({image})\n" if image else "")


def default_plan(quick: bool = False) -> OverloadPlan:
    if not quick:
        return OverloadPlan()
    # A smoke test: one short ramp.
    return OverloadPlan(
        ramps=DEFAULT_RAMPS[:1], factors=(0.5, 2.0), step_s=2, hold_s=2, capacity_s=2, unloaded_s=2, recovery_s=2
    )
