"""nginx protecting the processes, generated bad input, and a crash under write load: one fleet, through nginx.

Every error a client can provoke is JSON (nginx's own included), per-client limits refuse an abusive client while
others are served, slow clients are cut off, a property-based test finds no 5xx and no change to the stored data
except through valid requests, and a SIGKILL under load fails no GET and loses no acknowledged write. The tests
that stop or kill processes come last: they leave the fleet running, but restarted.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import os
import select
import signal
import socket
import stat
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest
from bson import ObjectId
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import MongoClient

from app.notes import BODY_MAX, TAG_MAX, TAGS_MAX, TITLE_MAX
from fleet import launcher, probe
from fleet.supervisor import Supervisor
from tests import raw_http
from tests.client import get, request
from tests.fleets import module_fleet

pytestmark = pytest.mark.fleet

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}
# nginx's settings that these tests lean on (deploy/nginx.conf).
API_BURST = 40
API_CONNECTIONS = 20
HEADER_TIMEOUT = 10


hard_fleet = module_fleet("async")


@pytest.fixture(scope="module")
def notes_collection(hard_fleet):
    """The fleet's own `notes` collection, read directly: the ground truth of what is stored."""
    client = MongoClient(f"mongodb://127.0.0.1:{hard_fleet.db_port}/?retryWrites=false", serverSelectionTimeoutMS=5000)
    try:
        yield client["fleet"]["notes"]
    finally:
        client.close()


def assert_security_headers(headers) -> None:
    lowered = {name.lower(): value for name, value in headers.items()}
    for name, value in SECURITY_HEADERS.items():
        assert lowered.get(name) == value, (name, lowered)
    assert lowered.get("server") == "nginx"


# --- nginx's own errors -------------------------------------------------------------------------------------------

NGINX_ERRORS = [
    # (what, raw request, status, message start)
    (
        "body over the limit",
        b"POST /api/notes HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n",
        413,
        "request body",
    ),
    ("request line too long", b"GET /" + b"a" * 40_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "request line"),
    ("header too large", b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 400, "bad request"),
    ("malformed header", b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400, "bad request"),
    ("not HTTP", b"GARBAGE\r\n\r\n", 400, "bad request"),
    ("no Host in HTTP/1.1", b"GET / HTTP/1.1\r\n\r\n", 400, "bad request"),
    ("TRACE", b"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n", 405, "method not allowed"),
    ("unknown transfer coding", b"POST /api/notes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "not"),
    ("HTTP/2 over plain text", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP version"),
    (
        "nginx's internal error location",
        b"GET /_fleet_error HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        404,
        "not",
    ),
]


@pytest.mark.parametrize(("what", "raw", "status", "message"), NGINX_ERRORS, ids=[e[0] for e in NGINX_ERRORS])
def test_nginx_answers_bad_requests_itself_in_json(hard_fleet, what, raw, status, message):
    got_status, headers, body = raw_http.parse(raw_http.exchange(hard_fleet.url, raw))
    assert got_status == status, (what, body)
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"].startswith(message)
    assert_security_headers(headers)


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /api/notes HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
        b"GET /api/notes HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n",
        b'GET /api/notes HTTP/1.1\r\nHost: a"b\r\n\r\n',
        b"GET /api/notes HTTP/1.1\r\nHost: \xc3\xa9\r\n\r\n",
    ],
    ids=["control character in a header", "DEL in a header", "quote in Host", "non-ASCII Host"],
)
def test_requests_nginx_forwards_but_tornado_refuses_are_json_too(hard_fleet, raw):
    status, headers, body = raw_http.parse(raw_http.exchange(hard_fleet.url, raw))
    assert (status, headers["content-type"]) == (400, "application/json")
    assert json.loads(body)["error"].startswith("bad request: malformed request line, headers or body framing")
    assert_security_headers(headers)


