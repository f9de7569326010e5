"""A bounded load generator for the fleet: N client threads reading and writing through nginx on 127.0.0.1.

Each client keeps one keep-alive connection (reopened after an error, as a real client would) and cycles through
`POST /api/notes`, `GET /api/notes/{id}` of the note it just wrote, `GET /db` and `GET /api/notes?limit=5`, at
most `rate` requests per second. Every request is counted; a failure is a connection error, a timeout, a 5xx or
any status the endpoint should not give. The ids of acknowledged writes (201) are kept, so a caller can check
afterwards that every one of them can still be read back.

Used by tests/whole_fleet/test_switch.py and by `scripts/switch-trial`; bounded by design (closed loop, capped rate,
stopped by the caller), because the machine it runs on is shared with the fleet it measures.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import select
import threading
import time
import uuid
from collections import Counter
from urllib.parse import urlsplit

from bench.stats import percentile
from fleet import probe

# What each client does, in turn; `_send` turns a step into a request and `_check` knows its expected status.
CYCLE = ("write", "read_back", "db", "list")


@dataclasses.dataclass(frozen=True)
class Outcome:
    op: str
    status: int  # 0: no HTTP response at all
    error: str  # empty when the request succeeded
    started: float  # time.monotonic()
    latency: float  # seconds
    # Sent again on a new connection after the reused one failed with no response (Load's `retry_reused`).
    retried: bool = False

    @property
    def failed(self) -> bool:
        return bool(self.error)


@dataclasses.dataclass
class LoadResult:
    outcomes: list[Outcome]
    acknowledged: list[str]  # note ids answered 201
    seconds: float

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.failed]

    def count(self, op: str | None = None) -> int:
        return sum(1 for o in self.outcomes if op is None or o.op == op)

    def summary(self) -> str:
        by_op = Counter(o.op for o in self.outcomes)
        latencies = sorted(o.latency for o in self.outcomes)
        p99 = percentile(latencies, 99)
        worst = latencies[-1] if latencies else 0.0
        ops = ", ".join(f"{op} {by_op[op]}" for op in CYCLE if by_op[op])
        retried = sum(o.retried for o in self.outcomes)
        return (
            f"{len(self.outcomes)} requests in {self.seconds:.1f}s ({ops}), {len(self.failures)} failed"
            f"{f' ({retried} sent twice on a new connection)' if retried else ''}, "
            f"{len(self.acknowledged)} writes acknowledged; latency p99 {1000 * p99:.0f} ms, max {1000 * worst:.0f} ms"
        )


class Load:
    """`with Load(url) as load: ...` runs the clients for the duration of the block; then read `load.result`."""

    def __init__(
        self,
        url: str,
        clients: int = 16,
        rate: float = 25.0,
        timeout: float = 15.0,
        cycle: tuple[str, ...] = CYCLE,
        *,
        retry_reused: bool = False,
    ):
        parts = urlsplit(url)
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError(f"the load generator only targets this host (127.0.0.1), not {parts.hostname!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.clients = clients
        # ("write",): a storm of creates, the requests nginx never resends (tests/whole_fleet/test_keepalive.py).
        self.cycle = cycle
        # As browsers do: a request that fails with no response at all on a reused keep-alive connection is sent
        # once more on a new one (the server may close an idle connection as the request arrives: nginx's old
        # workers do on every reload). Safe for the writes: each carries an Idempotency-Key (app/idempotency.py).
        self.retry_reused = retry_reused
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.timeout = timeout
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._outcomes: list[Outcome] = []
        self._acknowledged: list[str] = []
        self._threads: list[threading.Thread] = []
        self._started = 0.0
        self.result: LoadResult | None = None

    def __enter__(self) -> Load:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._started = time.monotonic()
        self._threads = [
            threading.Thread(target=self._client, args=(n,), name=f"load-{n}", daemon=True) for n in range(self.clients)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> LoadResult:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)
        with self._lock:
            self.result = LoadResult(list(self._outcomes), list(self._acknowledged), time.monotonic() - self._started)
        return self.result

    def count(self) -> int:
        with self._lock:
            return len(self._outcomes)

    def _client(self, number: int) -> None:
        conn: http.client.HTTPConnection | None = None
        last_id: str | None = None
        step = number  # clients start at different points of the cycle
        while not self._stop.is_set():
            op = self.cycle[step % len(self.cycle)]
            step += 1
            if op == "read_back" and last_id is None:
                continue
            if conn is not None and dropped(conn):
                # The server closed this idle keep-alive connection (nginx's old workers do on a reload): a real
                # client (urllib3, browsers) checks before reusing one, and opens a new one.
                conn.close()
                conn = None
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            started = time.monotonic()
            conn, status, body, error, retried = self._request(conn, op, last_id, number)
            latency = time.monotonic() - started
            if not error:
                error = _check(op, status, body)
            with self._lock:
                self._outcomes.append(Outcome(op, status, error, started, latency, retried))
                if op == "write" and not error:
                    last_id = json.loads(body)["id"]
                    self._acknowledged.append(last_id)
            pause = self.interval - latency
            if pause > 0:
                self._stop.wait(pause)
        if conn is not None:
            conn.close()

    def _request(
        self, conn: http.client.HTTPConnection, op: str, last_id: str | None, number: int
    ) -> tuple[http.client.HTTPConnection | None, int, bytes, str, bool]:
        """One request of the cycle: (the connection to use next, or None; status; body; error; sent twice)."""
        token = uuid.uuid4().hex
        key = token if self.retry_reused else None
        reused = conn.sock is not None
        try:
            return (conn, *_send(conn, op, last_id, number, token=token, key=key), "", False)
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected) as exc:
            conn.close()
            if not (self.retry_reused and reused):
                return None, 0, b"", f"{type(exc).__name__}: {exc}", False
            first = type(exc).__name__
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            return None, 0, b"", f"{type(exc).__name__}: {exc}", False
        try:
            return (conn, *_send(conn, op, last_id, number, token=token, key=key), "", True)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            return None, 0, b"", f"{type(exc).__name__}: {exc} (sent again after {first})", True


def dropped(conn: http.client.HTTPConnection) -> bool:
    """True if the server has closed the idle connection `conn` (readable with nothing to read but EOF), as
    urllib3's is_connection_dropped tells before it reuses a pooled connection."""
    if conn.sock is None:
        return False
    readable, _, _ = select.select([conn.sock], [], [], 0)
    return bool(readable)


