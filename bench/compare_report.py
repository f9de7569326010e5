"""The report of `scripts/bench --compare` (bench/compare.py): tables, targets and a plot of the cost per
request per layer."""

from __future__ import annotations

from pathlib import Path

from bench import compare
from bench.compare import FEATURES_OFF, FLEET, PLAIN
from bench.endpoints import ENDPOINTS
from bench.machine import measured_line
from bench.writer import fmt_rate, fmt_ratio, table, write_json

README_BEGIN = "<!-- compare:begin (written by scripts/bench --compare --readme) -->"
README_END = "<!-- compare:end -->"
# The targets (README "Performance"), fleet ÷ plain with every feature on.
RPS_TARGETS = {"json": 0.9, "plaintext": 0.9}
RPS_TARGET_DEFAULT = 1.0
CPU_TARGET = 1.15
FEATURES_TARGET = 0.05


def fmt_us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def fmt_range(ratios: dict | None) -> str:
    if ratios is None:
        return "n/a"
    return f"{fmt_ratio(ratios['median'])} ({ratios['low']:.2f}–{ratios['high']:.2f})"


def endpoints_of(results: dict) -> list[str]:
    seen = {r["endpoint"] for r in results["runs"]}
    return [name for name in ENDPOINTS if name in seen]


def comparison_rows(results: dict) -> list[list[str]]:
    rows = []
    for endpoint in endpoints_of(results):
        plain, fleet = compare.summary(results, PLAIN, endpoint), compare.summary(results, FLEET, endpoint)
        if plain is None or fleet is None:
            continue
        rps = compare.ratio_summary(compare.round_ratios(results, FLEET, PLAIN, endpoint, lambda r: r["rps"]))
        served = compare.ratio_summary(compare.round_ratios(results, FLEET, PLAIN, endpoint, compare.served_us))
        rows.append(
            [
                endpoint_title(endpoint),
                fmt_rate(plain["rps"]),
                fmt_rate(fleet["rps"]),
                fmt_range(rps),
                fmt_us(plain["cpu_us"].get("app")),
                fmt_us(fleet["cpu_us"].get("nginx")),
                fmt_us(fleet["cpu_us"].get("app")),
                fmt_range(served),
                f"{fmt_us(plain['cpu_us'].get('db'))} / {fmt_us(fleet['cpu_us'].get('db'))}",
                f"{fmt_us(plain['cpu_us'].get('wrk'))} / {fmt_us(fleet['cpu_us'].get('wrk'))}",
                f"{plain['errors']} / {fleet['errors']}",
            ]
        )
    return rows


def features_rows(results: dict) -> list[list[str]]:
    rows = []
    for endpoint in endpoints_of(results):
        fleet = compare.summary(results, FLEET, endpoint)
        for variant in FEATURES_OFF:
            off = compare.summary(results, variant, endpoint)
            if fleet is None or off is None:
                continue
            rps = compare.ratio_summary(compare.round_ratios(results, variant, FLEET, endpoint, lambda r: r["rps"]))
            saved = fleet["served_us"] - off["served_us"]
            rows.append(
                [
                    variant,
                    endpoint_title(endpoint),
                    fmt_range(rps),
                    fmt_us(off["served_us"]),
                    f"{saved:+,.0f} µs ({saved / fleet['served_us']:+.1%})" if fleet["served_us"] else "n/a",
                ]
            )
    return rows


# A verdict stands only if the rounds agree within this (±10% around the median): otherwise the run cannot tell.
RESOLUTION = 0.10


def verdict(ratios: dict, met: bool, missed: str) -> str:
    said = "met" if met else missed
    if ratios["high"] - ratios["low"] > 2 * RESOLUTION * ratios["median"]:
        return f"{said}, but not resolved: the rounds ranged {ratios['low']:.2f}–{ratios['high']:.2f}"
    return said


