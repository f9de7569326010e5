"""What each process of the fleet is doing: the one model (`ProcessStatus`) behind the /status page and
/status.json, scripts/status (fleet/status.py) and the rolling restart (fleet/rolling.py), and its collection.

All processes are asked at once (FLEET_APP_PORTS, written into the env file by scripts/run), each with two short
requests: its /readyz on its app socket or port (the probe nginx's users depend on), then its /process.json on its
metrics listener (pid, mode, uptime, loop lag, pools, request rate; see app.metrics). Both waits are capped
(READYZ_TIMEOUT_MAX, SNAPSHOT_TIMEOUT), so a collection ends within ~3 s whatever FLEET_DB_TIMEOUT_MS is: well
inside the 5 s nginx gives /status.json (deploy/nginx.conf). From the answers:

- `ready`: /readyz said 200;
- `draining`: the process is stopping (its metrics listener answers, its app socket is closed or says draining);
- `not ready`: it answers, but /readyz says 503 (e.g. the database is unreachable), or /readyz is still waiting
  for the database when the cap runs out while its metrics listener answers (its loop is running);
- `not responding`: connections are accepted but nothing answers in time (a blocked event loop), or they are
  closed unanswered (a stalled process shedding its waiting requests, app/shedding.py);
- `down`: nothing listens (crashed, or restarting under supervisord).

Nothing here reads the settings of another process, and a process's snapshot holds no setting, so the database
URI (and any credential in it) never appears.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import socket
import time

import tornado.netutil
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.simple_httpclient import HTTPTimeoutError

from app import addresses
from app.addresses import Address
from app.settings import Settings

log = logging.getLogger("fleet.status")

STATES = ("ready", "draining", "not ready", "not responding", "down")
# A process that accepts connections but does not answer them.
UNANSWERED = {
    "timeout": "no answer in time (event loop blocked?)",
    "reset": "connection closed without an answer (stalled and shedding requests?)",
}
SLOW_READYZ = "/readyz did not answer in time, but the process does (database slow or unreachable?)"
# /readyz waits up to the database timeout (+0.5 s) on a dead database; past this, its answer cannot change the
# page enough to be worth a /status.json that nginx gives up on.
READYZ_TIMEOUT_MAX = 2.5
# /process.json does no I/O: a process that takes longer than this to answer it has a blocked loop.
SNAPSHOT_TIMEOUT = 0.5


@dataclasses.dataclass
class ProcessStatus:
    """One process as the fleet sees it. `state` is one of STATES; the rest is what it said about itself."""

    # The process's number (app-PORT, `--port`): its TCP port only with FLEET_APP_LISTEN=tcp; otherwise it names
    # its unix socket (Settings.app_address). Called port in /status.json and the tables, as supervisord does.
    port: int
    state: str
    detail: str = ""
    pid: int | None = None
    mode: str | None = None  # its FLEET_DB_MODE (/readyz calls it db_mode)
    # Where Prometheus scrapes it (its own listener, or nginx's in front of its metrics socket); None: no listener.
    metrics_port: int | None = None
    # Its /process.json (uptime, loop lag, pools, request rate; app/process_snapshot.py); empty without an answer.
    snapshot: dict = dataclasses.field(default_factory=dict)
    # supervisord's state name (RUNNING, STOPPED, EXITED, ...) when asked on the fleet's own host
    # (fleet/status.py); None from the status page, which does not talk to supervisord.
    supervisor_state: str | None = None

    @property
    def name(self) -> str:
        """supervisord's name of the process."""
        return f"app-{self.port}"

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def to_json(self) -> dict:
        """The process's entry in /status.json (the page's script and scripts/status --url read it)."""
        entry = {**self.snapshot, "port": self.port, "metrics_port": self.metrics_port}
        entry.update(pid=self.pid, mode=self.mode, state=self.state, detail=self.detail)
        if self.supervisor_state is not None:
            entry["supervisor_state"] = self.supervisor_state
        return entry


async def collect(ports: list[int], settings: Settings, *, request_timeout: float) -> list[ProcessStatus]:
    """Ask every process on `ports` (concurrently; at the addresses `settings` gives them)."""
    # One client per collection: it is closed (and its sockets with it) as soon as the answers are in.
    sockets = ProcessSockets()
    client = AsyncHTTPClient(force_instance=True, max_clients=max(10, 2 * len(ports)), resolver=sockets)
    try:
        return list(await asyncio.gather(*(ask(client, sockets, settings, port, request_timeout) for port in ports)))
    finally:
        client.close()


