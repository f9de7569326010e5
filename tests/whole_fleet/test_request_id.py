"""Request ids through nginx: made by nginx (or kept from a valid incoming one), returned by the app, and the
same id in the app's JSON log line (with pid, port, mode) and in nginx's access log (with the upstream)."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from fleet import probe
from tests.client import get, request
from tests.fleets import module_fleet

pytestmark = pytest.mark.fleet

MODE = "async"
NGINX_ID = re.compile(r"[0-9a-f]{32}\Z")


# DEBUG: the app logs every request, not only errors.
debug_fleet = module_fleet(MODE, FLEET_LOG_LEVEL="DEBUG")


def json_lines(path) -> list[dict]:
    """Every line of a log file, parsed: a line that is not JSON fails the test."""
    return [json.loads(raw) for raw in path.read_text().splitlines()] if path.exists() else []


def app_log_lines(config, request_id: str) -> list[dict]:
    """The app's log lines (every process's) that carry `request_id`."""
    found = []
    for port in config.app_ports:
        found += [
            line
            for line in json_lines(config.var_dir / "log" / f"app-{port}.log")
            if line.get("request_id") == request_id
        ]
    return found


def access_log_lines(config, request_id: str) -> list[dict]:
    return [
        line
        for line in json_lines(config.var_dir / "nginx" / "logs" / "access.log")
        if line["request_id"] == request_id
    ]


def test_nginx_makes_an_id_the_app_returns_and_both_log(debug_fleet):
    response = get(f"{debug_fleet.url}/json")
    assert response.status == 200
    request_id = response.headers["X-Request-ID"]
    assert NGINX_ID.match(request_id), request_id

    # supervisord copies the process's output to its log file, and nginx flushes its buffer every second.
    app_lines = probe.wait_until(lambda: app_log_lines(debug_fleet, request_id), 10)
    assert app_lines, f"no app log line with request id {request_id}"
    (line,) = [line for line in app_lines if line["logger"] == "fleet.access"]
    assert line["status"] == 200 and line["method"] == "GET" and line["path"] == "/json"
    assert line["mode"] == MODE
    assert line["port"] in debug_fleet.app_ports
    assert line["pid"] == probe.ready(debug_fleet.app_address(line["port"]))["pid"]

    access = probe.wait_until(lambda: access_log_lines(debug_fleet, request_id), 10)
    assert access, f"no access log line with request id {request_id}"
    (entry,) = access
    assert entry["uri"] == "/json" and entry["status"] == 200
    # The access log names the process that served it: the one whose log has the line.
    assert entry["upstream"] == "unix:" + debug_fleet.app_address(line["port"])


def test_a_valid_incoming_id_is_kept_end_to_end(debug_fleet):
    request_id = f"client-{uuid.uuid4()}"
    response = request(
        "POST", f"{debug_fleet.url}/api/notes", {"title": "traced"}, headers={"X-Request-ID": request_id}
    )
    assert response.status == 201
    assert response.headers["X-Request-ID"] == request_id
    app_lines = probe.wait_until(lambda: app_log_lines(debug_fleet, request_id), 10)
    assert [line["message"] for line in app_lines if line["logger"] == "fleet.access"] == [app_lines[-1]["message"]]
    assert probe.wait_until(lambda: access_log_lines(debug_fleet, request_id), 10)


@pytest.mark.parametrize("bad", ["short", "has space in it", 'quote"and\\backslash', "x" * 200])
def test_an_invalid_incoming_id_is_replaced(debug_fleet, bad):
    response = get(f"{debug_fleet.url}/json", headers={"X-Request-ID": bad})
    assert response.status == 200
    assert NGINX_ID.match(response.headers["X-Request-ID"])


def test_error_responses_carry_the_id_and_are_logged_with_it(debug_fleet):
    request_id = f"missing-{uuid.uuid4()}"
    response = get(f"{debug_fleet.url}/no/such/path", headers={"X-Request-ID": request_id})
    assert response.status == 404
    assert response.headers["X-Request-ID"] == request_id
    app_lines = probe.wait_until(lambda: app_log_lines(debug_fleet, request_id), 10)
    assert [(line["level"], line["status"]) for line in app_lines if line["logger"] == "fleet.access"] == [
        ("WARNING", 404)
    ]


def test_the_app_reached_directly_makes_its_own_id(debug_fleet):
    port = debug_fleet.app_ports[0]
    first = get(f"{debug_fleet.app_url(port)}/healthz").headers["X-Request-ID"]
    second = get(f"{debug_fleet.app_url(port)}/healthz").headers["X-Request-ID"]
    assert NGINX_ID.match(first) and NGINX_ID.match(second) and first != second


def test_every_app_log_line_is_json_with_pid_port_and_mode(debug_fleet):
    for port in debug_fleet.app_ports:
        lines = json_lines(debug_fleet.var_dir / "log" / f"app-{port}.log")
        assert any(line["message"].startswith("listening on") for line in lines)
        pid = probe.ready(debug_fleet.app_address(port))["pid"]
        for line in lines:
            assert (line["pid"], line["port"], line["mode"]) == (pid, port, MODE), line
            assert {"time", "level", "logger", "message"} <= set(line), line