def test_a_chunked_body_over_the_limit_is_a_json_413(hard_fleet):
    chunk = b"a" * 100_000
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)) + b"0\r\n\r\n"
    raw = b"POST /api/notes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    status, headers, body = raw_http.parse(raw_http.exchange(hard_fleet.url, raw))
    assert (status, json.loads(body)["error"]) == (413, "request body too large (limit 256 KB)")
    assert_security_headers(headers)


def test_the_largest_valid_note_passes_the_body_limit(hard_fleet):
    # Every character \u-escaped: the worst case for a note that the API accepts.
    note = {"title": "é" * TITLE_MAX, "body": "☃" * BODY_MAX, "tags": ["ü" * TAG_MAX] * TAGS_MAX}
    raw = json.dumps(note, ensure_ascii=True).encode()
    assert len(raw) > 60_000
    response = request("POST", f"{hard_fleet.url}/api/notes", raw=raw)
    assert response.status == 201, response.body[:200]
    assert request("DELETE", f"{hard_fleet.url}/api/notes/{response.json()['id']}").status == 204


def test_large_bodies_and_responses_pass_when_the_fleet_folder_is_private(hard_fleet):
    """A checkout in a private folder (/root is 0700): nginx's workers (`nobody` under a root master) cannot
    enter var/nginx/tmp, so nothing may need a temp file there."""
    os.chmod(hard_fleet.var_dir, 0o700)
    try:
        big = json.dumps({"title": "big", "body": "a" * 200_000}).encode()  # over nginx's default 16k body buffer
        refused = request("POST", f"{hard_fleet.url}/api/notes", raw=big)
        assert (refused.status, refused.json()["field"]) == (400, "body")  # the app's answer, not nginx's 500
        response = get(f"{hard_fleet.url}/queries?queries=500")
        assert response.status == 200 and len(response.json()) == 500
    finally:
        os.chmod(hard_fleet.var_dir, 0o755)


def test_app_responses_carry_the_security_headers(hard_fleet):
    for path, status in (("/api/notes?limit=1", 200), ("/json", 200), ("/fortunes", 200), ("/nope", 404)):
        response = get(hard_fleet.url + path)
        assert response.status == status, path
        assert_security_headers(response.headers)
    invalid = request("POST", f"{hard_fleet.url}/api/notes", {"title": {"$ne": None}})
    assert invalid.status == 400
    assert_security_headers(invalid.headers)


# --- per-client limits --------------------------------------------------------------------------------------------


ABUSIVE_CONNECTIONS = 4


def test_a_client_over_the_request_rate_gets_json_429s_and_others_are_served(hard_fleet):
    path = "/api/notes/ffffffffffffffffffffffff"  # a 404 from the app: cheap, and no database write
    # From a few connections at once: one connection's requests, one after the other, may come slower than the
    # rate allows on a loaded 2-core machine, and would then all be served.
    connections = [raw_http.SourceConnection(hard_fleet.url, "127.0.0.2") for _ in range(ABUSIVE_CONNECTIONS)]
    started = time.monotonic()
    with ThreadPoolExecutor(ABUSIVE_CONNECTIONS) as pool:
        batches = list(pool.map(lambda conn: [conn.fetch("GET", path) for _ in range(50)], connections))
    elapsed = time.monotonic() - started
    answers = list(itertools.chain.from_iterable(batches))
    abusive = connections[0]
    for conn in connections[1:]:
        conn.close()
    statuses = collections.Counter(status for status, _ in answers)
    assert set(statuses) == {404, 429}, statuses
    # At most the burst plus what the rate (20/s) allowed meanwhile got through.
    assert statuses[404] <= API_BURST + 20 * elapsed + 1, (statuses, elapsed)
    refused = next(body for status, body in answers if status == 429)
    assert json.loads(refused)["error"].startswith("too many requests")
    # The benchmark endpoints are not limited, and the host itself (127.0.0.1) is not limited at all.
    assert {abusive.fetch("GET", "/json")[0] for _ in range(50)} == {200}
    abusive.close()
    host = raw_http.SourceConnection(hard_fleet.url, "127.0.0.1")
    assert {host.fetch("GET", path)[0] for _ in range(100)} == {404}
    host.close()