def report(processes: list[ProcessStatus]) -> dict:
    """/status.json: the processes and how many are in each state."""
    counts = {state: sum(p.state == state for p in processes) for state in STATES}
    return {
        "generated_at": round(time.time(), 3),
        "processes": [p.to_json() for p in processes],
        "summary": {"processes": len(processes), **{state.replace(" ", "_"): n for state, n in counts.items()}},
    }


async def ask(client, sockets: ProcessSockets, settings: Settings, port: int, request_timeout: float) -> ProcessStatus:
    metrics_address = settings.metrics_address(port)
    ready_code, ready = await fetch_json(
        client, sockets.url(settings.app_address(port), "/readyz"), min(request_timeout, READYZ_TIMEOUT_MAX)
    )
    snapshot = None
    # One after the other, so the snapshot's in-flight count does not include our own /readyz. After a timeout
    # too: a snapshot tells a loop waiting on a slow database from a blocked one (which does not answer it).
    if metrics_address is not None and ready_code != "reset":
        _, snapshot = await fetch_json(
            client, sockets.url(metrics_address, "/process.json"), min(request_timeout, SNAPSHOT_TIMEOUT)
        )
    offset = settings.metrics_port_offset
    process = ProcessStatus(port, "", metrics_port=port + offset if offset else None)
    if isinstance(ready, dict):
        # /readyz knows pid and mode too: enough for a row even without the metrics listener.
        process.pid, process.mode = ready.get("pid"), ready.get("db_mode")
    if isinstance(snapshot, dict) and isinstance(ready, dict) and snapshot.get("pid") != ready.get("pid"):
        # Another program answers on the metrics port (README "Security"): what it says is not this process's.
        snapshot = None
        process.snapshot = {"metrics_port_holder": "another process"}
    if isinstance(snapshot, dict):
        process.snapshot = snapshot
        process.pid, process.mode = snapshot.get("pid", process.pid), snapshot.get("mode", process.mode)
    process.state, process.detail = classify(ready_code, ready, snapshot)
    return process


class ProcessSockets(tornado.netutil.Resolver):
    """Tornado's HTTP client speaks TCP only, unless its resolver answers with a unix socket: this one maps the
    made-up host names of `url` to the processes' sockets, and resolves every other name as usual."""

    def initialize(self) -> None:
        self.paths: dict[str, str] = {}
        self.fallback = tornado.netutil.DefaultLoopResolver()

    def url(self, address: Address, path: str) -> str:
        if isinstance(address, tuple):
            return addresses.url(address) + path
        name = f"process-{len(self.paths)}.fleet"
        self.paths[name] = address
        return f"http://{name}{path}"

    async def resolve(self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC) -> list:
        if host in self.paths:
            return [(socket.AF_UNIX, self.paths[host])]
        return await self.fallback.resolve(host, port, family)


def classify(ready_code: int | str, ready, snapshot) -> tuple[str, str]:
    """(state, detail) from the /readyz answer (its HTTP status code, or "timeout", "reset" or "refused") and the
    snapshot."""
    if ready_code == 200:
        return "ready", ""
    if any(isinstance(body, dict) and body.get("draining") for body in (ready, snapshot)):
        return "draining", "stopping: finishing in-flight requests"
    if isinstance(ready_code, int):
        reason = (ready.get("status") or ready.get("error")) if isinstance(ready, dict) else None
        return "not ready", f"/readyz answered {ready_code}" + (f" ({reason})" if reason else "")
    if ready_code in UNANSWERED and snapshot is None:
        return "not responding", UNANSWERED[ready_code]
    if snapshot is not None:
        # A loop that answers on its metrics listener is running: /readyz is waiting on the database, or not
        # listening.
        return (
            "not ready",
            SLOW_READYZ if ready_code == "timeout" else "its metrics listener answers, its app address does not",
        )
    return "down", "nothing listens on its address"


async def fetch_json(client, url: str, request_timeout: float) -> tuple[int | str, dict | None]:
    """(code, body) of a GET: the HTTP status code, or "timeout", "refused" or "reset" when no HTTP answer came."""
    try:
        response = await client.fetch(
            url, request_timeout=request_timeout, connect_timeout=request_timeout, raise_error=False
        )
    except HTTPTimeoutError:
        return "timeout", None
    except (ConnectionRefusedError, FileNotFoundError):
        # Nothing listens: a port or a stale socket file refuses; a socket never bound (or its folder) is missing.
        return "refused", None
    except (HTTPClientError, OSError) as exc:
        # Accepted, then closed without an answer: a stalled process shedding its waiting GETs (app/shedding.py)
        # or one dying mid-request.
        log.debug("status: %s: %r", url, exc)
        return "reset", None
    try:
        return response.code, json.loads(response.body)
    except (ValueError, TypeError):
        return response.code, None
