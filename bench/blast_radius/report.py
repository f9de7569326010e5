"""The blast radius's report: summary.md (tables per scenario and endpoint, the verdict against the target),
results.json, requests.csv.gz (one row per request), the plots, and the README block (`--readme`)."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import gzip
import os
import sys
from pathlib import Path

from bench import writer
from bench.blast_radius.nginx_options import Variant
from bench.blast_radius.scenarios import FAULT_NOTES, LOADS, SIGSTOP_SECONDS, Timing
from bench.errors import BenchError
from bench.machine import command_version
from fleet.config import ROOT, nginx_binary

README = ROOT / "README.md"
README_BEGIN = "<!-- blast-radius:begin (written by scripts/blast-radius --readme) -->"
README_END = "<!-- blast-radius:end -->"
TARGET = "N >= 2, one process blocked: 0 failed requests and at most 1% delayed beyond 1 s"


TABLE_HEADER = (
    "N|mode|nginx|shedding|load|endpoint|requests|failed|> 100 ms|> 1 s|p50 ms|p99 ms|max ms|stalls (processes)"
)
COMPACT_HEADER = "N|mode|nginx|shedding|load|requests|failed|> 100 ms|> 1 s|max ms|stalls (processes)"


def table(results: list[dict]) -> str:
    rows = []
    for r in results:
        nginx = r["variant"] + FAULT_NOTES[r["fault_via"]]
        for path, s in r["endpoints"].items():
            rows.append(
                [
                    *scenario_cells(r, nginx),
                    f"`{path}`",
                    str(s["requests"]),
                    str(s["failed"]),
                    f"{s['over_100ms_pct']}%",
                    f"{s['over_1s_pct']}%",
                    str(s["p50_ms"]),
                    str(s["p99_ms"]),
                    str(s["max_ms"]),
                    stalls_cell(r),
                ]
            )
    return writer.table(TABLE_HEADER.split("|"), rows)


def scenario_cells(result: dict, nginx: str) -> list[str]:
    """The cells both tables start a row with: N, mode, the nginx option, shedding, load."""
    return [str(result["procs"]), result["mode"], nginx, shedding(result), result["load"]]


def stalls_cell(result: dict) -> str:
    return f"{result['stalls']} ({result['stalled_processes']})"


def shedding(result: dict) -> str:
    # A lone process never sheds (app/server.py): there is no other process to take the requests.
    if result["procs"] == 1:
        return "n/a (alone)"
    return "on" if result["shedding"] else "off"


def compact_table(results: list[dict]) -> str:
    """One row per scenario, /json and /db together: the comparison at a glance."""
    rows = []
    for r in results:
        stats = list(r["endpoints"].values())
        total = sum(s["requests"] for s in stats) or 1
        over_100 = sum(s["over_100ms_pct"] * s["requests"] for s in stats) / total
        over_1s = sum(s["over_1s_pct"] * s["requests"] for s in stats) / total
        nginx = f"`{r['variant']}`" + FAULT_NOTES[r["fault_via"]]
        rows.append(
            [
                *scenario_cells(r, nginx),
                str(total),
                str(sum(s["failed"] for s in stats)),
                f"{over_100:.2f}%",
                f"{over_1s:.2f}%",
                f"{max(s['max_ms'] for s in stats):.0f}",
                stalls_cell(r),
            ]
        )
    return writer.table(COMPACT_HEADER.split("|"), rows)


def verdict(shipped: list[dict]) -> str:
    several = [r for r in shipped if r["procs"] >= 2]
    if not several:
        return "Target: not measured (no run with N >= 2)."
    failed = sum(s["failed"] for r in several for s in r["endpoints"].values())
    worst = max(s["over_1s_pct"] for r in several for s in r["endpoints"].values())
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
    folder = writer.relative_to_readme(out, readme)
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
        writer.update_readme(readme, block, README_BEGIN, README_END)
    except ValueError as exc:
        raise BenchError(str(exc)) from None


def write_outputs(out: Path, results, samples, *, timing: Timing, meta: dict, options, plot: bool = True) -> None:
    out.mkdir(parents=True, exist_ok=True)
    writer.write_json(out / "results.json", {"meta": meta, "timing": dataclasses.asdict(timing), "scenarios": results})
    with gzip.open(out / "requests.csv.gz", "wt", newline="") as raw:
        out_rows = csv.writer(raw)
        out_rows.writerow(["scenario", "path", "at_s", "latency_ms", "status"])
        for key, rows in samples.items():
            for s in rows:
                out_rows.writerow([key, s.path, f"{s.at:.4f}", f"{1000 * s.latency:.2f}", s.status])
    (out / "summary.md").write_text(report(results, timing, meta, options))
    if plot:
        from bench.blast_radius.plot import plot_scenarios

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