def test_a_client_over_the_connection_limit_gets_json_429s(hard_fleet):
    """Requests whose body has not arrived are in progress: the first 20 hold their slots, the rest are refused
    at once; the held ones complete normally when their bodies arrive."""
    body = json.dumps({"title": "held"}).encode()
    head = b"POST /api/notes HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    sockets = [raw_http.connect(hard_fleet.url, source="127.0.0.3", timeout=5) for _ in range(API_CONNECTIONS + 5)]
    try:
        for sock in sockets:
            sock.sendall(head)
        # The 5 over the limit are refused at once; wait for them (a loaded machine may take a while), then give
        # a held one the chance to be answered wrongly too before counting.
        deadline = time.monotonic() + 5
        answered = []
        while len(answered) < 5 and time.monotonic() < deadline:
            answered, _, _ = select.select(sockets, [], [], 0.1)
        time.sleep(0.2)
        answered, _, _ = select.select(sockets, [], [], 0)
        assert len(answered) == 5
        for sock in answered:
            status, _, refused = raw_http.parse(sock.recv(65536))
            assert status == 429 and json.loads(refused)["error"].startswith("too many requests")
        created = []
        for sock in sockets:
            if sock not in answered:
                sock.sendall(body)
                status, _, note = raw_http.parse(sock.recv(65536))
                assert status == 201
                created.append(json.loads(note)["id"])
    finally:
        for sock in sockets:
            sock.close()
    assert len(created) == API_CONNECTIONS
    for note_id in created:
        assert request("DELETE", f"{hard_fleet.url}/api/notes/{note_id}").status == 204


# --- slow clients -------------------------------------------------------------------------------------------------


def test_slowloris_connections_are_cut_off_while_normal_requests_succeed(hard_fleet):
    """300 clients each trickle a request header a byte a second and never finish it. nginx holds them without
    involving a process, serves everyone else meanwhile, and closes them all at client_header_timeout."""
    slow = raw_http.SlowHeaderClients(hard_fleet.url, 300)
    held_at_3s = None
    try:
        with Repeat(lambda: get(f"{hard_fleet.url}/api/notes?limit=1", timeout=5), pause=0.05) as normal:
            while slow.open and time.monotonic() - slow.started < HEADER_TIMEOUT + 10:
                slow.trickle()
                if held_at_3s is None and time.monotonic() - slow.started >= 3:
                    held_at_3s = slow.open
                time.sleep(1)
    finally:
        slow.close()
    failures = normal.failures()
    print(
        f"\nslowloris: {len(slow.sockets)} slow connections, open after 3 s: {held_at_3s}, last closed after "
        f"{max(slow.closed_at.values(), default=float('nan')):.1f} s; normal requests meanwhile: "
        f"{len(normal.results)} sent, {len(failures)} failed"
    )
    assert held_at_3s == len(slow.sockets), "nginx should hold slow clients (cheaply), not refuse them"
    assert slow.open == 0, f"{slow.open} slow connections still open"
    assert slow.answers == [], "a slow client got an answer"
    assert len(normal.results) > 20 and failures == [], failures[:5]


# --- generated requests -------------------------------------------------------------------------------------------

