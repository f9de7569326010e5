"""scripts/bench: the TechEmpower workload through nginx, for each database mode, event loop and process count,
with the references that bound it on this machine (nginx alone, one process without nginx, the database alone).

Writes report.md (also printed), results.json (everything, with machine info and package versions),
results.csv and throughput.png / latency.png into --out. Exit status: 0 done, 1 could not run, 2 bad arguments,
3 done but some requests failed (see the errors column), 130 interrupted (Ctrl-C), 143 stopped by SIGTERM; when
interrupted or stopped, every process it started is stopped first.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
from pathlib import Path

from app.settings import DB_MODES, EVENT_LOOPS
from bench import compare, compare_report, overload, plots, profile, report, runner, tuning, writer, wrk
from bench.endpoints import ENDPOINTS
from bench.stats import total_errors
from fleet.config import ROOT

DEFAULT_OUT = ROOT / "results" / "bench"
README = ROOT / "README.md"
# Quick runs are smoke tests: keep them out of the committed results.
QUICK_OUT = ROOT / "var" / "bench-quick"
EXIT_FAILED_REQUESTS = 3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = runner.Plan()
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example: scripts/bench --modes async --loops asyncio,uvloop --procs 1,2 --duration 5",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 1 process, 1 run of 1 s per cell, no warm-up (~1.5 min)"
    )
    parser.add_argument("--modes", type=names_of(DB_MODES), help=f"database modes (default: {','.join(DB_MODES)})")
    parser.add_argument("--loops", type=names_of(EVENT_LOOPS), help=f"event loops (default: {','.join(EVENT_LOOPS)})")
    parser.add_argument("--procs", type=counts, help="app process counts (default: 1,2,4)")
    parser.add_argument("--endpoints", type=names_of(ENDPOINTS), help=f"default: {','.join(ENDPOINTS)}")
    parser.add_argument(
        "--direct-endpoints",
        type=names_of(ENDPOINTS, allow_empty=True),
        help="endpoints also measured on one process without nginx ('' for none; default: json,db)",
    )
    parser.add_argument("--runs", type=positive, help=f"measured runs per cell (default: {defaults.runs})")
    parser.add_argument("--duration", type=positive, help=f"seconds per run (default: {defaults.duration_s})")
    parser.add_argument("--warmup", type=non_negative, help=f"warm-up seconds per cell (default: {defaults.warmup_s})")
    parser.add_argument("--connections", type=positive, help=f"wrk connections (default: {defaults.wrk.connections})")
    parser.add_argument(
        "--wrk-threads", type=positive, help="wrk threads (default: 1 per 2 CPUs, at most 4: wrk shares the CPUs)"
    )
    parser.add_argument("--db-threads", type=positive, help="client threads of the database reference (default: 8)")
    parser.add_argument("--url", help="measure this running fleet (http://HOST:PORT) instead of booting fleets")
    parser.add_argument("--mongodb-uri", help="with --url: the database to measure as the 'database alone' reference")
    parser.add_argument(
        "--out", type=Path, help="output folder (default: results/bench; with --quick: var/bench-quick)"
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument(
        "--readme",
        action="store_true",
        help="also replace the latest results in README.md (between its bench:begin/bench:end markers)",
    )
    parser.add_argument(
        "--tune",
        action="store_true",
        help="instead: measure each tuning knob (nginx keep-alive, workers, access log; pool sizes) against the "
        "deployed configuration; writes tuning.md and tuning.json (~5 min)",
    )
    parser.add_argument(
        "--report-only",
        type=Path,
        metavar="RESULTS_JSON",
        help="rewrite report and plots from a saved results.json (or compare.json)",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="instead: the fleet side by side with plain Tornado (same N, same database), requests/s and CPU µs per "
        "request per layer; one mode (the first of --modes, default async), N from --procs (default 2); writes "
        "compare-MODE.md, .json and .png (~6 min; --features adds a fleet per feature turned off, ~+5 min)",
    )
    parser.add_argument("--rounds", type=positive, help="--compare: alternating rounds per endpoint (default 5)")
    parser.add_argument("--features", action="store_true", help="--compare: also price each feature (see --compare)")
    parser.add_argument(
        "--profile",
        metavar="ENDPOINT",
        type=names_of(ENDPOINTS),
        help="instead: py-spy flame graph and hot-function table of one app process under load on ENDPOINT "
        "(profile-ENDPOINT.svg/.md; mode from --modes, N from --procs, --duration seconds, default 10)",
    )
    parser.add_argument(
        "--overload",
        action="store_true",
        help="instead: open-loop overload through nginx, 0.5x to 4x the measured capacity on /db and the API "
        "(async and motor, N from --procs, default 2): goodput, p50/p99 of accepted requests, refusal p99, RSS per "
        "process; writes overload.md, overload.json, overload.png into results/overload (~9 min; --quick: ~1 min)",
    )
    return parser.parse_args(argv)


def names_of(allowed, allow_empty: bool = False):
    def parse(raw: str) -> tuple[str, ...]:
        names = tuple(n.strip() for n in raw.split(",") if n.strip())
        unknown = [n for n in names if n not in allowed]
        if unknown or (not names and not allow_empty):
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(allowed)}")
        return names

    return parse


def counts(raw: str) -> tuple[int, ...]:
    try:
        values = tuple(int(n) for n in raw.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("expected comma-separated integers, e.g. 1,2,4") from None
    if not values or any(not 1 <= v <= 64 for v in values):
        raise argparse.ArgumentTypeError("process counts must be between 1 and 64")
    return values


def positive(raw: str) -> int:
    value = non_negative(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def non_negative(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError("expected an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def default_wrk_threads() -> int:
    return max(1, min(4, (os.cpu_count() or 1) // 2))


def build_plan(args: argparse.Namespace) -> runner.Plan:
    quick = args.quick
    plan = runner.Plan(
        procs=(1,) if quick else runner.Plan.procs,
        direct_endpoints=("json",) if quick else runner.Plan.direct_endpoints,
        runs=1 if quick else runner.Plan.runs,
        duration_s=1 if quick else runner.Plan.duration_s,
        warmup_s=0 if quick else runner.Plan.warmup_s,
        db_threads=4 if quick else 8,
        wrk=wrk.WrkOptions(threads=default_wrk_threads(), connections=16 if quick else 64),
    )
    overrides = {
        "modes": args.modes,
        "loops": args.loops,
        "procs": args.procs,
        "endpoints": args.endpoints,
        "direct_endpoints": args.direct_endpoints,
        "runs": args.runs,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "db_threads": args.db_threads,
        "url": args.url,
        "mongodb_uri": args.mongodb_uri,
    }
    wrk_options = wrk.WrkOptions(
        threads=args.wrk_threads or plan.wrk.threads,
        connections=args.connections or plan.wrk.connections,
    )
    return runner.Plan(
        **{
            **{f: getattr(plan, f) for f in runner.Plan.__dataclass_fields__},
            **{k: v for k, v in overrides.items() if v is not None},
            "wrk": wrk_options,
        }
    )


def write_outputs(results: dict, out: Path, with_plots: bool) -> list[Path]:
    written = report.write_raw(results, out)
    text = report.markdown(results)
    (out / "report.md").write_text(text)
    written.append(out / "report.md")
    if with_plots:
        written += plots.write_plots(results, out)
    print(text)
    return written


class Stop(Exception):
    """End the command with this exit status (the message is already printed)."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


