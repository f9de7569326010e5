"""Measure mode switches under load: `scripts/switch-trial [--procs 2 4] [--clients 16] [--rate 6]`
(`python -m bench switch-trial`).

For each process count it boots a throw-away fleet (free ports, a /tmp folder, its own embedded database), runs
the load generator (bench/loadgen.py) through nginx, switches motor -> threads -> async -> motor with
scripts/switch-db-mode, and prints a markdown table: how long each switch took, how many requests were made
while it ran, how many failed, and their latency. Then it checks that every acknowledged write can be read back
and stops the fleet. A measurement for the README, not a test: tests/whole_fleet/test_switch.py asserts the same things.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import writer
from bench.loadgen import Load, Outcome, all_note_ids
from bench.stats import percentile
from fleet import sandbox
from fleet.config import ROOT

MODES = ("threads", "async", "motor")


def trial(procs: int, clients: int, rate: float, log=print) -> list[dict]:
    config = sandbox.fleet_config("motor", procs, prefix="fleet-switch-trial-")
    env = {**os.environ, "FLEET_VAR_DIR": str(config.var_dir)}
    rows = []
    with sandbox.booted(config):
        try:
            with Load(config.url, clients=clients, rate=rate) as load:
                time.sleep(2)
                for mode in MODES:
                    started = time.monotonic()
                    result = subprocess.run(
                        [str(ROOT / "scripts" / "switch-db-mode"), mode], env=env, capture_output=True, text=True
                    )
                    ended = time.monotonic()
                    log(result.stdout.rstrip())
                    if result.returncode != 0:
                        raise RuntimeError(f"switch to {mode} failed: {result.stderr}")
                    rows.append({"procs": procs, "mode": mode, "started": started, "ended": ended})
                    time.sleep(2)
            outcomes = load.result.outcomes
            missing = set(load.result.acknowledged) - all_note_ids(config.url)
        finally:
            # The logs go with the fleet's folder: keep a copy before it is stopped.
            kept = keep_logs(config.var_dir / "log", procs, log)
    for row in rows:
        tally(row, outcomes)
    total_failed = sum(1 for o in outcomes if o.failed)
    for outcome in [o for o in outcomes if o.failed][:10]:
        log(f"failed: {outcome.op} after {outcome.latency:.2f}s: {outcome.error}")
    if total_failed and kept:
        log(f"the fleet's logs (nginx's error log, each process's) are kept in {kept}")
    elif kept:
        shutil.rmtree(kept, ignore_errors=True)
    log(
        f"N={procs}: {len(outcomes)} requests in all, {total_failed} failed, "
        f"{len(load.result.acknowledged)} writes acknowledged, {len(missing)} of them missing afterwards"
    )
    return rows


def tally(row: dict, outcomes: list[Outcome]) -> dict:
    """`row` (a switch: its mode, started, ended) with the requests started while it ran: count, writes, failed,
    p99 and max latency."""
    during = [o for o in outcomes if row["started"] <= o.started <= row["ended"]]
    row.update(
        seconds=row["ended"] - row["started"],
        requests=len(during),
        writes=sum(1 for o in during if o.op == "write"),
        failed=sum(1 for o in during if o.failed),
        p99_ms=1000 * percentile([o.latency for o in during], 99),
        max_ms=1000 * max((o.latency for o in during), default=0.0),
    )
    return row


def keep_logs(logs: Path, procs: int, log) -> Path | None:
    """A copy of the fleet's logs, which go with its folder; None if they cannot be copied (the trial's own error,
    if any, is the one to report, so this one is only logged)."""
    kept = None
    try:
        kept = Path(tempfile.mkdtemp(prefix=f"fleet-switch-trial-logs-{procs}-"))
        shutil.copytree(logs, kept, dirs_exist_ok=True)
    except OSError as exc:
        log(f"could not keep the fleet's logs: {exc}")
        if kept:
            shutil.rmtree(kept, ignore_errors=True)
        return None
    return kept


def table(rows: list[dict]) -> str:
    header = ["N", "switch to", "time", "requests during it", "of which writes", "failed", "p99", "max"]
    return writer.table(header, (table_row(r) for r in rows))


def table_row(r: dict) -> list[str]:
    return [
        str(r["procs"]),
        r["mode"],
        f"{r['seconds']:.1f} s",
        str(r["requests"]),
        str(r["writes"]),
        str(r["failed"]),
        f"{r['p99_ms']:.0f} ms",
        f"{r['max_ms']:.0f} ms",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/switch-trial", description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, nargs="+", default=[2, 4], help="process counts (default: 2 4)")
    parser.add_argument("--clients", type=int, default=16, help="load generator clients (default 16)")
    parser.add_argument("--rate", type=float, default=6.0, help="requests per second per client (default 6)")
    args = parser.parse_args(argv)
    if not all(1 <= n <= 64 for n in args.procs) or not 1 <= args.clients <= 256 or not 0 < args.rate <= 1000:
        parser.error("--procs must be in [1, 64], --clients in [1, 256] and --rate in (0, 1000]")
    rows = []
    try:
        for procs in args.procs:
            rows += trial(procs, args.clients, args.rate)
    except (RuntimeError, OSError) as exc:  # RuntimeError includes launcher.FleetError
        print(f"switch_trial: error: {exc}", file=sys.stderr)
        return 1
    print()
    print(table(rows))
    return 1 if any(r["failed"] for r in rows) else 0
