"""The production profile seen from outside (README "Security"): one production fleet, clients on other loopback
addresses (127.0.0.2, ...) so that nginx sees a client that is not the host.

The internals (status page, its files, /status.json, /openapi.json) are refused to them unless they carry the
bearer token, the benchmark and fault endpoints are not there, /healthz and the API are served; nginx refuses on
its own (its own JSON bodies) and the app refuses too when reached without nginx. One address holding thousands of
slow-body connections leaves another address served.
"""

from __future__ import annotations

import collections
import json
import resource
import select
import socket
import time

import pytest

from fleet import probe
from tests import raw_http
from tests.fleets import module_fleet

pytestmark = pytest.mark.fleet

TOKEN = "status-token-for-the-security-tests-0123456789"
production_fleet = module_fleet("async", 2, FLEET_ENV="production", FLEET_SECRET_KEY="k" * 43, FLEET_STATUS_TOKEN=TOKEN)

INTERNALS = ("/status", "/status.json", "/status.js", "/status.css", "/openapi.json")
BENCHMARKS = ("/json", "/plaintext", "/db", "/queries?queries=2", "/updates?queries=2", "/fortunes")
FAULTS = ("/fault/block?seconds=1", "/fault/sleep?seconds=1")
# nginx's own answers (deploy/nginx.conf, $fleet_error): the app words its refusals differently.
NGINX_FORBIDDEN = "forbidden: the fleet's internals are served only to allowed addresses or with the bearer token"
NGINX_NOT_FOUND = "not found"


def fetch(url: str, path: str, source: str, headers: dict[str, str] | None = None, *, method: str = "GET", body=b""):
    """One request on a new connection from `source`; (status, parsed JSON body or None)."""
    conn = raw_http.SourceConnection(url, source)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, None


def test_a_client_that_is_not_the_host_gets_the_service_and_nothing_else(production_fleet):
    url = production_fleet.url
    for path in (*INTERNALS, "/readyz"):  # /readyz names a process's pid; a load balancer asks /hostz
        assert fetch(url, path, "127.0.0.2") == (403, {"error": NGINX_FORBIDDEN}), path
    assert fetch(url, "/hostz", "127.0.0.2")[0] == 200
    for path in BENCHMARKS:
        assert fetch(url, path, "127.0.0.2")[0] == 404, path
    for path in FAULTS:
        # nginx's own 404 (the app's would name the path): refused before any process sees it.
        assert fetch(url, path, "127.0.0.2") == (404, {"error": NGINX_NOT_FOUND}), path
    assert fetch(url, "/healthz", "127.0.0.2")[0] == 200
    assert fetch(url, "/api/notes?limit=1", "127.0.0.2")[0] == 200
    json_type = {"Content-Type": "application/json"}
    status, note = fetch(url, "/api/notes", "127.0.0.2", json_type, method="POST", body=b'{"title": "from afar"}')
    assert status == 201
    assert fetch(url, f"/api/notes/{note['id']}", "127.0.0.2", method="DELETE")[0] == 204


def test_the_host_and_the_bearer_token_see_the_internals(production_fleet):
    url = production_fleet.url
    for path in INTERNALS:
        assert fetch(url, path, "127.0.0.1")[0] == 200, path
        assert fetch(url, path, "127.0.0.2", {"Authorization": f"Bearer {TOKEN}"})[0] == 200, path
    for wrong in (f"Bearer {TOKEN}x", f"Basic {TOKEN}", "Bearer ", TOKEN):
        assert fetch(url, "/status.json", "127.0.0.2", {"Authorization": wrong})[0] == 403, wrong
    # A client claiming to be the host changes nothing: nginx decides on the connection's address, and sets
    # X-Real-IP itself (and drops X-Forwarded-For) for the app.
    forged = {"X-Real-IP": "127.0.0.1", "X-Forwarded-For": "127.0.0.1", "X-Scheme": "https"}
    assert fetch(url, "/status.json", "127.0.0.2", forged)[0] == 403