def _send(
    conn: http.client.HTTPConnection, op: str, last_id: str | None, client: int, *, token: str, key: str | None
) -> tuple[int, bytes]:
    if op == "write":
        body = json.dumps({"title": f"load {client} {token[:8]}", "tags": ["load"]})
        headers = {"Content-Type": "application/json", **({"Idempotency-Key": key} if key else {})}
        conn.request("POST", "/api/notes", body=body, headers=headers)
    elif op == "read_back":
        conn.request("GET", f"/api/notes/{last_id}")
    elif op == "db":
        conn.request("GET", "/db")
    else:
        conn.request("GET", "/api/notes?limit=5")
    response = conn.getresponse()
    return response.status, response.read()


def _check(op: str, status: int, body: bytes) -> str:
    expected = 201 if op == "write" else 200
    if status != expected:
        return f"HTTP {status}: {body[:200]!r}"
    return ""


def all_note_ids(url: str, timeout: float = 15.0) -> set[str]:
    """Every note id the API lists, page by page (newest first): what a user can read back."""
    ids: set[str] = set()
    cursor = ""
    while True:
        response = probe.request(
            "GET", f"{url.rstrip('/')}/api/notes?limit=100{'&cursor=' + cursor if cursor else ''}", timeout=timeout
        )
        page = response.json()
        if response.status != 200:
            raise RuntimeError(f"GET /api/notes answered {response.status}: {page}")
        ids.update(note["id"] for note in page["notes"])
        cursor = page["next_cursor"]
        if not cursor:
            return ids
