"""The blast-radius plots: latency of every request over time, one panel per scenario, block intervals shaded.

matplotlib is a dev/benchmark dependency (requirements-dev.txt), imported only when a plot is drawn.
"""

from __future__ import annotations

from pathlib import Path

from bench.openloop import Sample

COLORS = {"/json": "tab:blue", "/db": "tab:orange"}


def plot_scenarios(results: list[dict], samples: dict[str, list[Sample]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not results:
        return
    fig, axes = plt.subplots(len(results), 1, figsize=(11, 1.9 * len(results) + 0.8), sharex=True, squeeze=False)
    for ax, result in zip(axes[:, 0], results, strict=True):
        for block in result["blocks"]:
            ax.axvspan(block["start"], block["end"], color="0.85", zorder=0)
        rows = samples[result["key"]]
        for path_name, color in COLORS.items():
            ok = [s for s in rows if s.path == path_name and s.status == 200]
            ax.scatter([s.at for s in ok], [max(1000 * s.latency, 0.1) for s in ok], s=2, color=color, label=path_name)
        failed = [s for s in rows if s.status != 200]
        if failed:
            ax.scatter(
                [s.at for s in failed], [max(1000 * s.latency, 0.1) for s in failed], s=14, marker="x", color="red"
            )
        ax.set_yscale("log")
        ax.set_ylim(0.5, 20_000)
        ax.axhline(1000, color="0.5", linewidth=0.6, linestyle="--")
        ax.set_ylabel("ms")
        stats = result["endpoints"]
        summary = ", ".join(f"{p}: {s['failed']} failed, >1 s {s['over_1s_pct']}%" for p, s in stats.items())
        ax.set_title(f"{result['key']}   ({summary})", fontsize=8, loc="left")
    axes[-1, 0].set_xlabel("seconds (grey: the process's event loop is blocked; red x: failed request)")
    axes[0, 0].legend(loc="upper right", fontsize=7, markerscale=4)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
