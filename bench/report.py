"""The markdown report and the raw files (JSON with everything, CSV with one row per measurement).

`results` is what the runner saves as results.json: {"config": {...}, "machine": {...}, "measurements": [...]}
(see `bench.stats` for a measurement's fields). Everything here is a pure function of it, so a saved
results.json can be re-reported (`python -m bench throughput --report-only results.json`).
"""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path

from bench import machine
from bench.endpoints import DB_BOUND_NOTE, ENDPOINTS
from bench.stats import find, ratio, total_errors, variants
from bench.writer import fmt_ms, fmt_rate, fmt_ratio, table, write_json

DAGGER = "†"
LAYERS = ("nginx", "app", "db", "wrk")
CSV_FIELDS = (
    "target",
    "endpoint",
    "path",
    "mode",
    "loop",
    "procs",
    "rps",
    "p50_ms",
    "p99_ms",
    "errors",
    "requests",
    *(f"cpu_{layer}_us" for layer in LAYERS),
)


def fmt_served_us(m: dict) -> str:
    """CPU µs per request of what serves it, nginx + app processes (the database and wrk are in the raw files)."""
    cost = m.get("cpu_us") or {}
    if "app" not in cost:
        return "n/a"
    return f"{cost.get('nginx', 0) + cost['app']:,.0f}"


def endpoint_names(measurements: list[dict]) -> list[str]:
    """The endpoints measured through nginx, in the workload's order."""
    present = {m["endpoint"] for m in measurements if m["target"] == "fleet"}
    return [name for name in ENDPOINTS if name in present]


def column_title(name: str) -> str:
    endpoint = ENDPOINTS[name]
    return f"`{endpoint.path}`" + (f" {DAGGER}" if endpoint.db_ops else "")


