"""Blast radius: one blocked process does not slow the fleet. Stall shedding sends the requests waiting for a
blocked process elsewhere (and never a POST, nor the blocking request itself); through nginx, requests keep
succeeding during a block; and the benchmark program (bench/blast_radius/) runs, with nginx accepting every
option it compares."""

import gzip
import http.client
import json
import subprocess
import sys
import threading
import time

import pytest

from bench.blast_radius import nginx_options, report, run, scenarios
from bench.errors import BenchError
from bench.openloop import Sample
from fleet import probe
from fleet.config import NGINX_TEMPLATE, ROOT, nginx_binary, render_nginx
from fleet.sandbox import free_port_block
from tests.client import get, request


def in_thread(fn, *args, **kwargs) -> tuple[threading.Thread, list]:
    """Run fn in a thread; the list receives its result, or the exception it raised."""
    out: list = []

    def target():
        try:
            out.append(fn(*args, **kwargs))
        except Exception as exc:
            out.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def wait_for_log(app, text: str, timeout: float = 10) -> None:
    assert probe.wait_until(lambda: text in app.log_text(), timeout, interval=0.05), f"{text!r} not logged"


def test_a_stalled_process_sheds_waiting_gets_but_not_posts_nor_the_blocking_request(start_app):
    neighbour = start_app()
    # FLEET_APP_PORTS names a healthy neighbour, as in a fleet: the shedder sheds only if another process answers.
    app = start_app(FLEET_FAULTS="true", FLEET_WATCHDOG_MS="200", FLEET_APP_PORTS=str(neighbour.port))
    # Awaiting, as a request waiting on the database would be; it outlasts the block, so that it is still in
    # flight when the stall is shed however slowly this machine gets there.
    in_flight, in_flight_result = in_thread(get, f"{app.url}/fault/sleep?seconds=5", timeout=20)
    # /readyz counts itself: 2 means the slow GET is in flight.
    assert probe.wait_until(lambda: get(f"{app.url}/readyz").json()["in_flight"] >= 2, 10, interval=0.05)
    blocker, blocker_result = in_thread(get, f"{app.url}/fault/block?seconds=3", timeout=20)
    wait_for_log(app, "waiting GET/HEAD request(s) for nginx to retry elsewhere")  # the stall is seen and shed
    poster, post_result = in_thread(request, "POST", f"{app.url}/api/notes", {"title": "during a stall"}, timeout=10)
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
        get(f"{app.url}/json", timeout=10)  # arriving during the stall: closed at once, for nginx to retry elsewhere
    for thread in (in_flight, blocker, poster):
        thread.join(25)

    assert isinstance(in_flight_result[0], (ConnectionError, http.client.RemoteDisconnected)), in_flight_result
    assert blocker_result[0].status == 200  # the request running the blocking code is never sent elsewhere
    assert post_result[0].status == 201  # a POST is served once the loop is free: nginx would not retry it
    assert "waiting GET/HEAD request(s) for nginx to retry elsewhere" in app.log_text()
    # Every shed request is finished and forgotten once its handler returns (the slow GET's after its 5 s): only
    # the /readyz asking is left.
    assert probe.wait_until(lambda: get(f"{app.url}/readyz").json()["in_flight"] == 1, 10, interval=0.1)


def test_a_stalled_process_sheds_nothing_when_no_other_process_answers(start_app):
    # The neighbour named in FLEET_APP_PORTS is not there: shedding would only turn waiting into a 502.
    app = start_app(FLEET_FAULTS="true", FLEET_WATCHDOG_MS="200", FLEET_APP_PORTS=str(free_port_block(1)))
    blocker, blocker_result = in_thread(get, f"{app.url}/fault/block?seconds=3", timeout=20)
    wait_for_log(app, "no other process answers /healthz: not shedding")
    assert get(f"{app.url}/json", timeout=20).status == 200  # arriving during the stall: served after it
    blocker.join(20)
    assert blocker_result[0].status == 200


BLOCK_SECONDS = 3