def target_lines(results: dict) -> list[str]:
    lines = []
    for endpoint in endpoints_of(results):
        rps = compare.ratio_summary(compare.round_ratios(results, FLEET, PLAIN, endpoint, lambda r: r["rps"]))
        served = compare.ratio_summary(compare.round_ratios(results, FLEET, PLAIN, endpoint, compare.served_us))
        if rps is None or served is None:
            continue
        want = RPS_TARGETS.get(endpoint, RPS_TARGET_DEFAULT)
        verdict_rps = verdict(rps, rps["median"] >= want, f"missed by {want - rps['median']:.2f}")
        verdict_cpu = verdict(served, served["median"] <= CPU_TARGET, f"missed by {served['median'] - CPU_TARGET:.2f}")
        lines.append(
            f"- `{ENDPOINTS[endpoint].path}`: req/s {rps['median']:.2f}× plain (target ≥ {want:.1f}×: {verdict_rps}); "
            f"nginx + app CPU {served['median']:.2f}× plain's (target ≤ {CPU_TARGET:.2f}×: {verdict_cpu})"
        )
    everything = [
        compare.ratio_summary(compare.round_ratios(results, "no features", FLEET, e, lambda r: r["rps"]))
        for e in endpoints_of(results)
    ]
    everything = [r for r in everything if r]
    if everything:
        worst = max(r["median"] for r in everything) - 1
        features_verdict = "met" if worst <= FEATURES_TARGET else f"missed by {worst - FEATURES_TARGET:.1%}"
        lines.append(
            f"- every feature together costs at most {max(worst, 0):.1%} of throughput "
            f"(target ≤ {FEATURES_TARGET:.0%}: {features_verdict})"
        )
    return lines


def endpoint_title(endpoint: str) -> str:
    spec = ENDPOINTS[endpoint]
    return f"`{spec.path}`" + (" †" if spec.db_ops else "")


def markdown(results: dict) -> str:
    config = results["config"]
    parts = [
        measured_line(results["machine"]),
        f"Side by side in one run: plain Tornado ({config['procs']} processes forked with `SO_REUSEPORT`, uvloop, "
        f"no nginx, no features) and the fleet ({config['procs']} processes behind nginx, every feature on), "
        f"`{config['mode']}` mode, one embedded database. wrk `-t{config['wrk_threads']} -c{config['connections']}` "
        f"(÷4 for `/queries` and `/updates`), {config['rounds']} rounds of {config['duration_s']} s per endpoint, "
        "alternating, the order rotating each round. Medians over the rounds; a ratio is the median of the "
        "per-round ratios, with their range (how well it repeats). CPU µs per request from /proc: user + system "
        "time of each layer ÷ requests served. † database endpoints are bounded by the embedded database.",
        table(
            [
                "endpoint",
                "plain req/s",
                "fleet req/s",
                "fleet ÷ plain",
                "plain app µs",
                "fleet nginx µs",
                "fleet app µs",
                "fleet (nginx+app) ÷ plain",
                "db µs plain / fleet",
                "wrk µs plain / fleet",
                "errors plain / fleet",
            ],
            comparison_rows(results),
        ),
        "Targets (issue: N = 2, every feature on, through nginx):",
        "\n".join(target_lines(results)),
    ]
    features = features_rows(results)
    if features:
        parts += [
            "What each feature costs (a fleet with it turned off, measured in the same rounds):",
            table(["fleet with", "endpoint", "req/s ÷ full fleet", "nginx+app µs", "CPU saved"], features),
        ]
    return "\n\n".join(parts) + "\n"


def write(results: dict, out: Path, with_plots: bool = True) -> list[Path]:
    """compare-MODE.json/.md/.png in `out`: one set per database mode, so runs of different modes sit side by side."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"compare-{results['config']['mode']}"
    written = [write_json(out / f"{stem}.json", results), out / f"{stem}.md"]
    written[1].write_text(markdown(results))
    if with_plots:
        written.append(plot(results, out / f"{stem}.png"))
    return written


def plot(results: dict, path: Path) -> Path:
    """CPU µs per request by layer, plain beside fleet, one panel per endpoint (scales differ 100-fold)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    endpoints = endpoints_of(results)
    fig, axes = plt.subplots(1, len(endpoints), figsize=(2.6 * len(endpoints), 3.6), squeeze=False)
    colours = {"nginx": "#4c72b0", "app": "#dd8452", "db": "#8c8c8c", "wrk": "#c7c7c7"}
    for ax, endpoint in zip(axes[0], endpoints, strict=True):
        for x, variant in enumerate((PLAIN, FLEET)):
            found = compare.summary(results, variant, endpoint)
            bottom = 0.0
            for layer in ("nginx", "app", "db", "wrk"):
                value = (found or {}).get("cpu_us", {}).get(layer, 0.0)
                ax.bar(x, value, bottom=bottom, color=colours[layer], label=layer if x == 0 else None)
                bottom += value
        ax.set_xticks([0, 1], ["plain", "fleet"])
        ax.set_title(ENDPOINTS[endpoint].path, fontsize=9)
        ax.tick_params(labelsize=8)
    axes[0][0].set_ylabel("CPU µs per request")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", fontsize=8)
    fig.suptitle("Cost per request by layer: plain Tornado vs the fleet (same N, same database)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.93, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
