"""The drain (app/lifecycle.py) on one process: a draining process leaves the idle kept-alive connections nginx
holds open and serves what arrives on them, then exits (nginx never resends a POST it has written); stopped under
a storm of new connections straight at it, it loses (almost) none. Through a fleet: tests/whole_fleet/test_keepalive.py
and tests/whole_fleet/test_switch.py.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import sys
import threading
import time

from fleet import probe
from fleet.sandbox import free_port_block, start_process, stop_process


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


CLIENTS = 16

# Connections a storm of new connects can lose in the microseconds between the drain's last accept and its close
# of the listening socket (see the test that uses it).
MAX_RESET_IN_CLOSE_WINDOW = 2


def test_a_process_stopped_under_load_resets_almost_no_connection(mongo_uri, tmp_path):
    """Straight at one process, without nginx to retry what it can: while clients open connection after connection,
    SIGTERM. Each request must be answered, or refused at connect (never sent, so safe to retry anywhere); a
    connection reset or closed after the request was sent is a request lost.

    The drain takes every queued connection and closes the listener right after the accept that finds the queue
    empty; a handshake the kernel completes in the microseconds between that accept and the close is still reset
    (Linux resets a closed listener's queue; only a second SO_REUSEPORT listener with tcp_migrate_req could take
    it over). A plain close lost 3-16 requests per stop under this storm; the drain loses 0 in most runs and at
    most one or two in ~1,100 (seen: 1 of 1,098 in a CI-like run), so that is the bound asserted."""
    port = free_port_block(1)
    env = {"MONGODB_URI": mongo_uri, "FLEET_ENV_FILE": "", "FLEET_METRICS_PORT_OFFSET": "0"}
    process = start_process([sys.executable, "-m", "app", "--port", str(port)], tmp_path / "app.log", env)
    outcomes: list[str] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.connect()
            except ConnectionRefusedError:
                outcomes.append("refused")
                time.sleep(0.01)
                continue
            except OSError as exc:
                # The handshake completed in the close window and was reset (see above): counted with the lost.
                outcomes.append(f"lost at connect: {exc!r}")
                continue
            try:
                conn.request("GET", "/json")
                response = conn.getresponse()
                response.read()
                outcomes.append(str(response.status))
            except (OSError, http.client.HTTPException) as exc:
                outcomes.append(f"lost: {exc!r}")
            finally:
                conn.close()

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    try:
        assert probe.wait_until(lambda: probe.ready(port), 20), (tmp_path / "app.log").read_text()[-2000:]
        for thread in threads:
            thread.start()
        assert probe.wait_until(lambda: len(outcomes) > 300, 20)
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
        probe.wait_until(lambda: outcomes.count("refused") > 20, 5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
        stop_process(process)
    lost = [o for o in outcomes if o not in ("200", "refused")]
    assert len(lost) <= MAX_RESET_IN_CLOSE_WINDOW, f"{len(lost)} of {len(outcomes)} requests lost: {lost[:5]}"
    assert outcomes.count("refused") > 0  # the stop really happened while clients were connecting
    assert "taken from the accept queue" in (tmp_path / "app.log").read_text()
