"""The status page's routes on one process (app/handlers/status_page.py): its files are answered like every
route (request ids, JSON 405s), and a client error is logged once; the page leaks no database credentials, and
it can be turned off. Through nginx in a browser: tests/whole_fleet/test_status_page.py.
"""

from __future__ import annotations

import json

import pytest
import tornado.httpclient
import tornado.httpserver
import tornado.testing

from fleet.sandbox import free_port_block
from tests.client import get
from tests.fleets import app_processes


def test_the_status_page_files_are_answered_like_every_route(start_app):
    app = start_app(FLEET_DB_MODE="motor")
    client = tornado.httpclient.HTTPClient()
    try:
        script = client.fetch(f"{app.url}/status.js")
        assert script.code == 200 and "lagHotMs" in script.body.decode()
        assert len(script.headers["X-Request-ID"]) == 32
        refused = client.fetch(f"{app.url}/status.css", method="POST", body=b"", raise_error=False)
        assert refused.code == 405
        assert refused.headers["Content-Type"] == "application/json"
        assert json.loads(refused.body) == {"error": "method not allowed"}
        assert refused.headers["X-Request-ID"]
        # A client error is logged once (fleet.access), not a second time as a Tornado warning.
        missing = client.fetch(f"{app.url}/nowhere", raise_error=False)
        assert missing.code == 404
        report = json.loads(client.fetch(f"{app.url}/status.json").body)
        assert report["stall_threshold_ms"] == 300
    finally:
        client.close()
    app.stop()
    lines = app.log_text().splitlines()
    assert len([line for line in lines if "/nowhere" in line]) == 1, lines
    assert len([line for line in lines if "/status.css" in line]) == 1, lines


@pytest.fixture
def lone_process(tmp_path):
    """Start one app process whose database is unreachable, with the given extra settings; returns the process."""
    with app_processes(tmp_path, ready_path="/healthz", FLEET_DB_TIMEOUT_MS="200", FLEET_DB_MODE="async") as start:
        yield start


def test_the_status_page_leaks_no_database_credentials(lone_process):
    dead_db = free_port_block(1)
    secret = "s3cret-Passw0rd"
    app = lone_process(MONGODB_URI=f"mongodb://fleet-admin:{secret}@127.0.0.1:{dead_db}/?authSource=admin")
    url = app.url
    report = get(f"{url}/status.json")
    assert report.status == 200
    (process,) = report.json()["processes"]
    assert process["state"] == "not ready"  # the database is unreachable; the page says so
    assert "503" in process["detail"]
    bodies = [report.body, get(f"{url}/status").body, get(f"http://127.0.0.1:{app.metrics_port}/metrics").body]
    for body in bodies:
        assert secret.encode() not in body
        assert b"fleet-admin" not in body


def test_the_status_page_can_be_turned_off(lone_process):
    url = lone_process(FLEET_STATUS_PAGE="false").url
    # /openapi.json is registered with the status page and follows its switch (app/web.py).
    for path in ("/status", "/status.json", "/status.js", "/openapi.json"):
        response = get(url + path)
        assert response.status == 404, path
        assert response.json() == {"error": f"no such endpoint: {path}"}
