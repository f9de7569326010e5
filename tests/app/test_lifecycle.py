"""The drain (app/lifecycle.py) on one process: a draining process leaves the idle kept-alive connections nginx
holds open and serves what arrives on them, then exits (nginx never resends a POST it has written). Through a
fleet: tests/whole_fleet/test_keepalive.py.
"""

from __future__ import annotations

import json
import signal
import socket
import time

from fleet import probe


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