KEYS = st.sampled_from(["title", "body", "tags", "$where", "$ne", "$set", "$gt", "a.b", "title.x", "_id", ""])
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)  # lone surrogates included
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | TEXT
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS | TEXT, inner, max_size=4),
    max_leaves=12,
)
NOTE_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "title": st.text(min_size=1, max_size=TITLE_MAX + 5) | JSON_VALUES,
        "body": st.text(max_size=300) | JSON_VALUES,
        "tags": st.lists(st.text(min_size=0, max_size=TAG_MAX + 2), max_size=TAGS_MAX + 2) | JSON_VALUES,
        "$set": JSON_VALUES,
        "owner": JSON_VALUES,
    },
)
VALID_NOTE = st.fixed_dictionaries(
    {"title": st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)},
    optional={"body": st.text(max_size=50), "tags": st.lists(st.text(min_size=1, max_size=10), max_size=3)},
).filter(lambda note: note["title"].strip())
INVALID_BODIES = (
    NOTE_FIELDS.map(json.dumps)
    | JSON_VALUES.map(json.dumps)
    | st.binary(max_size=200).map(lambda raw: raw.decode("latin-1"))
    | st.sampled_from(["", "{", '{"title": ', "[" * 5000, '{"title": "x"}' * 2, "NaN", '{"title": 1e400}'])
)
# Four in ten bodies are valid notes.
BODIES = st.integers(0, 9).flatmap(lambda roll: VALID_NOTE.map(json.dumps) if roll < 4 else INVALID_BODIES)
PARAM_NAMES = st.sampled_from(["limit", "cursor", "cursor[$ne]", "limit[$gt]", "$where", "title", "a.b"]) | TEXT
PARAM_VALUES = st.sampled_from(["0", "1", "20", "100", "101", "-1", "ffffffffffffffffffffffff", "null"]) | TEXT
HEADER_NAMES = st.sampled_from(
    [
        "Content-Type",
        "Accept",
        "X-Forwarded-For",
        "X-Real-IP",
        "X-Forwarded-Proto",
        "X-Scheme",
        "If-None-Match",
        "Cookie",
        "Origin",
        "Authorization",
        "Range",
        "Accept-Encoding",
        "Content-Encoding",
        "X-Request-ID",
        "Host",
    ]
) | st.from_regex(r"X-[A-Za-z0-9-]{1,20}", fullmatch=True)
# Any byte but CR and LF (which would end the header): control characters and obs-text included.
HEADER_VALUES = st.text(st.characters(min_codepoint=0x01, max_codepoint=0xFF, exclude_characters="\r\n"), max_size=60)
METHODS = st.sampled_from(["GET", "GET", "POST", "POST", "POST", "PATCH", "PATCH", "DELETE", "PUT", "OPTIONS", "HEAD"])
# Mostly where the method means something, so that valid requests are common; sometimes anywhere.
TARGETS = {
    "POST": ["collection", "collection", "collection", "known"],
    "PATCH": ["known", "known", "known", "other", "collection"],
    "DELETE": ["known", "known", "other", "collection"],
}


def check_stored_note(doc: dict) -> None:
    """What every stored note must be, however it got there: exactly the note fields, within their limits, and
    its version (its ETag: app/versions.py)."""
    assert set(doc) == {"_id", "title", "body", "tags", "created_at", "updated_at", "version"}, doc
    assert isinstance(doc["version"], int) and doc["version"] >= 1
    assert isinstance(doc["title"], str) and 1 <= len(doc["title"]) <= TITLE_MAX and doc["title"].strip()
    assert isinstance(doc["body"], str) and len(doc["body"]) <= BODY_MAX
    assert isinstance(doc["tags"], list) and len(doc["tags"]) <= TAGS_MAX
    assert all(isinstance(tag, str) and 1 <= len(tag) <= TAG_MAX for tag in doc["tags"])


def snapshot(collection) -> dict[str, dict]:
    return {str(doc["_id"]): doc for doc in collection.find({})}


