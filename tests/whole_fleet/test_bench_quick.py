"""`scripts/bench --quick` end to end: real fleets in every mode and event loop, wrk through nginx, references.

Checks what a user gets (the report and the files), never how fast anything was.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from app.settings import DB_MODES, EVENT_LOOPS, embedded_uri
from bench import cli
from bench.endpoints import ENDPOINTS

# Below pytest's 300 s limit with room for the grace period: a timed-out run is stopped with SIGTERM, which
# python -m bench turns into a clean exit that stops every fleet it booted (a SIGKILL would leak its supervisord).
QUICK_TIMEOUT = 220
STOP_GRACE = 40


def run_quick(out) -> tuple[int, str, str]:
    command = [sys.executable, "-m", "bench", "throughput", "--quick", "--out", str(out)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as bench:
        try:
            stdout, stderr = bench.communicate(timeout=QUICK_TIMEOUT)
        except subprocess.TimeoutExpired:
            bench.terminate()
            try:
                stdout, stderr = bench.communicate(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                bench.kill()
                stdout, stderr = bench.communicate()
            pytest.fail(f"scripts/bench --quick took over {QUICK_TIMEOUT} s:\n{stdout[-3000:]}{stderr[-3000:]}")
    return bench.returncode, stdout, stderr


@pytest.mark.fleet
def test_quick_run_reports_every_mode_loop_and_endpoint_with_zero_errors(tmp_path):
    out = tmp_path / "bench"
    returncode, stdout, stderr = run_quick(out)
    assert returncode == 0, stdout[-3000:] + stderr[-3000:]
    # Progress lines while it runs, one per wrk run.
    assert "elapsed" in stdout and "motor/uvloop procs=1 /fortunes run 1/1" in stdout

    results = json.loads((out / "results.json").read_text())
    fleet = [m for m in results["measurements"] if m["target"] == "fleet"]
    measured = {(m["mode"], m["loop"], m["endpoint"]) for m in fleet}
    assert measured == {(mode, loop, name) for mode in DB_MODES for loop in EVENT_LOOPS for name in ENDPOINTS}
    assert all(m["errors"] == 0 and m["requests"] > 0 and m["rps"] > 0 for m in results["measurements"])
    # The three references are there too.
    targets = {m["target"] for m in results["measurements"]}
    assert targets == {"fleet", "nginx", "db", "direct"}
    assert {"nproc", "cpu_model", "memory_gib", "kernel", "packages"} <= results["machine"].keys()
    assert results["machine"]["packages"]["uvloop"] != "not installed"

    text = (out / "report.md").read_text()
    assert text.strip() in stdout  # the report is also printed
    assert "all cells: **0**" in text
    for mode in DB_MODES:
        for loop in EVENT_LOOPS:
            assert f"| {mode} | {loop} | 1 |" in text
    for endpoint in ENDPOINTS.values():
        assert f"`{endpoint.path}`" in text
    assert (out / "results.csv").read_text().count("\n") == 1 + len(results["measurements"])
    for png in ("throughput.png", "latency.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.fleet
def test_url_mode_measures_a_running_fleet_labelled_from_readyz(start_fleet, tmp_path):
    config = start_fleet(mode="threads", procs=2, FLEET_EVENT_LOOP="uvloop")
    out = tmp_path / "bench"
    argv = ["--url", config.url, "--mongodb-uri", embedded_uri(config.db_port), "--endpoints", "json,db"]
    argv += ["--runs", "1", "--duration", "1", "--warmup", "0", "--connections", "8", "--no-plots", "--out", str(out)]
    assert cli.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    fleet = {m["endpoint"]: m for m in results["measurements"] if m["target"] == "fleet"}
    assert fleet.keys() == {"json", "db"}
    assert {(m["mode"], m["loop"]) for m in fleet.values()} == {("threads", "uvloop")}
    assert {m["target"] for m in results["measurements"]} == {"fleet", "nginx", "db"}
    assert "| threads | uvloop | ? |" in (out / "report.md").read_text()