@pytest.mark.fleet
def test_with_three_processes_one_blocked_requests_through_nginx_keep_succeeding(start_fleet):
    fleet = start_fleet(procs=3, FLEET_FAULTS="true")
    results: list[tuple[float, float, object]] = []  # (start, seconds, status or exception)
    stop = threading.Event()

    def client(path: str) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                status = get(f"{fleet.url}{path}", timeout=15).status
            except OSError as exc:
                status = exc
            results.append((started, time.monotonic() - started, status))

    clients = [threading.Thread(target=client, args=(path,), daemon=True) for path in ("/json", "/db") * 3]
    for thread in clients:
        thread.start()
    try:
        time.sleep(1.0)
        block_started = time.monotonic()
        # Through nginx, like a slow GET ("query of death"): it blocks one process and is not replayed elsewhere.
        blocked = get(f"{fleet.url}/fault/block?seconds={BLOCK_SECONDS}", timeout=30)
        block_ended = time.monotonic()
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in clients:
            thread.join(20)

    assert blocked.status == 200
    failures = [r for r in results if r[2] != 200]
    assert failures == [], f"{len(failures)} of {len(results)} requests failed: {failures[:5]}"
    during = [seconds for started, seconds, _ in results if block_started <= started < block_ended]
    assert len(during) >= 2 * len(clients), f"only {len(during)} requests sent during the block"
    # The target: most finish well before the block ends.
    quick = [seconds for seconds in during if seconds < BLOCK_SECONDS / 3]
    assert len(quick) >= 0.8 * len(during), f"only {len(quick)} of {len(during)} finished in a third of the block"
    # Hardly any waited out the block: only a connection the process accepted in the same loop turn as the slow
    # GET may (see the README, "Blast radius").
    waited = [seconds for _, seconds, _ in results if seconds >= 0.8 * BLOCK_SECONDS]
    assert len(waited) <= max(2, len(results) // 100), f"{len(waited)} of {len(results)} waited out the block"
    # The slow GET ran once, on one process: no other loop was blocked for anything like the block (a busy machine
    # may stall a loop briefly, hence not "no stall at all").
    victim = blocked.json()["port"]
    worst = {port: probe.ready(fleet.app_address(port))["loop_lag_max_ms"] for port in fleet.app_ports}
    assert worst[victim] >= 0.8 * BLOCK_SECONDS * 1000, worst
    assert all(lag < 0.5 * BLOCK_SECONDS * 1000 for port, lag in worst.items() if port != victim), worst


# --- the benchmark program ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(nginx_options.variants()))
def test_nginx_accepts_every_option_the_benchmark_compares(tmp_path, name):
    rendered = render_nginx(NGINX_TEMPLATE.read_text(), 18080, [18101, 18102])
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_options.variants()[name].apply(rendered))
    for sub in ("logs", "tmp"):
        (tmp_path / "nginx" / sub).mkdir(parents=True)
    check = subprocess.run(
        [nginx_binary(), "-t", "-q", "-p", f"{tmp_path}/nginx/", "-c", str(conf), "-e", "stderr"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    if name != nginx_options.SHIPPED:
        assert conf.read_text() != rendered


def test_an_option_that_no_longer_matches_the_config_is_an_error():
    variant = nginx_options.Variant("gone", "", (nginx_options.Edit(r"^\s*no_such_directive;$", ""),))
    with pytest.raises(BenchError, match="gone"):
        variant.apply(NGINX_TEMPLATE.read_text())


def test_summary_counts_failures_and_delays():
    samples = [Sample("/json", i / 100, 0.005, 200) for i in range(97)]
    samples += [Sample("/json", 1.0, 0.3, 200), Sample("/json", 1.1, 2.0, 200), Sample("/json", 1.2, 0.01, 0)]
    stats = run.summarize(samples, duration=2.0)
    assert stats["requests"] == 100 and stats["failed"] == 1
    assert stats["over_100ms_pct"] == 2.0 and stats["over_1s_pct"] == 1.0
    assert stats["p50_ms"] == 5.0 and stats["max_ms"] == 2000.0 and stats["rps"] == 50.0


def test_the_cli_explains_itself_and_refuses_bad_arguments():
    script = [sys.executable, "-m", "bench", "blast-radius"]
    help_text = subprocess.run([*script, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert help_text.returncode == 0 and "--quick" in help_text.stdout
    bad = subprocess.run([*script, "--blocks", "0"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and "--blocks" in bad.stderr


@pytest.mark.fleet
def test_a_small_run_writes_the_table_the_raw_numbers_and_the_plots(tmp_path, mongo_uri):
    timing = scenarios.Timing(block_seconds=0.5, blocks=1, gap=0.5, warmup=0.3, tail=0.5)
    plan = [[scenarios.Scenario(2, "motor", nginx_options.SHIPPED, "steady")]]
    results, samples = run.run(plan, timing, log=lambda *_: None, db_uri=mongo_uri)
    meta = report.machine_meta(["--test"])
    report.write_outputs(
        tmp_path, results, samples, timing=timing, meta=meta, options=nginx_options.variants(), plot=True
    )
    (result,) = json.loads((tmp_path / "results.json").read_text())["scenarios"]
    assert result["shipped"] and result["stalls"] >= 1 and result["stalled_processes"] >= 1
    assert {path: stats["failed"] for path, stats in result["endpoints"].items()} == {"/json": 0, "/db": 0}
    with gzip.open(tmp_path / "requests.csv.gz", "rt") as raw:
        rows = raw.read().splitlines()
    assert rows[0] == "scenario,path,at_s,latency_ms,status"
    assert len(rows) - 1 == sum(stats["requests"] for stats in result["endpoints"].values())
    summary = (tmp_path / "summary.md").read_text()
    assert "| 2 | motor | least_conn | on | steady | `/db` |" in summary
    for png in ("blast-radius.png", "nginx-options.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{report.README_BEGIN}\nold figures\n{report.README_END}\nafter\n")
    report.update_readme(report.readme_block(results, {**meta, "seconds": 1}, timing, tmp_path, readme), readme)
    text = readme.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "old figures" not in text
    # The verdict is there; whether this tiny run on a busy machine met the target is not this test's business.
    assert ("Target met:" in text or "Target NOT met:" in text) and "blast-radius.png)" in text