def test_generated_requests_never_get_a_5xx_and_change_data_only_when_valid(hard_fleet, notes_collection):
    seen = collections.Counter()

    @settings(
        max_examples=300,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(data=st.data())
    def one_request(data):
        before = snapshot(notes_collection)
        method = data.draw(METHODS, "method")
        # The same draws whatever is stored, so that hypothesis can replay and shrink an example.
        target = data.draw(st.sampled_from(TARGETS.get(method, ["collection", "known", "other"])), "target")
        pick = data.draw(st.integers(min_value=0, max_value=1000), "which stored note")
        other = data.draw(st.just(str(ObjectId())) | TEXT.filter(bool), "other id")
        known = sorted(before)[pick % len(before)] if before else None
        note_id = {"collection": None, "known": known, "other": other}[target]
        quoted = urllib.parse.quote(note_id, safe="", errors="surrogatepass") if note_id is not None else None
        path = "/api/notes" + (f"/{quoted}" if quoted is not None else "")
        params = data.draw(st.lists(st.tuples(PARAM_NAMES, PARAM_VALUES), max_size=3), "params")
        params = params if data.draw(st.booleans(), "with params") else []
        if params or data.draw(st.booleans(), "an empty query"):
            path += "?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote, errors="surrogatepass")
        headers = data.draw(st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=3), "headers")
        body = data.draw(BODIES, "body") if method in ("POST", "PATCH", "PUT") or data.draw(st.booleans()) else None
        raw = body.encode("utf-8", "surrogatepass") if body is not None else None

        response = request(method, hard_fleet.url + path, raw=raw, headers=headers)
        seen[response.status] += 1
        after = snapshot(notes_collection)

        assert response.status < 500, (response.status, response.body[:300])
        if response.status >= 400 and method != "HEAD":
            assert isinstance(json.loads(response.body)["error"], str), response.body
        elif response.body and method != "HEAD":
            json.loads(response.body)
        for doc in after.values():
            check_stored_note(doc)
        if response.status >= 300 or method in ("GET", "HEAD"):
            assert after == before, "stored data changed on a request that was refused or only read"
        elif method == "POST":
            assert response.status == 201
            created = response.json()["id"]
            assert set(after) == set(before) | {created} and created not in before
        elif method == "PATCH":
            assert response.status == 200 and note_id in before
            assert {k: v for k, v in after.items() if k != note_id} == {k: v for k, v in before.items() if k != note_id}
            assert after[note_id]["title"] == response.json()["title"]
        elif method == "DELETE":
            assert response.status == 204 and note_id in before
            assert set(after) == set(before) - {note_id}
        else:
            pytest.fail(f"{method} succeeded: {response.status}")

    one_request()
    print(f"\ngenerated requests by status: {dict(sorted(seen.items()))}")
    # The test exercises both sides: valid requests that change data, and invalid ones that must not.
    assert seen[201] > 0 and seen[400] > 0 and seen[404] > 0, seen


# --- what is reachable --------------------------------------------------------------------------------------------


def listening_sockets() -> dict[str, tuple[str, int]]:
    """Every listening TCP socket on this host, {inode: (address, port)}, from /proc/net."""
    found = {}
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        with open(f"/proc/net/{table}") as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state != "0A":  # LISTEN
                    continue
                hex_address, hex_port = local.split(":")
                packed = bytes.fromhex(hex_address)
                # The kernel prints each 32-bit word in host (little-endian) order.
                words = b"".join(packed[i : i + 4][::-1] for i in range(0, len(packed), 4))
                found[inode] = (socket.inet_ntop(family, words), int(hex_port, 16))
    return found


