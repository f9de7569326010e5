"""The TechEmpower endpoints follow the TFB rules (DESIGN.md, "Benchmark workload"), in every mode, and so does the
plain-Tornado reference that `scripts/bench --compare` measures the fleet against (bench/plain_tornado.py)."""

import html
import json
import re
import socket
import time

import pytest
from pymongo import MongoClient

from app.handlers.benchmark import parse_queries
from app.settings import DB_MODES
from bench.compare import ComparePlan, plain_reference
from fleet.sandbox import start_app
from fleet.seed import fortunes
from tests.client import get

PLAIN = "plain-tornado-"


@pytest.fixture(scope="module", params=[*DB_MODES, *(PLAIN + mode for mode in DB_MODES)])
def app_url(request, mongo_uri, tmp_path_factory):
    """An app process in each mode, and the plain reference (one worker) on each driver, on the seeded database."""
    if request.param.startswith(PLAIN):
        folder = tmp_path_factory.mktemp("plain")
        plan = ComparePlan(mode=request.param.removeprefix(PLAIN), procs=1)
        with plain_reference(plan, mongo_uri, (), folder) as target:
            yield target.url
        return
    app = start_app({"FLEET_DB_MODE": request.param, "MONGODB_URI": mongo_uri}, tmp_path_factory.mktemp("app"))
    try:
        yield app.url
    finally:
        app.stop()


def check_common_headers(response, content_type):
    assert response.status == 200
    assert response.headers["Server"]
    assert response.headers["Date"]
    assert response.headers["Content-Type"] == content_type
    assert "Content-Length" in response.headers or response.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Encoding" not in response.headers


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, 1), ("", 1), ("foo", 1), ("0", 1), ("-5", 1), ("1", 1), ("20", 20), ("500", 500), ("501", 500), ("1.5", 1)],
)
def test_queries_parameter_is_clamped(raw, expected):
    assert parse_queries(raw) == expected


def test_json(app_url):
    response = get(f"{app_url}/json")
    check_common_headers(response, "application/json")
    assert response.json() == {"message": "Hello, World!"}


def test_plaintext_and_pipelining(app_url):
    response = get(f"{app_url}/plaintext")
    check_common_headers(response, "text/plain")
    assert response.body == b"Hello, World!"
    # Three pipelined requests on one connection get three responses, in order.
    host, port = app_url[len("http://") :].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
        data = b""
        while data.count(b"Hello, World!") < 3:
            chunk = sock.recv(65536)
            assert chunk, "connection closed early"
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 3


def test_date_header_changes(app_url):
    first = get(f"{app_url}/json").headers["Date"]
    # Past the next whole second of the clock the process shares with us (the header's resolution): any request
    # after that gets a later Date, however long it takes.
    time.sleep(1.05 - time.time() % 1)
    assert get(f"{app_url}/json").headers["Date"] != first


def test_db_returns_one_world(app_url):
    response = get(f"{app_url}/db")
    check_common_headers(response, "application/json")
    world = response.json()
    assert set(world) == {"id", "randomNumber"}
    assert 1 <= world["id"] <= 10_000 and 1 <= world["randomNumber"] <= 10_000


@pytest.mark.parametrize(("raw", "count"), [("", 1), ("abc", 1), ("0", 1), ("7", 7), ("600", 500)])
def test_queries_returns_a_list(app_url, raw, count):
    response = get(f"{app_url}/queries?queries={raw}")
    check_common_headers(response, "application/json")
    worlds = response.json()
    assert isinstance(worlds, list) and len(worlds) == count
    assert all(set(w) == {"id", "randomNumber"} for w in worlds)


def test_updates_returns_and_persists_new_values(app_url, mongo_uri):
    response = get(f"{app_url}/updates?queries=20")
    check_common_headers(response, "application/json")
    worlds = response.json()
    assert len(worlds) == 20
    with MongoClient(mongo_uri) as client:
        stored = {
            d["_id"]: d["randomNumber"] for d in client.fleet.world.find({"_id": {"$in": [w["id"] for w in worlds]}})
        }
    assert all(stored[w["id"]] == w["randomNumber"] for w in worlds)
    assert get(f"{app_url}/updates?queries=x").status == 200
    assert len(get(f"{app_url}/updates?queries=0").json()) == 1


def test_fortunes_are_sorted_escaped_and_complete(app_url):
    response = get(f"{app_url}/fortunes")
    check_common_headers(response, "text/html; charset=utf-8")
    page = response.text
    assert page.startswith("<!DOCTYPE html>")
    assert "<script>" not in page and "&lt;script&gt;" in page
    rows = re.findall(r"<tr><td>(\d+)</td><td>(.*?)</td></tr>", page)
    messages = [html.unescape(m) for _, m in rows]
    expected = sorted([f["message"] for f in fortunes()] + ["Additional fortune added at request time."])
    assert messages == expected
    assert "フレームワークのベンチマーク" in messages
    assert json.loads('"\\u30d5"') in page  # UTF-8 in the body, not entity-escaped
