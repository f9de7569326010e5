"""The whole fleet, booted through supervisord and reached through nginx, in every mode."""

import os
import shutil
import signal
import subprocess
import threading

import pytest

from fleet import probe
from fleet.config import ROOT
from fleet.sandbox import fleet_config, script_env
from fleet.supervisor import Supervisor, app_port, pid_alive, wait_for_exit
from tests.client import get, request

pytestmark = pytest.mark.fleet


def test_every_endpoint_answers_through_nginx(fleet):
    url = fleet.url
    for path in (
        "/healthz",
        "/readyz",
        "/json",
        "/plaintext",
        "/db",
        "/queries?queries=5",
        "/updates?queries=5",
        "/fortunes",
    ):
        response = get(url + path)
        assert response.status == 200, (path, response.body)
        assert response.headers["Server"] == "nginx"  # server_tokens off: no version
    note = request("POST", f"{url}/api/notes", {"title": "through nginx"})
    assert note.status == 201
    note_id = note.json()["id"]
    assert get(f"{url}/api/notes/{note_id}").json()["title"] == "through nginx"
    assert request("PATCH", f"{url}/api/notes/{note_id}", {"tags": ["t"]}).json()["tags"] == ["t"]
    assert note_id in [n["id"] for n in get(f"{url}/api/notes").json()["notes"]]
    assert request("DELETE", f"{url}/api/notes/{note_id}").status == 204


def test_all_processes_answer_in_the_configured_mode(fleet):
    mode = fleet.app_env["FLEET_DB_MODE"]
    seen = {}
    for _ in range(40):
        ready = get(f"{fleet.url}/readyz").json()
        seen[ready["port"]] = ready
        if len(seen) == fleet.procs:
            break
    assert sorted(seen) == fleet.app_ports
    assert {r["db_mode"] for r in seen.values()} == {mode}
    assert len({r["pid"] for r in seen.values()}) == fleet.procs


# supervisord's restart and nginx's retry do not depend on the database mode: one mode (every mode's fleet answers
# through nginx above, and tests/whole_fleet/test_hardening_database.py kills their database).
@pytest.mark.parametrize("fleet", ["async"], indirect=True)
def test_a_killed_process_is_restarted_and_the_fleet_keeps_answering(fleet):
    supervisor = Supervisor(fleet.socket)
    victim = supervisor.app_processes()[0]
    results = []
    stop = threading.Event()

    def load():
        while not stop.is_set():
            try:
                results.append(get(f"{fleet.url}/db", timeout=5).status)
            except OSError as exc:
                results.append(repr(exc))

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        probe.wait_until(lambda: len(results) > 20, 10)
        os.kill(victim["pid"], signal.SIGKILL)
        restarted = probe.wait_until(
            lambda: (
                (info := supervisor.process(f"app:{victim['name']}"))["statename"] == "RUNNING"
                and info["pid"] != victim["pid"]
                and probe.ready(fleet.app_address(app_port(victim)))
            ),
            20,
        )
        count_at_restart = len(results)
        probe.wait_until(lambda: len(results) > count_at_restart + 20, 10)
    finally:
        stop.set()
        for worker in workers:
            worker.join(10)
    assert restarted, "supervisord did not restart the killed process"
    assert not pid_alive(victim["pid"])
    failures = [r for r in results if r != 200]
    # nginx passes a GET that could not connect to the dead process on to another one.
    assert failures == [], f"{len(failures)} of {len(results)} requests failed: {failures[:5]}"


def test_scripts_run_and_stop():
    """The README's commands, on free ports in a temporary folder: start, start again (harmless), stop."""
    config = fleet_config("async", 2, prefix="fleet-run-")
    var_dir, base, env = config.var_dir, config.app_port_base, script_env(config)
    run = [str(ROOT / "scripts" / "run")]
    try:
        first = subprocess.run(run, env=env, capture_output=True, text=True, timeout=180)
        assert first.returncode == 0, first.stderr
        assert f"fleet ready: {config.url}/" in first.stdout
        assert "db_mode=async" in first.stdout
        supervisor = Supervisor(var_dir / "supervisor.sock")
        # Started ones only: prometheus is not, without FLEET_PROMETHEUS.
        pids = {p["name"]: p["pid"] for p in supervisor.processes() if p["pid"]}
        assert set(pids) == {"db", "nginx", "logrotate", f"app-{base}", f"app-{base + 1}"}

        again = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60)
        assert again.returncode == 0 and "already running" in again.stdout
        assert {p["name"]: p["pid"] for p in supervisor.processes() if p["pid"]} == pids

        supervisord_pid = supervisor.supervisord_pid()
        stop = subprocess.run([str(ROOT / "scripts" / "stop")], env=env, capture_output=True, text=True, timeout=120)
        assert stop.returncode == 0, stop.stderr
        assert wait_for_exit([supervisord_pid, *pids.values()], 0) == []
        with pytest.raises(ConnectionRefusedError):
            get(f"{config.url}/healthz", timeout=2)
    finally:
        subprocess.run([str(ROOT / "scripts" / "stop")], env=env, capture_output=True, timeout=120)
        shutil.rmtree(var_dir, ignore_errors=True)
