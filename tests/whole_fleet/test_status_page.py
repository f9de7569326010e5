"""The fleet status page: /status in a real headless Chromium through nginx, /status.json, scripts/status, and a
process that shows as down while it is killed and restarted. (No secrets on it, and it can be turned off: on one
process, tests/app/test_status_page.py.)"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from fleet.config import ROOT
from fleet.supervisor import Supervisor, app_port
from tests.client import get
from tests.fleets import module_fleet

pytestmark = pytest.mark.fleet

ARTIFACTS = ROOT / "tests" / "artifacts"
MODE = "threads"
# The page's rows as the page's own script drew them (one <tr data-port data-state data-mode data-pid> each).
ROWS_JS = """JSON.stringify(Array.from(document.querySelectorAll("#processes tr")).map(r => ({
    port: Number(r.dataset.port), state: r.dataset.state, mode: r.dataset.mode, pid: Number(r.dataset.pid) || null,
    text: r.innerText})))"""


# Debian's chromium (scripts/test installs it), driven by Playwright; Playwright's own browser download is never
# run. The flags keep an offline, throw-away browser quiet: no background networking, component updates, sync or
# first-run work (on a machine without network those would flood the log with refused connections).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # tests run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    # Containers and CI runners often have a small /dev/shm; Chromium then crashes on larger pages.
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


status_fleet = module_fleet(MODE)


@pytest.fixture
def page():
    """A page in a fresh headless Chromium (a new profile each time), closed after the test, also when it fails."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed (scripts/test installs Debian's chromium package)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=binary, args=CHROMIUM_FLAGS)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 420})
        finally:
            browser.close()


def save(path: Path, png: bytes) -> None:
    """Keep a screenshot for a human to look at (tests/artifacts/ is ignored by git)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)


def rows_by_port(raw: str | None) -> dict[int, dict]:
    return {row["port"]: row for row in json.loads(raw or "[]")}


def test_status_json_lists_every_process_through_nginx(status_fleet):
    supervisor = Supervisor(status_fleet.socket)
    pids = {app_port(p): p["pid"] for p in supervisor.app_processes()}
    response = get(f"{status_fleet.url}/status.json")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    report = response.json()
    assert [p["port"] for p in report["processes"]] == status_fleet.app_ports
    for process in report["processes"]:
        assert process["state"] == "ready", process
        assert process["mode"] == MODE
        assert process["pid"] == pids[process["port"]]
        assert process["uptime_s"] >= 0
        assert process["loop"]["max_lag_ms"] >= 0
        assert process["pools"]["db"]["size"] == 16
        assert process["pools"]["blocking"]["size"] == 4
    assert report["summary"] == {
        "processes": 2,
        "ready": 2,
        "draining": 0,
        "not_ready": 0,
        "not_responding": 0,
        "down": 0,
    }
    assert report["served_by"]["port"] in status_fleet.app_ports


def test_scripts_status_prints_a_table_from_the_env_file(status_fleet):
    env = {**os.environ, "FLEET_VAR_DIR": str(status_fleet.var_dir)}
    result = subprocess.run([str(ROOT / "scripts" / "status")], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["PORT", "STATE", "MODE"]
    for port in status_fleet.app_ports:
        assert any(line.split()[:3] == [str(port), "ready", MODE] for line in lines), result.stdout
    assert "2 of 2 ready" in result.stdout

    as_json = subprocess.run(
        [str(ROOT / "scripts" / "status"), "--json", "--url", f"{status_fleet.url}/status.json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert as_json.returncode == 0, as_json.stderr
    assert [p["port"] for p in json.loads(as_json.stdout)["processes"]] == status_fleet.app_ports

    missing = subprocess.run(
        [str(ROOT / "scripts" / "status")],
        env={**env, "FLEET_VAR_DIR": str(status_fleet.var_dir / "nowhere")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2
    assert "no fleet env file" in missing.stderr


def test_a_stuck_process_shows_as_not_responding(status_fleet):
    stuck, other = Supervisor(status_fleet.socket).app_processes()
    # Asked straight at the other process: through nginx, the request itself might land on the stuck one.
    url = f"{status_fleet.app_url(app_port(other))}/status.json"
    os.kill(stuck["pid"], signal.SIGSTOP)  # a blocked event loop, as far as anyone outside can tell
    try:
        report = get(url, timeout=10).json()
    finally:
        os.kill(stuck["pid"], signal.SIGCONT)
    states = {p["port"]: (p["state"], p["detail"]) for p in report["processes"]}
    assert states[app_port(stuck)] == ("not responding", "no answer in time (event loop blocked?)")
    assert states[app_port(other)] == ("ready", "")
    assert report["summary"]["not_responding"] == 1


def test_the_page_shows_a_killed_process_down_then_up_again_in_chromium(status_fleet, page):
    fleet = status_fleet
    supervisor = Supervisor(fleet.socket)
    victim = supervisor.app_processes()[0]
    victim_port = app_port(victim)
    victim_row = f'#processes tr[data-port="{victim_port}"]'
    # A fast refresh, so the ~2 s a killed process takes to come back spans several refreshes.
    page.goto(f"{fleet.url}/status?refresh=0.3")
    # Playwright's assertions poll the page until they hold (or fail after `timeout` ms, saying what they saw).
    expect(page.locator('#processes tr[data-state="ready"]')).to_have_count(fleet.procs, timeout=20_000)
    rows = rows_by_port(page.evaluate(ROWS_JS))
    save(ARTIFACTS / "status-ready.png", page.screenshot())
    assert sorted(rows) == fleet.app_ports, rows
    assert all(row["state"] == "ready" and row["mode"] == MODE for row in rows.values()), rows
    assert all(MODE in row["text"] for row in rows.values())
    assert rows[victim_port]["pid"] == victim["pid"]
    summary = page.locator("#summary").text_content()
    assert summary.startswith(f"{fleet.procs} of {fleet.procs} processes ready")

    os.kill(victim["pid"], signal.SIGKILL)
    expect(page.locator(f'{victim_row}[data-state="down"]')).to_have_count(1, timeout=10_000)
    down = rows_by_port(page.evaluate(ROWS_JS))
    save(ARTIFACTS / "status-one-down.png", page.screenshot())
    assert down[victim_port]["state"] == "down", down
    others = [row for port, row in down.items() if port != victim_port]
    assert all(row["state"] == "ready" for row in others), down

    restarted = f'{victim_row}[data-state="ready"]:not([data-pid="{victim["pid"]}"])'
    expect(page.locator(restarted)).to_have_count(1, timeout=30_000)
    back = rows_by_port(page.evaluate(ROWS_JS))
    save(ARTIFACTS / "status-restarted.png", page.screenshot())
    assert back[victim_port]["state"] == "ready", back
    assert back[victim_port]["pid"] == supervisor.process(f"app:{victim['name']}")["pid"] != victim["pid"]
    assert back[victim_port]["mode"] == MODE


# -- a single process: secrets and the off switch (no fleet needed) -------------------------------------------