def measure(run, what: str, out: Path):
    """Run a benchmark, turning its failures into exit statuses; keeps what a failed run measured."""
    try:
        return run()
    except (runner.BenchError, wrk.WrkError, RuntimeError, OSError) as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        partial = getattr(exc, "partial", None)
        if partial:
            saved = report.write_raw(partial, out / "partial")[0]
            print(f"bench: what was measured before is in {saved} (report it: --report-only {saved})", file=sys.stderr)
        raise Stop(1) from None
    except KeyboardInterrupt:
        print(f"bench: {what} interrupted; every process it started was stopped", file=sys.stderr)
        raise Stop(130) from None


def update_readme(results: dict, images: list[Path], readme: Path = README) -> Path:
    links = [writer.relative_to_readme(image, readme) for image in images]
    return writer.update_readme(readme, report.readme_block(results, links), report.README_BEGIN, report.README_END)


def main_tune(args: argparse.Namespace, plan: runner.Plan, out: Path) -> int:
    estimate = tuning.estimate_seconds(plan)
    print(f"bench --tune: about {estimate / 60:.0f} min ({estimate:.0f} s); results go to {out}/", flush=True)
    results = measure(lambda: tuning.run(plan), "tuning", out)
    out.mkdir(parents=True, exist_ok=True)
    writer.write_json(out / "tuning.json", results)
    text = tuning.markdown(results)
    (out / "tuning.md").write_text(text)
    print(text)
    print(f"bench: wrote {out / 'tuning.json'}, {out / 'tuning.md'}")
    return EXIT_FAILED_REQUESTS if total_errors(results["measurements"]) else 0


def main_compare(args: argparse.Namespace, plan: runner.Plan, out: Path) -> int:
    compare_plan = compare.ComparePlan(
        mode=plan.modes[0] if args.modes else "async",
        procs=plan.procs[0] if args.procs else 2,
        endpoints=plan.endpoints,
        rounds=args.rounds or compare.ComparePlan.rounds,
        duration_s=args.duration or compare.ComparePlan.duration_s,
        warmup_s=plan.warmup_s,
        features=args.features,
        wrk=plan.wrk,
    )
    estimate = compare_plan.estimate_seconds()
    print(f"bench --compare: about {estimate / 60:.0f} min ({estimate:.0f} s); results go to {out}/", flush=True)
    results = measure(lambda: compare.run(compare_plan), "comparison", out)
    return write_compare(args, results, out)


