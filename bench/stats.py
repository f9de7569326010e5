"""From runs to figures: the medians a measurement reports, and lookups over a run's measurements.

A measurement is a plain dict (it goes to JSON and CSV as it is):
    target    "fleet" (through nginx), "direct" (one app process, no nginx), "nginx" (nginx alone), "db" (database
              alone); endpoint: a name from `endpoints.ENDPOINTS`, or the reference's own ("return 200", ...)
    mode, loop, procs   what was measured (None for references that have none)
    runs      one dict per run: rps, p50_ms, p99_ms, errors, requests, cpu_us (CPU µs per request by layer: nginx,
              app, db, wrk; bench/cpu.py; empty where not measured)
    rps, p50_ms, p99_ms, cpu_us the medians over the runs; errors, requests: the sums
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable


def summarize(runs: list[dict]) -> dict:
    """Medians over runs: one noisy run moves a median of three far less than it moves a mean."""
    if not runs:
        raise ValueError("no runs to summarize")
    return {
        "rps": statistics.median(r["rps"] for r in runs),
        "p50_ms": _median_or_none(r["p50_ms"] for r in runs),
        "p99_ms": _median_or_none(r["p99_ms"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
        # CPU µs per request per layer (bench/cpu.py), median over the runs that measured it.
        "cpu_us": {
            layer: statistics.median(r["cpu_us"][layer] for r in runs if layer in r.get("cpu_us", {}))
            for layer in sorted({layer for r in runs for layer in r.get("cpu_us", {})})
        },
    }


def percentile(values: Iterable[float], pct: float) -> float:
    """The nearest-rank percentile, `pct` in 0..100: the smallest value with at least pct% of the values at or below
    it, so always a latency that was observed; 0.0 for no values. The one rule for every percentile reported."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = math.ceil(pct * len(ordered) / 100)
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def _median_or_none(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def measurement(target: str, endpoint: str, runs: list[dict], *, mode=None, loop=None, procs=None, **extra) -> dict:
    return {
        "target": target,
        "endpoint": endpoint,
        "mode": mode,
        "loop": loop,
        "procs": procs,
        **extra,
        **summarize(runs),
        "runs": runs,
    }


def find(measurements: list[dict], **where) -> dict | None:
    """The first measurement whose fields equal `where` (None when the run did not measure it)."""
    for m in measurements:
        if all(m.get(k) == v for k, v in where.items()):
            return m
    return None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def variants(measurements: list[dict]) -> list[tuple[str, str, int]]:
    """(mode, loop, procs) of every fleet measured, in the order they were measured."""
    seen: dict[tuple, None] = {}
    for m in measurements:
        if m["target"] == "fleet":
            seen[(m["mode"], m["loop"], m["procs"])] = None
    return list(seen)


def total_errors(measurements: list[dict]) -> int:
    return sum(m["errors"] for m in measurements)
