"""Overload through nginx, on whole fleets (README "Overload"): a TechEmpower-style burst of 512 concurrent clients
completes with no failed request, idempotent creates hold across processes, nginx answers "every process is full"
as a JSON 503 with Retry-After, and a short open-loop overload gets only 2xx/503 answers, no socket errors, and
the fleet recovers when it ends. Nothing here depends on how fast the machine is: the overload is made of
requests that sleep (/fault/sleep), so the fleet's capacity is set by FLEET_MAX_IN_FLIGHT, not by the CPU."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import time
import uuid

import pytest
from pymongo import MongoClient

from app.settings import DB_MODES, embedded_uri
from bench import openloop, wrk
from fleet.probe import get_json, wait_until
from tests.client import get, request
from tests.fleets import FleetFactory, module_fleet

pytestmark = pytest.mark.fleet

# TechEmpower's verifier loads each test type with 512 concurrent connections.
BURST_CLIENTS = 512
BURST_PATHS = ("/json", "/db", "/queries?queries=5", "/fortunes")

small_fleet = module_fleet("async", 2, FLEET_MAX_IN_FLIGHT="2", FLEET_FAULTS="true")


@pytest.fixture(scope="module", params=DB_MODES)
def burst_fleet(request):
    """A 2-process fleet per mode, without stall shedding: on a machine whose CPUs are shared by other work, a
    burst's own queueing stalls a loop past FLEET_WATCHDOG_MS, and the shedder's resets (nginx retries them, and
    answers 502 when every process sheds) are not what these tests are about (README "Overload" has the figures)."""
    factory = FleetFactory()
    try:
        yield factory(mode=request.param, FLEET_STALL_SHEDDING="false")
    finally:
        factory.stop_all()


def test_a_burst_of_512_concurrent_clients_completes_with_no_failed_request(burst_fleet):
    # wrk's timeout is far above the queueing a loaded 2-core machine adds, so only real failures count: socket
    # errors (connect, read, write, timeout) and any answer but 2xx/3xx.
    options = wrk.WrkOptions(threads=2, connections=BURST_CLIENTS, timeout_s=25)
    failed, served = {}, 0
    for path in BURST_PATHS:
        result = wrk.run(f"{burst_fleet.url}{path}", 3, options)
        failed[path] = result.errors
        served += result.requests
    assert failed == dict.fromkeys(BURST_PATHS, 0)
    assert served > 0


def test_simultaneous_creates_with_one_key_on_different_processes_make_one_note(burst_fleet):
    fleet = burst_fleet
    key, title = str(uuid.uuid4()), f"fleet idem {uuid.uuid4()}"
    # Straight to the app ports, alternating, so the repeats certainly race on different processes.
    urls = [f"{fleet.app_url(fleet.app_ports[i % fleet.procs])}/api/notes" for i in range(5)]
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        answers = list(
            pool.map(lambda url: request("POST", url, {"title": title}, headers={"Idempotency-Key": key}), urls)
        )
    assert [a.status for a in answers] == [201] * 5
    assert len({a.json()["id"] for a in answers}) == 1
    client = MongoClient(embedded_uri(fleet.db_port))
    try:
        assert client["fleet"]["notes"].count_documents({"title": title}) == 1
    finally:
        client.close()


def hold(url: str, count: int, seconds: float):
    pool = concurrent.futures.ThreadPoolExecutor(count)
    return pool, [pool.submit(get, f"{url}/fault/sleep?seconds={seconds}", timeout=30) for _ in range(count)]


def test_when_every_process_is_full_nginx_answers_a_json_503_with_retry_after(small_fleet):
    pool, held = hold(small_fleet.url, 4, 3)  # 2 per process: every process at FLEET_MAX_IN_FLIGHT
    try:
        # Asked of the processes' metrics listeners (not through nginx, which would take a slot from a held request).
        def in_flight():
            return [
                get_json(small_fleet.metrics_address(port), "/process.json")[1]["in_flight"]
                for port in small_fleet.app_ports
            ]

        assert wait_until(lambda: in_flight() == [2, 2], 10, 0.02), in_flight()
        refused = get(f"{small_fleet.url}/db")
        assert refused.status == 503
        assert refused.headers["Retry-After"] == "1"
        assert refused.headers["Content-Type"] == "application/json"
        assert "every app process is at its limit" in refused.json()["error"]
        # Probes go to the app ports, past nginx's bound, and are never refused by the processes.
        assert all(get(f"{small_fleet.app_url(port)}/readyz").status == 200 for port in small_fleet.app_ports)
    finally:
        statuses = [future.result().status for future in held]
        pool.shutdown()
    assert statuses == [200] * 4  # the requests in progress were served, not disturbed
    assert get(f"{small_fleet.url}/db").status == 200


def test_a_short_overload_gets_only_2xx_and_503_and_the_fleet_recovers(small_fleet):
    # Capacity: 2 processes x 2 requests of 0.2 s = 20 requests/s; offered: 100/s for 4 s, five times as many.
    path, rate, duration = "/fault/sleep?seconds=0.2", 100, 4.0
    samples = asyncio.run(
        openloop.run_load(
            small_fleet.port, path, t0=time.monotonic() + 0.1, duration=duration, rate=rate, connections=64
        )
    )
    statuses = collections.Counter(sample.status for sample in samples)
    assert sum(statuses.values()) == int(rate * duration)
    assert statuses[0] == 0, "socket errors or client timeouts"
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[200] > 0 and statuses[503] > 0, statuses  # served up to capacity, the rest refused
    # Refusals are answered at once, not after a wait: faster than the requests served (each sleeps 0.2 s).
    refused = sorted(s.latency for s in samples if s.status == 503)
    served = sorted(s.latency for s in samples if s.status == 200)
    assert refused[len(refused) // 2] < served[len(served) // 2]
    # Recovery: right after the load, a request is served.
    assert wait_until(lambda: get(f"{small_fleet.url}/db").status == 200, 2, 0.05)
