"""`scripts/bench --quick` end to end: real fleets in every mode and event loop, wrk through nginx, references.

Checks what a user gets (the report and the files), never how fast anything was.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from app.settings import DB_MODES, EVENT_LOOPS
from fleet.bench.endpoints import ENDPOINTS


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