def markdown(results: dict) -> str:
    config, measurements = results["config"], results["measurements"]
    parts = [
        "# Tornado Fleet on the TechEmpower workload",
        intro(config, results["machine"], measurements),
        "## References",
        references_table(measurements, config),
        "## Throughput through nginx (requests/s, median)",
        fleet_table(measurements, lambda m: fmt_rate(m["rps"]), errors_column=True),
        "## CPU per request through nginx: nginx + app processes (µs, median; per layer in results.csv)",
        fleet_table(measurements, fmt_served_us),
        "## Latency through nginx, p50 / p99 (ms, median)",
        fleet_table(measurements, lambda m: f"{fmt_ms(m['p50_ms'])} / {fmt_ms(m['p99_ms'])}"),
        "## Against the references",
        ratios_legend(),
        ratios_table(measurements),
        "## Headlines",
        headlines(measurements),
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def intro(config: dict, info: dict, measurements: list[dict]) -> str:
    errors = total_errors(measurements)
    return "\n".join(
        [
            machine.measured_line(info),
            "",
            f"wrk `-t{config['wrk_threads']} -c{config['connections']}` ({fewer_connections(config)}), "
            f"{config['runs']} run(s) of {config['duration_s']} s per cell after a {config['warmup_s']} s warm-up "
            f"(a run lasts up to twice that when the warm-up's p99 × 4 is longer); figures are medians over the "
            f"runs. `/plaintext` is pipelined {ENDPOINTS['plaintext'].depth} deep (wrk times a pipelined batch, not "
            f"each request, and often reports no distribution for it: n/a). Database: {config['database']}.",
            "",
            f"{DAGGER} {DB_BOUND_NOTE}.",
            "",
            f"**Failed requests** (socket errors + non-2xx answers), all cells: **{errors}**.",
        ]
    )


def fewer_connections(config: dict) -> str:
    heavy = [e for e in ENDPOINTS.values() if e.connections_divisor > 1]
    parts = [
        f"`-c{max(config['wrk_threads'], config['connections'] // e.connections_divisor)}` for `{e.path}`"
        for e in heavy
    ]
    return ", ".join(parts) + ": at full concurrency their latency nears a run's length"


def references_table(measurements: list[dict], config: dict) -> str:
    rows = []
    for m in measurements:
        if m["target"] == "nginx":
            what = "`return 200`" + (" pipelined" if m["endpoint"] == "pipelined" else "")
            rows.append(["nginx alone", what, fmt_rate(m["rps"]) + " req/s", *_latency_errors(m)])
        elif m["target"] == "db":
            what = f"PyMongo `find_one` by random `_id`, {config['db_threads']} threads {DAGGER}"
            rows.append(["database alone", what, fmt_rate(m["rps"]) + " ops/s", *_latency_errors(m)])
    for m in measurements:
        if m["target"] == "direct":
            what = f"`{ENDPOINTS[m['endpoint']].path}`, {m['mode']}, {m['loop']}"
            rows.append(["one app process, no nginx", what, fmt_rate(m["rps"]) + " req/s", *_latency_errors(m)])
    if not rows:
        return "No reference was measured."
    return table(["reference", "what", "throughput", "p50 ms", "p99 ms", "errors"], rows)


def _latency_errors(m: dict) -> list[str]:
    return [fmt_ms(m["p50_ms"]), fmt_ms(m["p99_ms"]), str(m["errors"])]


def fleet_table(measurements: list[dict], cell, errors_column: bool = False) -> str:
    names = endpoint_names(measurements)
    header = ["mode", "loop", "procs", *[column_title(n) for n in names]] + (["errors"] if errors_column else [])
    rows = []
    for mode, loop, procs in variants(measurements):
        row = [mode, loop, str(procs if procs is not None else "?")]
        errors = 0
        for name in names:
            m = find(measurements, target="fleet", mode=mode, loop=loop, procs=procs, endpoint=name)
            row.append(cell(m) if m else "—")
            errors += m["errors"] if m else 0
        rows.append(row + ([str(errors)] if errors_column else []))
    return table(header, rows)


def ratios_legend() -> str:
    ops = ", ".join(f"`{e.path}` {e.db_ops}" for e in ENDPOINTS.values() if e.db_ops)
    return (
        "`÷ nginx`: requests/s ÷ nginx alone's (pipelined for `/plaintext`): how close the fleet gets to the proxy "
        "layer's ceiling. `÷ direct`: ÷ one process of the same mode and loop hit without nginx (at 1 process, the "
        "cost of the extra hop). `÷ db`: the database operations/s the row implies (requests/s × operations per "
        f"request: {ops}) ÷ the database alone's: the share of the database's ceiling the endpoint reaches."
    )


def ratio_columns(measurements: list[dict]) -> list[tuple[str, str]]:
    """(endpoint, reference) pairs that have a figure in this run."""
    columns = []
    for name in endpoint_names(measurements):
        endpoint = ENDPOINTS[name]
        if not endpoint.db_ops and any(m["target"] == "nginx" for m in measurements):
            columns.append((name, "nginx"))
        if find(measurements, target="direct", endpoint=name):
            columns.append((name, "direct"))
        if endpoint.db_ops and any(m["target"] == "db" for m in measurements):
            columns.append((name, "db"))
    return columns


def reference_ratio(measurements: list[dict], m: dict, reference: str) -> float | None:
    endpoint = ENDPOINTS[m["endpoint"]]
    if reference == "nginx":
        ref = find(measurements, target="nginx", endpoint="pipelined" if endpoint.depth > 1 else "plain")
        return ratio(m["rps"], ref and ref["rps"])
    if reference == "direct":
        ref = find(measurements, target="direct", endpoint=m["endpoint"], mode=m["mode"], loop=m["loop"])
        return ratio(m["rps"], ref and ref["rps"])
    ref = find(measurements, target="db")
    return ratio(m["rps"] * endpoint.db_ops, ref and ref["rps"])


def ratios_table(measurements: list[dict]) -> str:
    columns = ratio_columns(measurements)
    if not columns:
        return "No reference to compare with."
    header = ["mode", "loop", "procs", *[f"`{ENDPOINTS[n].path}` ÷ {ref}" for n, ref in columns]]
    rows = []
    for mode, loop, procs in variants(measurements):
        row = [mode, loop, str(procs if procs is not None else "?")]
        for name, ref in columns:
            m = find(measurements, target="fleet", mode=mode, loop=loop, procs=procs, endpoint=name)
            row.append(fmt_ratio(reference_ratio(measurements, m, ref)) if m else "—")
        rows.append(row)
    return table(header, rows)


def headlines(measurements: list[dict]) -> str:
    parts = [
        nginx_hop_line(measurements),
        scaling_line(measurements),
        database_share_line(measurements),
        modes_table(measurements),
    ]
    parts.append(loops_table(measurements))
    return "\n\n".join(p for p in parts if p)


def nginx_hop_line(measurements: list[dict]) -> str:
    """/json through a 1-process fleet ÷ the same process without nginx, per mode and loop."""
    pairs = []
    for mode, loop, procs in variants(measurements):
        m = find(measurements, target="fleet", mode=mode, loop=loop, procs=procs, endpoint="json")
        if procs == 1 and m:
            value = reference_ratio(measurements, m, "direct")
            if value is not None:
                pairs.append((f"{mode}/{loop}", value))
    if not pairs:
        return ""
    each = ", ".join(f"{label} {fmt_ratio(v)}" for label, v in pairs)
    median = statistics.median(v for _, v in pairs)
    return (
        f"- **The nginx hop** (`/json`, 1 process through nginx ÷ the same process direct): "
        f"median {fmt_ratio(median)} ({each})."
    )


def scaling_line(measurements: list[dict]) -> str:
    """/json at the most processes ÷ at 1 process, through nginx, per mode and loop."""
    fleets = variants(measurements)
    counts = sorted({p for _, _, p in fleets if p is not None})
    if len(counts) < 2 or counts[0] != 1:
        return ""
    top = counts[-1]
    pairs = []
    for mode, loop in dict.fromkeys((mode, loop) for mode, loop, _ in fleets):
        one = find(measurements, target="fleet", mode=mode, loop=loop, procs=1, endpoint="json")
        many = find(measurements, target="fleet", mode=mode, loop=loop, procs=top, endpoint="json")
        if one and many:
            pairs.append((f"{mode}/{loop}", ratio(many["rps"], one["rps"])))
    if not pairs:
        return ""
    each = ", ".join(f"{label} {fmt_ratio(v)}" for label, v in pairs)
    return f"- **Processes** (`/json` through nginx, {top} processes ÷ 1): {each}."


def modes_table(measurements: list[dict]) -> str:
    """Each mode's requests/s on the database endpoints ÷ the first mode's, at the same loop and process count."""
    fleets = variants(measurements)
    modes = list(dict.fromkeys(mode for mode, _, _ in fleets))
    names = [n for n in endpoint_names(measurements) if ENDPOINTS[n].db_ops]
    if len(modes) < 2 or not names:
        return ""
    base = modes[0]
    header = ["endpoint", "loop", "procs", f"{base} req/s", *[f"{mode} ÷ {base}" for mode in modes[1:]]]
    rows = []
    per_mode: dict[tuple[str, str], list[float | None]] = {}
    for name in names:
        for loop, procs in dict.fromkeys((loop, procs) for _, loop, procs in fleets):
            ref = find(measurements, target="fleet", mode=base, loop=loop, procs=procs, endpoint=name)
            row = [f"`{ENDPOINTS[name].path}` {DAGGER}", loop, str(procs), fmt_rate(ref and ref["rps"])]
            for mode in modes[1:]:
                m = find(measurements, target="fleet", mode=mode, loop=loop, procs=procs, endpoint=name)
                value = ratio(m and m["rps"], ref and ref["rps"])
                per_mode.setdefault((mode, name), []).append(value)
                row.append(fmt_ratio(value))
            rows.append(row)
    summary = "; ".join(
        f"{mode} ÷ {base} on `{ENDPOINTS[name].path}` {spread(values)}" for (mode, name), values in per_mode.items()
    )
    return (
        f"**Database modes** (requests/s ÷ {base}'s, same loop and processes). Median (range) over the cells: "
        f"{summary}.\n\n" + table(header, rows)
    )


def spread(values: list[float | None]) -> str:
    """Median and range of ratios: "1.60x (0.33x-4.07x)", with the report's own signs."""
    known = [v for v in values if v is not None]
    if not known:
        return "n/a"
    return f"{fmt_ratio(statistics.median(known))} ({fmt_ratio(min(known))}–{fmt_ratio(max(known))})"


def database_share_line(measurements: list[dict]) -> str:
    """How much of the database's own ceiling each database endpoint reaches, over every fleet cell."""
    parts = []
    for name in endpoint_names(measurements):
        if ENDPOINTS[name].db_ops:
            values = [
                reference_ratio(measurements, m, "db")
                for m in measurements
                if m["target"] == "fleet" and m["endpoint"] == name
            ]
            if any(v is not None for v in values):
                parts.append(f"`{ENDPOINTS[name].path}` {spread(values)}")
    if not parts:
        return ""
    return (
        "- **Share of the database's ceiling** (database operations/s implied ÷ the database alone's, median and "
        f"range over the cells): {', '.join(parts)}."
    )


def loops_table(measurements: list[dict]) -> str:
    """uvloop's requests/s ÷ asyncio's, same mode, processes and endpoint."""
    fleets = variants(measurements)
    if not {"asyncio", "uvloop"} <= {loop for _, loop, _ in fleets}:
        return ""
    names = endpoint_names(measurements)
    rows = []
    per_endpoint: dict[str, list[float | None]] = {name: [] for name in names}
    for mode, procs in dict.fromkeys((mode, procs) for mode, _, procs in fleets):
        row = [mode, str(procs)]
        for name in names:
            slow = find(measurements, target="fleet", mode=mode, loop="asyncio", procs=procs, endpoint=name)
            fast = find(measurements, target="fleet", mode=mode, loop="uvloop", procs=procs, endpoint=name)
            value = ratio(fast and fast["rps"], slow and slow["rps"])
            per_endpoint[name].append(value)
            row.append(fmt_ratio(value))
        rows.append(row)
    header = ["mode", "procs", *[column_title(n) for n in names]]
    summary = "; ".join(f"`{ENDPOINTS[n].path}` {spread(values)}" for n, values in per_endpoint.items())
    return (
        f"**uvloop ÷ asyncio** (requests/s, same mode and processes). Median (range) over the cells: {summary}.\n\n"
        + table(header, rows)
    )


README_BEGIN = "<!-- bench:begin (written by scripts/bench --readme) -->"
README_END = "<!-- bench:end -->"


def readme_block(results: dict, images: list[str]) -> str:
    """The README's "latest results": the intro, the throughput table, the headlines and the plots."""
    measurements = results["measurements"]
    parts = [
        intro(results["config"], results["machine"], measurements),
        "Requests/s through nginx (median):",
        fleet_table(measurements, lambda m: fmt_rate(m["rps"]), errors_column=True),
        "CPU µs per request through nginx, nginx + app processes (median; each layer in results.csv):",
        fleet_table(measurements, fmt_served_us),
        "References:",
        references_table(measurements, results["config"]),
        headlines(measurements),
        *[f"![{Path(image).stem}]({image})" for image in images],
    ]
    return "\n\n".join(p for p in parts if p)


def write_raw(results: dict, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    json_path = write_json(folder / "results.json", results)
    csv_path = folder / "results.csv"
    csv_path.write_text(to_csv(results["measurements"]))
    return [json_path, csv_path]


def to_csv(measurements: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for m in measurements:
        cost = {f"cpu_{layer}_us": round(v, 1) for layer, v in (m.get("cpu_us") or {}).items()}
        writer.writerow({**m, **cost, "path": ENDPOINTS[m["endpoint"]].path if m["endpoint"] in ENDPOINTS else ""})
    return out.getvalue()
