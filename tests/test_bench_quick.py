"""`scripts/bench --quick` end to end: real fleets in every mode and event loop, wrk through nginx, references.

Checks what a user gets (the report and the files), never how fast anything was.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from app.settings import DB_MODES, EVENT_LOOPS, embedded_uri
from fleet.bench import cli
from fleet.bench.endpoints import ENDPOINTS
from fleet.sandbox import free_port_block


@pytest.mark.fleet
def test_quick_run_reports_every_mode_loop_and_endpoint_with_zero_errors(tmp_path):
    out = tmp_path / "bench"
    done = subprocess.run(
        [sys.executable, "-m", "fleet.bench", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # Progress lines while it runs, one per wrk run.
    assert "elapsed" in done.stdout and "motor/uvloop procs=1 /fortunes run 1/1" in done.stdout

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
    assert text.strip() in done.stdout  # the report is also printed
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


def test_a_failed_run_keeps_what_it_measured_and_can_be_reported(tmp_path, capsys):
    nothing_there = f"http://127.0.0.1:{free_port_block(1)}"
    argv = ["--url", nothing_there, "--runs", "1", "--duration", "1", "--warmup", "0", "--out", str(tmp_path)]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "/readyz does not answer" in err and "--report-only" in err
    saved = tmp_path / "partial" / "results.json"
    assert {m["target"] for m in json.loads(saved.read_text())["measurements"]} == {"nginx"}
    assert cli.main(["--report-only", str(saved), "--no-plots"]) == 0
    assert "nginx alone" in (tmp_path / "partial" / "report.md").read_text()
