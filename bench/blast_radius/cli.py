"""`scripts/blast-radius` (`python -m bench blast-radius`): arguments, the run, the outputs, exit codes (0 done,
1 could not run, 2 bad arguments, 143 stopped by SIGTERM, after stopping every fleet it booted).

What it measures: bench/blast_radius/__init__.py.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from bench.blast_radius.nginx_options import variants
from bench.blast_radius.report import (
    README,
    README_BEGIN,
    machine_meta,
    readme_block,
    report,
    update_readme,
    write_outputs,
)
from bench.blast_radius.run import run
from bench.blast_radius.scenarios import Timing, plan
from bench.errors import BenchError
from fleet import launcher
from fleet.config import ROOT

DEFAULT_OUT = ROOT / "results" / "blast-radius"
DESCRIPTION = (
    "Blast radius: what one blocked app process costs the fleet, measured through nginx (`scripts/blast-radius`)."
)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="scripts/blast-radius", description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer, shorter scenarios (~1 min)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--block-seconds", type=float, help="how long each block lasts (default 2, quick 1)")
    parser.add_argument("--blocks", type=int, help="blocks per scenario (default 3, quick 2)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plots")
    parser.add_argument("--readme", action="store_true", help="also put the latest figures into README.md")
    args = parser.parse_args(argv)
    timing = Timing(
        block_seconds=args.block_seconds if args.block_seconds is not None else (1.0 if args.quick else 2.0),
        blocks=args.blocks if args.blocks is not None else (2 if args.quick else 3),
        gap=1.0 if args.quick else 1.5,
        warmup=0.5 if args.quick else 1.0,
    )
    if not (0 < timing.block_seconds <= 20 and 1 <= timing.blocks <= 10):
        parser.error("--block-seconds must be in (0, 20] and --blocks in [1, 10]")
    # Stopped by SIGTERM (a CI timeout, kill PID): unwind like Ctrl-C, so every fleet it booted is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.readme and README_BEGIN not in README.read_text():
        parser.error(f"--readme: README.md has no {README_BEGIN!r} marker")
    meta = machine_meta(argv)
    started = time.monotonic()
    try:
        results, samples = run(plan(args.quick), timing)
    except (BenchError, launcher.FleetError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    meta["seconds"] = round(time.monotonic() - started)
    options = variants()
    write_outputs(args.out, results, samples, timing=timing, meta=meta, options=options, plot=not args.no_plot)
    print()
    print(report(results, timing, meta, options))
    if args.readme:
        update_readme(readme_block(results, meta, timing, args.out.resolve()))
    print(f"wrote {args.out}/ in {meta['seconds']} s" + (" and README.md" if args.readme else ""))
    return 0