def write_compare(args: argparse.Namespace, results: dict, out: Path) -> int:
    """compare.md/json/png (and the README block with --readme) from a comparison's results."""
    written = compare_report.write(results, out, with_plots=not args.no_plots)
    print(compare_report.markdown(results))
    if args.readme:
        images = [writer.relative_to_readme(p, README) for p in written if p.suffix == ".png"]
        block = compare_report.markdown(results) + "".join(f"\n![cost per request by layer]({i})\n" for i in images)
        written.append(writer.update_readme(README, block, compare_report.README_BEGIN, compare_report.README_END))
    print("bench: wrote " + ", ".join(str(p) for p in written))
    failed = sum(r["errors"] for r in results["runs"])
    if failed:
        print(f"bench: {failed} requests failed (see the errors column)", file=sys.stderr)
        return EXIT_FAILED_REQUESTS
    return 0


def main_profile(args: argparse.Namespace, plan: runner.Plan, out: Path) -> int:
    profile_plan = profile.ProfilePlan(
        endpoint=args.profile[0],
        mode=plan.modes[0] if args.modes else "async",
        procs=plan.procs[0] if args.procs else 2,
        seconds=args.duration or profile.ProfilePlan.seconds,
        wrk=plan.wrk,
    )
    written = measure(lambda: profile.run(profile_plan, out), "profile", out)
    print("bench: wrote " + ", ".join(str(p) for p in written))
    return 0


def main_overload(args: argparse.Namespace, plan: runner.Plan, out: Path) -> int:
    overload_plan = overload.default_plan(args.quick)
    if args.procs:
        overload_plan = dataclasses.replace(overload_plan, procs=plan.procs[0])
    if not args.out:
        out = QUICK_OUT / "overload" if args.quick else ROOT / "results" / "overload"
    estimate = overload_plan.estimate_seconds()
    print(f"bench --overload: about {estimate / 60:.0f} min ({estimate:.0f} s); results go to {out}/", flush=True)
    results = measure(lambda: overload.run(overload_plan), "overload", out)
    written = overload.write(results, out, with_plot=not args.no_plots)
    print(overload.markdown(results))
    if args.readme:
        image = next((writer.relative_to_readme(p, README) for p in written if p.suffix == ".png"), None)
        block = overload.readme_block(results, image)
        written.append(writer.update_readme(README, block, overload.README_BEGIN, overload.README_END))
    print("bench: wrote " + ", ".join(str(p) for p in written))
    failed = overload.failed_total(results)
    if failed:
        print(
            f"bench: {failed} requests failed (answers other than 2xx, 503, 429; see the failed column)",
            file=sys.stderr,
        )
        return EXIT_FAILED_REQUESTS
    return 0


def load_saved(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"bench: cannot read {path}: {exc}", file=sys.stderr)
        raise Stop(2) from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Stopped by SIGTERM (a CI timeout, kill PID): unwind like Ctrl-C, so every fleet it booted is stopped.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return run_command(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_command(args: argparse.Namespace) -> int:
    try:
        if args.report_only:
            results = load_saved(args.report_only)
            out = args.out or args.report_only.parent
            if results.get("kind") == "compare":
                return write_compare(args, results, out)
        else:
            plan = build_plan(args)
            if plan.url and not plan.url.startswith("http://"):
                print("bench: --url must be http://HOST:PORT", file=sys.stderr)
                return 2
            out = args.out or (QUICK_OUT if args.quick else DEFAULT_OUT)
            for wanted, special in (
                (args.tune, main_tune),
                (args.compare, main_compare),
                (args.profile, main_profile),
                (args.overload, main_overload),
            ):
                if wanted:
                    return special(args, plan, out)
            estimate = plan.estimate_seconds()
            print(f"bench: about {estimate / 60:.0f} min ({estimate:.0f} s); results go to {out}/", flush=True)
            results = measure(lambda: runner.run(plan), "benchmark", out)
    except Stop as stop:
        return stop.status
    return write_matrix(args, results, out)


def write_matrix(args: argparse.Namespace, results: dict, out: Path) -> int:
    """report.md, the raw files and plots (and the README block with --readme) from the main run's results."""
    written = write_outputs(results, out, with_plots=not args.no_plots)
    if args.readme:
        try:
            written.append(update_readme(results, [p for p in written if p.suffix == ".png"]))
        except ValueError as exc:
            print(f"bench: cannot update the README: {exc}", file=sys.stderr)
            return 1
    print("bench: wrote " + ", ".join(str(p) for p in written))
    errors = total_errors(results["measurements"])
    if errors:
        print(f"bench: {errors} requests failed (see the errors column)", file=sys.stderr)
        return EXIT_FAILED_REQUESTS
    return 0
