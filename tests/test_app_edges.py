"""Edges of one app process that a user or an operator sees: settings refused with the variable's name, the status
page's files answered like every other route, a failing database probe that stays a 503, client errors logged once.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import tornado.httpclient
import tornado.httpserver
import tornado.testing
from pymongo.errors import OperationFailure

from app import process_status
from app.settings import Settings, SettingsError
from app.web import make_app


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("mongodb://", "MONGODB_URI: Must provide at least one hostname"),
        ("mongodb://h:99999/", "MONGODB_URI: Port must be an integer"),
        ("mongodb://user:hunter2@h:0x/", "MONGODB_URI: Port contains non-digit characters"),
        ("mongodb+srv://", "MONGODB_URI: mongodb\\+srv:// needs a host name"),
    ],
)
def test_a_malformed_database_uri_is_refused_naming_the_variable(uri, message):
    with pytest.raises(SettingsError, match=message) as refused:
        Settings.from_mapping({"MONGODB_URI": uri})
    assert "hunter2" not in str(refused.value)  # the message may be logged: never the password


def test_a_valid_database_uri_is_accepted_without_connecting():
    uri = "mongodb://user:pw@db1.example,db2.example:27017/?replicaSet=rs0&retryWrites=false"
    assert Settings.from_mapping({"MONGODB_URI": uri}).mongodb_uri == uri
    # SRV needs DNS to parse: only its shape is checked, so no lookup happens here.
    assert Settings.from_mapping({"MONGODB_URI": "mongodb+srv://cluster.example/"}).mongodb_uri


@pytest.mark.parametrize("host", ["10.0.0.5", "::1", "localhost", "127.0.0.2"])
def test_an_address_nginx_cannot_reach_is_refused(host):
    with pytest.raises(SettingsError, match=f"FLEET_HOST: '{host}' is not supported: must be 127.0.0.1 or 0.0.0.0"):
        Settings.from_mapping({"FLEET_HOST": host})


def test_the_wildcard_address_is_allowed_in_development():
    assert Settings.from_mapping({"FLEET_HOST": "0.0.0.0"}).host == "0.0.0.0"


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


class RefusingStore:
    """A store whose database answers, but refuses this client (say, wrong credentials)."""

    mode = "motor"

    async def ping(self) -> None:
        raise OperationFailure("Authentication failed.", code=18)


def test_a_database_that_refuses_us_makes_readyz_a_503_not_a_500():
    async def ask() -> tuple[int, dict]:
        sock, port = tornado.testing.bind_unused_port()
        server = tornado.httpserver.HTTPServer(
            make_app(Settings.from_mapping({}), RefusingStore(), blocking=None, port=port)
        )
        server.add_sockets([sock])
        client = tornado.httpclient.AsyncHTTPClient(force_instance=True)
        try:
            response = await client.fetch(f"http://127.0.0.1:{port}/readyz", raise_error=False)
            return response.code, json.loads(response.body)
        finally:
            client.close()
            server.stop()

    code, body = asyncio.run(ask())
    assert code == 503
    assert (body["status"], body["error"]) == ("unavailable", "OperationFailure")


def test_a_process_whose_readyz_is_slow_but_whose_loop_answers_is_not_ready_not_stuck():
    snapshot = {"pid": 1, "draining": False}
    state, detail = process_status.classify("timeout", None, snapshot)
    assert state == "not ready" and "database slow or unreachable" in detail
    assert process_status.classify("timeout", None, None)[0] == "not responding"
