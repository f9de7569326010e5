"""Upstream keep-alive (deploy/nginx.conf) is lossless: nginx never resends a POST it has written, so the app must
never close a kept-alive connection on which nginx may just have sent one. A storm of POSTs through nginx while
every process is restarted one by one (scripts/rolling-restart: each drains, app/lifecycle.py) fails none and loses
no acknowledged write. What stall shedding does on kept-alive connections is pinned in tests/test_runtime_core.py
and, through nginx, in tests/test_blast_radius.py."""

from __future__ import annotations

import json
import signal
import socket
import time

import pytest

from bench.loadgen import Load, all_note_ids
from fleet import probe
from fleet.supervisor import pid_alive
from tests.fleets import module_fleet
from tests.test_switch import processes, script, wait_for_requests

fleet = module_fleet("async", 2)


def http_exchange(sock: socket.socket, request: bytes) -> bytes:
    """Send one request on a kept-alive connection and read its whole response (Content-Length framed)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + content_length(data):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed by the app after {data!r}")
        data += chunk
    return data


def content_length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def test_a_draining_process_leaves_idle_connections_to_nginx_and_serves_what_arrives_on_them(start_app):
    # What nginx does with a cached upstream connection: one request, then idle; the process is told to stop; nginx
    # picks the idle connection and sends a POST. The app must not have closed it (nginx would answer 502 and not
    # resend the POST); it answers, with Connection: close, and exits once nginx closes the connection.
    app = start_app(FLEET_DRAIN_SECONDS="10")
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
        assert http_exchange(sock, b"GET /json HTTP/1.1\r\nHost: app\r\n\r\n").startswith(b"HTTP/1.1 200")
        app.process.send_signal(signal.SIGTERM)
        # The drain has begun once the port refuses new connections; then wait well past the 0.25 s of quiet after
        # which the first version's drain closed idle connections.
        assert probe.wait_until(lambda: probe.get_json(app.port, "/healthz", timeout=1)[0] == 0, 10)
        time.sleep(1.0)
        body = json.dumps({"title": "sent on an idle kept-alive connection"}).encode()
        post = b"POST /api/notes HTTP/1.1\r\nHost: app\r\nContent-Type: application/json\r\n"
        answer = http_exchange(sock, post + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        assert answer.startswith(b"HTTP/1.1 201"), answer[:200]
        assert b"\r\nConnection: close\r\n" in answer
        assert app.process.poll() is None  # still draining: the connection is open
    assert app.process.wait(10) == 0  # nginx (here: the test) closed it, so the drain ends


@pytest.mark.fleet
def test_the_shipped_upstream_keeps_connections_alive(fleet):
    rendered = (fleet.var_dir / "nginx.conf").read_text()
    assert "keepalive 64;" in rendered and "proxy_http_version 1.1;" in rendered


@pytest.mark.fleet
def test_a_post_storm_through_kept_alive_connections_survives_a_rolling_restart(fleet):
    before = processes(fleet)
    # 24 clients, each sending POSTs back to back on its own keep-alive connection: nginx's upstream connections
    # are all busy or briefly idle, which is when a process closing one would lose a POST.
    with Load(fleet.url, clients=24, rate=50, cycle=("write",)) as load:
        wait_for_requests(load, 100)
        restarted = script(fleet, "rolling-restart")
        wait_for_requests(load, 100)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    after = processes(fleet)
    for port in fleet.app_ports:
        assert after[port].pid != before[port].pid and after[port].ready
        assert not pid_alive(before[port].pid)
    result = load.result
    failed = result.failures
    assert failed == [], f"{len(failed)} of {len(result.outcomes)} POSTs failed: {failed[:5]}"
    assert len(result.acknowledged) >= 200
    missing = set(result.acknowledged) - all_note_ids(fleet.url)
    assert not missing, f"{len(missing)} acknowledged writes cannot be read back"