def listening_addresses(pid: int, sockets: dict[str, tuple[str, int]]) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket that process `pid` listens on."""
    addresses = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:[") and target[8:-1] in sockets:
                addresses.append(sockets[target[8:-1]])
    return addresses


def test_only_nginx_listens_beyond_this_host(hard_fleet):
    supervisor = Supervisor(hard_fleet.socket)
    assert stat.S_IMODE(os.stat(hard_fleet.socket).st_mode) == 0o700
    sockets = listening_sockets()
    assert listening_addresses(supervisor.supervisord_pid(), sockets) == []  # the unix socket only
    for info in supervisor.processes():
        if not info["pid"]:
            continue  # not started: prometheus without FLEET_PROMETHEUS
        addresses = listening_addresses(info["pid"], sockets)
        if info["name"] == "logrotate" or info["group"] == "app":
            # App processes listen on unix sockets in var/run only (nginx serves their metrics ports).
            assert addresses == [], info["name"]
            continue
        assert addresses, info["name"]
        if info["name"] == "nginx":
            assert ("0.0.0.0", hard_fleet.port) in addresses
        else:
            assert {address for address, _ in addresses} == {"127.0.0.1"}, (info["name"], addresses)
    assert stat.S_IMODE(os.stat(hard_fleet.env_file).st_mode) == 0o600  # it holds FLEET_SECRET_KEY


# --- processes down or killed -------------------------------------------------------------------------------------


def test_with_every_process_down_nginx_answers_a_json_502(hard_fleet):
    supervisor = Supervisor(hard_fleet.socket)
    supervisor.rpc.stopProcessGroup("app")
    try:
        for path in ("/api/notes", "/json"):
            response = get(hard_fleet.url + path)
            assert response.status == 502
            assert response.json()["error"].startswith("no app process could take the request")
            assert_security_headers(response.headers)
    finally:
        supervisor.rpc.startProcessGroup("app")
        launcher.wait_ready(hard_fleet, supervisor, 30)


def test_sigkill_under_read_and_write_load_fails_no_get_and_loses_no_acknowledged_write(hard_fleet):
    """tests/whole_fleet/test_fleet.py kills a process under GETs in every mode; here POSTs run too, and every
    acknowledged one is read back."""
    supervisor = Supervisor(hard_fleet.socket)
    victim = supervisor.app_processes()[0]
    port = int(victim["name"].split("-")[1])
    titles = itertools.count()
    readers = [
        Repeat(lambda path=path: get(hard_fleet.url + path, timeout=10))
        for path in ("/api/notes?limit=5", "/db", "/queries?queries=3")
    ]
    writers = Repeat(
        lambda: request("POST", f"{hard_fleet.url}/api/notes", {"title": f"w{next(titles)}"}, timeout=10), threads=2
    )
    with writers, contextlib.ExitStack() as stack:
        for reader in readers:
            stack.enter_context(reader)
        probe.wait_until(lambda: len(readers[0].results) > 10 and len(writers.results) > 10, 10)
        os.kill(victim["pid"], signal.SIGKILL)
        restarted = probe.wait_until(
            lambda: (
                supervisor.process(f"app:{victim['name']}")["pid"] not in (0, victim["pid"])
                and probe.ready(hard_fleet.app_address(port))
            ),
            20,
        )
        settled = len(readers[0].results)
        probe.wait_until(lambda: len(readers[0].results) > settled + 10, 10)
    assert restarted, "supervisord did not restart the killed process"
    reads = [result for reader in readers for result in reader.results]
    failed_reads = [result for reader in readers for result in reader.failures()]
    statuses = collections.Counter(getattr(w, "status", w) for w in writers.results)
    print(
        f"\nSIGKILL under load: GETs {len(reads)} sent, {len(failed_reads)} failed; "
        f"POSTs {len(writers.results)} sent, by status {dict(statuses)}"
    )
    assert failed_reads == [], failed_reads[:5]
    # nginx never replays a POST it had sent to the killed process: that one fails with a JSON 502, so the client
    # knows it may not have happened; every other POST reached a live process.
    assert set(statuses) <= {201, 502}, statuses
    assert all(w.json()["error"].startswith("no app process") for w in writers.results if w.status == 502)
    acknowledged = [w.json()["id"] for w in writers.results if w.status == 201]
    assert all(get(f"{hard_fleet.url}/api/notes/{note_id}").status == 200 for note_id in acknowledged)


class Repeat:
    """Threads that repeat `action` until the block ends; every outcome is kept (a Response, or the error's
    repr)."""

    def __init__(self, action, threads: int = 1, pause: float = 0.0):
        self.action = action
        self.pause = pause
        self.results: list = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.results.append(self.action())
            except OSError as exc:
                self.results.append(repr(exc))
            if self.pause:
                time.sleep(self.pause)

    def failures(self) -> list:
        return [r for r in self.results if isinstance(r, str) or r.status >= 400]

    def __enter__(self) -> Repeat:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)