def test_the_app_refuses_the_internals_and_has_no_benchmark_or_fault_routes_without_nginx(production_fleet):
    """A process reached some other way than through nginx's checks (nginx sets X-Real-IP from the connection)."""
    app = production_fleet.app_url(production_fleet.app_ports[0])  # its unix socket
    far = {"X-Real-IP": "127.0.0.2"}

    def fetch_app(path: str, headers: dict[str, str] | None = None):
        response = probe.request("GET", app + path, headers=headers)
        return response.status, response.json() if response.status >= 400 else None

    for path in INTERNALS:
        status, body = fetch_app(path, far)
        assert status == 403 and body["error"].startswith("the fleet's internals are served in production"), path
        assert fetch_app(path, {**far, "Authorization": f"Bearer {TOKEN}"})[0] == 200, path
    for path in BENCHMARKS + FAULTS:
        status, body = fetch_app(path)
        assert status == 404 and body["error"].startswith("no such endpoint"), path


# 4,500 connections from one address that each send a request head and one byte of a body that never comes: more
# than nginx's worker_connections (4,096). Without a per-client limit outside /api/, each would hold a slot until
# client_body_timeout.
SLOW_CONNECTIONS = 4_500
CLIENT_CONNECTIONS = 32  # limit_conn client_conn in deploy/nginx.conf


@pytest.fixture
def many_descriptors():
    """Room for SLOW_CONNECTIONS sockets in this process (a CI machine's soft limit may be 1,024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = SLOW_CONNECTIONS + 500
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"the hard limit on open files ({hard}) is below the {needed} this test needs")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.usefixtures("many_descriptors")
def test_slow_bodies_from_one_address_leave_another_address_served(production_fleet):
    host, port = raw_http.address(production_fleet.url)
    head = b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\nX"
    sockets: list[socket.socket] = []
    try:
        for _ in range(SLOW_CONNECTIONS):
            sock = socket.socket()
            sock.settimeout(5)
            sock.bind(("127.0.0.3", 0))
            try:
                sock.connect((host, port))
                sock.sendall(head)
            except OSError:
                sock.close()  # nginx did not take it (backlog full): the attacker did not get this one either
                continue
            sock.setblocking(False)
            sockets.append(sock)
        assert len(sockets) > SLOW_CONNECTIONS // 2
        # Another address is served while they hold on (retried: a connect may wait in the backlog a moment).
        served = probe.wait_until(lambda: fetch_or_none(production_fleet.url, "/healthz", "127.0.0.4") == 200, 30)
        assert served, "127.0.0.4 was not served while 127.0.0.3 held its connections"
        # nginx refused all but a few at once: a 429, or (while its worker_connections were all taken) a close
        # without an answer. At most CLIENT_CONNECTIONS are in progress at a time (those, and any that took their
        # place, end with a 408 after client_body_timeout).
        answers = read_answers(sockets, deadline=time.monotonic() + 30, until=len(sockets) - CLIENT_CONNECTIONS)
        statuses = collections.Counter(int(data.split()[1]) if data else "closed" for data in answers.values())
        assert set(statuses) <= {408, 429, "closed"}, statuses
        assert statuses[429] > len(sockets) // 2, statuses
        assert statuses[429] + statuses["closed"] >= len(sockets) - 2 * CLIENT_CONNECTIONS, statuses
        assert len(sockets) - len(answers) <= CLIENT_CONNECTIONS, statuses  # still held
    finally:
        for sock in sockets:
            sock.close()


def fetch_or_none(url: str, path: str, source: str) -> int | None:
    try:
        return fetch(url, path, source)[0]
    except OSError:
        return None


def read_answers(sockets: list[socket.socket], *, deadline: float, until: int) -> dict[socket.socket, bytes]:
    """What each socket received before the server closed it or answered (b"": closed without an answer), waiting
    until `until` have something (or the deadline)."""
    answered: dict[socket.socket, bytes] = {}
    while len(answered) < until and time.monotonic() < deadline:
        waiting = [sock for sock in sockets if sock not in answered]
        poller = select.poll()  # select() takes at most FD_SETSIZE (1,024) descriptors
        for sock in waiting:
            poller.register(sock, select.POLLIN)
        by_fd = {sock.fileno(): sock for sock in waiting}
        for fd, _ in poller.poll(100):
            sock = by_fd[fd]
            try:
                answered[sock] = sock.recv(4096)
            except OSError:
                answered[sock] = b""  # reset
    return answered
