"""PNG plots of a run: throughput and latency by process count, one panel per endpoint, one line per mode and loop.

Reference ceilings are drawn as dashed horizontal lines: nginx alone on the HTTP-only endpoints, and on the
database endpoints the requests/s the database alone could serve (its ops/s ÷ operations per request).
"""

from __future__ import annotations

from pathlib import Path

from bench.endpoints import ENDPOINTS
from bench.report import endpoint_names
from bench.stats import find, variants

MODE_COLORS = {"motor": "tab:blue", "threads": "tab:orange", "async": "tab:green"}
LOOP_STYLES = {"asyncio": "-", "uvloop": "--"}


def write_plots(results: dict, folder: Path) -> list[Path]:
    # Imported here: matplotlib is a dev/bench dependency and slow to import; Agg needs no display.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measurements = results["measurements"]
    names = endpoint_names(measurements)
    if not names:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in ("throughput", "latency"):
        cols = min(3, len(names))
        rows = (len(names) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
        for ax, name in zip(axes.flat, names, strict=False):
            draw_panel(ax, kind, name, measurements)
        for ax in list(axes.flat)[len(names) :]:
            ax.set_visible(False)
        legend = {}
        for ax in axes.flat:
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                legend.setdefault(label, handle)
        fig.legend(
            legend.values(),
            legend.keys(),
            loc="lower center",
            ncol=min(4, len(legend)),
            fontsize="small",
            frameon=False,
        )
        fig.suptitle(title(kind, results))
        fig.tight_layout(rect=(0, 0.06, 1, 0.95))
        path = folder / f"{kind}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths


def title(kind: str, results: dict) -> str:
    info = results["machine"]
    what = "requests/s through nginx (median)" if kind == "throughput" else "latency p99 (solid) and p50 (faint), ms"
    return f"Tornado Fleet, {what} — {info['nproc']} CPUs, {info['date'][:10]}; † = bound by the embedded database"


def draw_panel(ax, kind: str, name: str, measurements: list[dict]) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    endpoint = ENDPOINTS[name]
    fleets = variants(measurements)
    for mode, loop in dict.fromkeys((mode, loop) for mode, loop, _ in fleets):
        points = []
        for procs in sorted({p for m, lp, p in fleets if (m, lp) == (mode, loop) and p is not None}):
            m = find(measurements, target="fleet", mode=mode, loop=loop, procs=procs, endpoint=name)
            if m:
                points.append((procs, m))
        if not points or (kind == "latency" and endpoint.depth > 1):
            continue
        xs = [p for p, _ in points]
        style = {"color": MODE_COLORS.get(mode), "linestyle": LOOP_STYLES.get(loop, ":"), "marker": "o"}
        if kind == "throughput":
            ax.plot(xs, [m["rps"] for _, m in points], label=f"{mode} / {loop}", **style)
            direct = find(measurements, target="direct", mode=mode, loop=loop, endpoint=name)
            if direct:
                ax.plot(
                    [1],
                    [direct["rps"]],
                    marker="x",
                    markersize=9,
                    color=style["color"],
                    linestyle="none",
                    label="one process, no nginx (x)",
                )
        else:
            p99 = [(x, m["p99_ms"]) for x, (_, m) in zip(xs, points, strict=True) if m["p99_ms"] is not None]
            p50 = [(x, m["p50_ms"]) for x, (_, m) in zip(xs, points, strict=True) if m["p50_ms"] is not None]
            if p99:
                ax.plot(*zip(*p99, strict=True), label=f"{mode} / {loop}", **style)
            if p50:
                ax.plot(*zip(*p50, strict=True), alpha=0.35, **style)
    if kind == "throughput":
        draw_ceiling(ax, endpoint, measurements)
        ax.set_ylim(bottom=0)
    else:
        ax.set_yscale("log")
        # Plain numbers at 1, 2, 5 x 10^n ms, not powers of ten.
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        if endpoint.depth > 1:
            ax.text(0.5, 0.5, "wrk does not time\npipelined requests", ha="center", transform=ax.transAxes)
    ax.set_title(f"{endpoint.path}" + (" †" if endpoint.db_ops else ""), fontsize="medium")
    ax.set_xlabel("app processes")
    ax.set_xticks(sorted({p for _, _, p in fleets if p is not None}))
    ax.grid(alpha=0.3)


def draw_ceiling(ax, endpoint, measurements: list[dict]) -> None:
    if endpoint.db_ops:
        db = find(measurements, target="db")
        if db:
            ax.axhline(db["rps"] / endpoint.db_ops, color="grey", linestyle=":", label="database alone (ceiling)")
        return
    nginx = find(measurements, target="nginx", endpoint="pipelined" if endpoint.depth > 1 else "plain")
    if not nginx:
        return
    highest = max((line.get_ydata().max() for line in ax.get_lines() if len(line.get_ydata())), default=0)
    if highest and nginx["rps"] > 2.5 * highest:
        # Far above the fleet: a line there would squash every other line to the bottom of the panel.
        text = f"nginx alone: {nginx['rps']:,.0f} req/s (off scale)"
        ax.text(0.02, 0.96, text, transform=ax.transAxes, va="top", fontsize="small")
    else:
        ax.axhline(nginx["rps"], color="black", linestyle=":", label="nginx alone (ceiling)")
