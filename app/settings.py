"""Typed, validated settings for one app process.

Precedence, lowest first: the defaults below, the process environment, then the deployment's env file
(``FLEET_ENV_FILE``). The env file wins on purpose: it is the fleet's single source of truth, rewritten by
``scripts/switch-db-mode``, so a stale variable inherited from supervisord's environment can never undo a switch.

A bad value raises ``SettingsError`` naming the variable; ``app.server`` turns that into a one-line message and a
non-zero exit, so supervisord shows why the process would not start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path

from pymongo import uri_parser
from pymongo.errors import PyMongoError

from app import addresses
from app.addresses import Address

DB_MODES = ("motor", "threads", "async")
ENVIRONMENTS = ("development", "production")
# The addresses an app process may bind when it listens on TCP (FLEET_SOCKET_DIR empty): nginx's upstream then lists
# 127.0.0.1:PORT lines (fleet/config.py).
APP_HOSTS = ("127.0.0.1", "0.0.0.0")

# The secret key a development fleet uses when none is set. Public (it is in this file), so production refuses it,
# along with the other placeholders people leave in env files and keys too short to resist guessing.
DEV_SECRET_KEY = "development-only-not-secret"
PLACEHOLDER_SECRETS = frozenset({DEV_SECRET_KEY, "changethis", "changeme", "change-me", "secret", "secret-key"})
SECRET_KEY_MIN_LENGTH = 32
STATUS_TOKEN_MIN_LENGTH = 32
EVENT_LOOPS = ("asyncio", "uvloop")
# supervisord kills an app process 30 s after SIGTERM (stopwaitsecs, deploy/supervisord.conf): the drain, plus up
# to 1 s closing idle connections and the store's close, must end well before that, or requests die with it.
MAX_DRAIN_SECONDS = 25.0
# nginx closes an idle kept-alive connection to a process after this long (the upstream's keepalive_timeout in
# deploy/nginx.conf; tests/fleet/test_config.py checks they agree). A draining process waits for nginx to close
# them and must never reach its deadline first: at the deadline it closes them itself, and a POST nginx writes on one
# at that moment is lost (app/lifecycle.py).
NGINX_UPSTREAM_KEEPALIVE_SECONDS = 2.0
MIN_DRAIN_SECONDS = NGINX_UPSTREAM_KEEPALIVE_SECONDS + 1
# nginx's proxy_read_timeout (deploy/nginx.conf) is 30 s: a request's deadline must end before nginx stops waiting.
MAX_REQUEST_TIMEOUT_MS = 29_000

# The embedded server's retryable-write bookkeeping is O(n) in recent writes: with retryWrites on, its write
# throughput collapses as writes accumulate (README "The embedded database and a real `mongod`" has the figures).
# Real mongod does not need this.
EMBEDDED_URI_OPTIONS = "retryWrites=false"
DEFAULT_DB_PORT = 27018
# Linux's limit for a unix socket's path, its terminating NUL included (sockaddr_un.sun_path).
SUN_PATH_MAX = 108


def embedded_uri(port: int) -> str:
    return f"mongodb://127.0.0.1:{port}/?{EMBEDDED_URI_OPTIONS}"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclasses.dataclass(frozen=True)
class Settings:
    db_mode: str = "motor"
    mongodb_uri: str = embedded_uri(DEFAULT_DB_PORT)
    db_name: str = "fleet"
    # Short on purpose: a dead database must give a fast 503, not a 30 s hang (PyMongo's default).
    db_timeout_ms: int = 1000
    # Per operation; large enough for /updates?queries=500 on the single-threaded embedded server.
    db_socket_timeout_ms: int = 10_000
    # Driver connections per process; only as many are opened as requests wait on the database at once. A smaller
    # pool was never faster (scripts/bench --tune, results/bench/tuning.md; README "Performance").
    db_pool_size: int = 100
    # Write concern of every write: a write is acknowledged (201/200/204) only once a majority of the replica set
    # has it, and (j) has it in its on-disk journal: an acknowledged write survives a crash of the database, a
    # power loss and, on a replica set, a failover. 0 (unacknowledged) is refused.
    db_write_concern: str = "majority"
    # Not optional on the embedded server: without j its WiredTiger log stays in a memory buffer, and a SIGKILL
    # of the database loses acknowledged writes (tests/whole_fleet/test_hardening_database.py shows none lost with
    # j). The price there is an fsync per write, which makes concurrent bulk writes several times slower (README
    # "Reliability"): that is why TFB's /updates opts out (Store.bulk_update(durable=False)). On a replica set of
    # mongods "majority" already waits for the journal (writeConcernMajorityJournalDefault), so j costs nothing more.
    db_journal: bool = True
    # Threads that run blocking PyMongo calls, in both thread-based modes: the pool the `threads` store owns, and
    # Motor's thread pool in `motor` mode (app/store/motor_store.py sizes it; Motor's own MOTOR_MAX_WORKERS is
    # ignored). Smaller and larger pools were not consistently faster, and more threads only contend for the GIL
    # (scripts/bench --tune, results/bench/tuning.md; README "Performance").
    db_threads: int = 16
    # Size of the pool application code uses for other blocking calls (app.blocking).
    blocking_threads: int = 4
    # Overload (app/admission.py, README "Overload"). Requests in progress per process beyond which a request is
    # answered 503 with Retry-After at once, before it touches the database; nginx's max_conns per process is the
    # same number (fleet/config.py), so nginx sends the excess to a process with room first. At least 256: with
    # N = 2 a TechEmpower burst of 512 concurrent clients must be served, not refused.
    max_in_flight: int = 256
    # Every request's deadline, from when its handler starts; its database operations get what is left of it as
    # PyMongo's client-side operation timeout, and past it the answer is a 503. Above /updates?queries=500 under
    # load, below nginx's proxy_read_timeout (30 s), so the app answers before nginx gives up.
    request_timeout_ms: int = 15_000
    # Calls that may wait for a thread of the `threads` store's pool and of app.blocking's pool; beyond that the
    # caller gets the same fast 503. Calls waiting longer than the request's deadline are useless anyway.
    db_queue_limit: int = 256
    blocking_queue_limit: int = 64
    # How long a stopping process lets in-flight requests finish; supervisord's stopwaitsecs must be larger.
    drain_seconds: float = 10.0
    host: str = "127.0.0.1"
    log_level: str = "INFO"
    # `development` (the default, so scripts/run works with no settings) or `production`, which refuses every
    # development convenience: the public development secret key, a placeholder key, fault injection, and app
    # ports reachable from other hosts.
    env: str = "development"
    # Signs cookies (Tornado's cookie_secret) and anything else an app built on the template must sign. Never
    # shown in repr() or logs; the env file holding it is readable by its owner only.
    secret_key: str = dataclasses.field(default=DEV_SECRET_KEY, repr=False)
    # uvloop (libuv) by default: it costs less CPU per request than asyncio's own loop in every mode
    # (scripts/bench --compare --features, the "asyncio loop" rows; README "Performance"); "asyncio" is the fallback.
    event_loop: str = "uvloop"
    # Loop lag past which the watchdog logs the blocking code's stack (app/watchdog.py): far above the lag of a
    # busy but healthy loop (a few ms), far below what a client notices. 0 turns the watchdog, and with it stall
    # shedding, off (what they cost is in README "Performance").
    watchdog_ms: int = 300
    # Per-request metrics (app/metrics.py) and the metrics listener; off: neither (the status page then shows no
    # rate, lag or pools).
    metrics: bool = True
    # Request ids: the X-Request-ID response header and the id in every log line written for a request (app/logs.py).
    request_ids: bool = True
    # The fault-injection endpoint (/fault/block, app/handlers/fault.py): for demos and tests, never production.
    faults: bool = False
    # While the loop is stalled past FLEET_WATCHDOG_MS, close the connections of the GET/HEAD requests waiting for
    # it, so nginx passes them to another process at once (app/shedding.py). Only when another process of
    # FLEET_APP_PORTS answers: alone, or when every process is stalled, there is nowhere else to go.
    stall_shedding: bool = True
    # Each process serves Prometheus metrics on its own listener (never through nginx's public port): on a unix
    # socket next to its app socket, which nginx serves on 127.0.0.1 at app port + this offset for Prometheus, or,
    # without a socket folder, on FLEET_HOST at that port itself; 0 turns the listener off, and the status page then
    # shows no loop or pool data.
    metrics_port_offset: int = 1000
    # The folder of the processes' unix sockets (app/addresses.py), written by scripts/run as var/run (0700, the
    # fleet's account only; FLEET_APP_LISTEN=tcp leaves it empty); empty: listen on FLEET_HOST:PORT instead.
    socket_dir: str = ""
    # The fleet status page (/status, /status.json through nginx); off hides both (404).
    status_page: bool = True
    # Every app process's number of the fleet (its "port": the name of its socket, or its TCP port), comma-separated,
    # so the process serving /status knows whom to ask. Written by scripts/run (fleet/config.py) from
    # FLEET_APP_PORT_BASE and FLEET_PROCS; empty: this process only.
    app_ports: str = ""
    # Production profile (README "Security", app/access.py; nginx enforces the same from its rendered config). The
    # status page, /status.json and /openapi.json are served in production only to these client addresses or
    # networks (comma-separated; the host itself by default), or to a request carrying
    # `Authorization: Bearer FLEET_STATUS_TOKEN`. Development serves them to everyone, as before.
    status_allow: str = "127.0.0.1,::1"
    status_token: str = dataclasses.field(default="", repr=False)
    # The TechEmpower endpoints (/json, /plaintext, /db, /queries, /updates, /fortunes): auto means on in
    # development, off (404 like any unknown path) in production; true or false decides in both.
    benchmark_endpoints: str = "auto"

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = dict(os.environ if environ is None else environ)
        env_file = environ.get("FLEET_ENV_FILE")
        if env_file:
            environ.update(read_env_file(Path(env_file)))
        return cls.from_mapping(environ)

    @classmethod
    def from_mapping(cls, values: Mapping[str, str]) -> Settings:
        kwargs = {}
        for field in dataclasses.fields(cls):
            var = env_name(field.name)
            if var in values:
                kwargs[field.name] = parse_value(var, values[var], field.type)
        settings = cls(**kwargs)
        settings.validate()
        return settings

    def validate(self) -> None:
        _require(self.db_mode in DB_MODES, "FLEET_DB_MODE", f"must be one of {', '.join(DB_MODES)}")
        _require(
            self.mongodb_uri.startswith(("mongodb://", "mongodb+srv://")),
            "MONGODB_URI",
            "must start with mongodb:// or mongodb+srv://",
        )
        validate_mongodb_uri(self.mongodb_uri)
        _require(bool(self.db_name) and "." not in self.db_name, "FLEET_DB_NAME", "must be a database name")
        for name in (
            "db_timeout_ms",
            "db_socket_timeout_ms",
            "db_pool_size",
            "db_threads",
            "blocking_threads",
            "max_in_flight",
            "db_queue_limit",
            "blocking_queue_limit",
        ):
            _require(getattr(self, name) >= 1, env_name(name), "must be at least 1")
        _require(
            10 <= self.request_timeout_ms <= MAX_REQUEST_TIMEOUT_MS,
            "FLEET_REQUEST_TIMEOUT_MS",
            f"must be between 10 and {MAX_REQUEST_TIMEOUT_MS} (nginx gives up on a request after 30 s)",
        )
        _require(self.drain_seconds > 0, "FLEET_DRAIN_SECONDS", "must be positive")
        _require(
            self.drain_seconds >= MIN_DRAIN_SECONDS,
            "FLEET_DRAIN_SECONDS",
            f"must be at least {MIN_DRAIN_SECONDS:g} (nginx closes idle kept-alive connections after "
            f"{NGINX_UPSTREAM_KEEPALIVE_SECONDS:g} s; a drain must outlast that)",
        )
        _require(
            self.drain_seconds <= MAX_DRAIN_SECONDS,
            "FLEET_DRAIN_SECONDS",
            f"must be at most {MAX_DRAIN_SECONDS:g} (supervisord kills a process 30 s after asking it to stop)",
        )
        _require(
            self.db_write_concern == "majority"
            or (self.db_write_concern.isdigit() and int(self.db_write_concern) >= 1),
            "FLEET_DB_WRITE_CONCERN",
            "must be majority or a number of nodes (at least 1: unacknowledged writes are refused)",
        )
        # On TCP, nginx's upstream (deploy/nginx.conf) and the status page reach every process on 127.0.0.1: any
        # other address would leave nginx nothing to connect to (every request a 502). 0.0.0.0 listens on 127.0.0.1
        # too. (On a unix socket FLEET_HOST goes unused; it is checked all the same, one rule for both.)
        _require(
            self.host in APP_HOSTS,
            "FLEET_HOST",
            f"{self.host!r} is not supported: must be {' or '.join(APP_HOSTS)} (nginx reaches the app on 127.0.0.1)",
        )
        _require(self.env in ENVIRONMENTS, "FLEET_ENV", f"must be one of {', '.join(ENVIRONMENTS)}")
        _require(
            self.benchmark_endpoints.strip().lower() in ("auto", "") or _is_bool(self.benchmark_endpoints),
            "FLEET_BENCHMARK_ENDPOINTS",
            "must be auto, true or false",
        )
        try:
            self.status_networks()
        except ValueError as exc:
            raise SettingsError(f"FLEET_STATUS_ALLOW: {exc} (comma-separated addresses or networks)") from None
        _require(
            not self.status_token or len(self.status_token) >= STATUS_TOKEN_MIN_LENGTH,
            "FLEET_STATUS_TOKEN",
            f"must be at least {STATUS_TOKEN_MIN_LENGTH} characters (or empty: no token)",
        )
        # It is written into nginx's config and compared with a header: nothing that could break either.
        _require(
            all(c.isalnum() or c in "-_.~+/=" for c in self.status_token),
            "FLEET_STATUS_TOKEN",
            "may hold only letters, digits and -_.~+/= (a token68, as in RFC 6750)",
        )
        if self.env == "production":
            self._validate_production()
        _require(self.event_loop in EVENT_LOOPS, "FLEET_EVENT_LOOP", f"must be one of {', '.join(EVENT_LOOPS)}")
        _require(self.watchdog_ms == 0 or self.watchdog_ms >= 10, "FLEET_WATCHDOG_MS", "must be 0 (off) or at least 10")
        _require(0 <= self.metrics_port_offset < 65535, "FLEET_METRICS_PORT_OFFSET", "must be between 0 and 65534")
        # A unix socket's path must fit sun_path (108 bytes with its NUL): the longest is app-65535.metrics.sock.
        _require(
            len(os.fsencode(os.path.join(self.socket_dir, "app-65535.metrics.sock"))) < SUN_PATH_MAX
            or not self.socket_dir,
            "FLEET_SOCKET_DIR",
            f"too long for a unix socket's path (at most {SUN_PATH_MAX - 24} bytes); use a shorter FLEET_VAR_DIR",
        )
        _require(not self.socket_dir or os.path.isabs(self.socket_dir), "FLEET_SOCKET_DIR", "must be an absolute path")
        try:
            self.fleet_ports(0)
        except ValueError:
            raise SettingsError("FLEET_APP_PORTS: must be comma-separated port numbers") from None
        _require(
            self.log_level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR"),
            "FLEET_LOG_LEVEL",
            "must be DEBUG, INFO, WARNING or ERROR",
        )

    @property
    def benchmarks_on(self) -> bool:
        """Whether the TechEmpower endpoints are routed (FLEET_BENCHMARK_ENDPOINTS; auto: not in production)."""
        value = self.benchmark_endpoints.strip().lower()
        return self.env != "production" if value in ("auto", "") else parse_bool(value)

    def status_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """FLEET_STATUS_ALLOW parsed (ValueError naming a bad entry)."""
        return tuple(
            ipaddress.ip_network(item, strict=False) for item in self.status_allow.replace(" ", "").split(",") if item
        )

    def fleet_ports(self, own_port: int) -> list[int]:
        """The app ports the status page reports: FLEET_APP_PORTS, or only `own_port` when it is empty."""
        ports = [int(item) for item in self.app_ports.replace(" ", "").split(",") if item]
        if any(not 1 <= port <= 65535 for port in ports):
            raise ValueError(self.app_ports)
        return ports or [own_port]

    def app_address(self, port: int) -> Address:
        """Where process `port` serves requests (app/addresses.py)."""
        return addresses.app_address(self.socket_dir, self.host, port)

    def metrics_address(self, port: int) -> Address | None:
        """Where process `port` serves its metrics; None without a metrics listener."""
        return addresses.metrics_address(self.socket_dir, self.host, port, self.metrics_port_offset)

    def _validate_production(self) -> None:
        key = self.secret_key.strip()
        _require(
            bool(key) and key.lower() not in PLACEHOLDER_SECRETS,
            "FLEET_SECRET_KEY",
            "must be set to a secret of your own in production (it is missing or a known placeholder)",
        )
        _require(
            len(key) >= SECRET_KEY_MIN_LENGTH,
            "FLEET_SECRET_KEY",
            f"must be at least {SECRET_KEY_MIN_LENGTH} characters in production; make one with "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'",
        )
        _require(not self.faults, "FLEET_FAULTS", "must be off in production")
        _require(
            is_loopback(self.host),
            "FLEET_HOST",
            "must be a loopback address in production: only nginx on this host may reach the app ports",
        )

    def to_env(self) -> dict[str, str]:
        """The settings as env-file variables: what ``Settings.from_mapping`` reads back unchanged."""
        return {env_name(f.name): str(getattr(self, f.name)) for f in dataclasses.fields(self)}


def validate_mongodb_uri(uri: str) -> None:
    """Refuse a malformed URI here, with the variable's name, rather than as a traceback when the store opens.

    No I/O: a mongodb+srv:// URI needs a DNS lookup to parse, so only its shape is checked.
    """
    if uri.startswith("mongodb+srv://"):
        _require(len(uri) > len("mongodb+srv://"), "MONGODB_URI", "mongodb+srv:// needs a host name")
        return
    try:
        uri_parser.parse_uri(uri, warn=True)  # as MongoClient does: an unknown option only warns
    except (PyMongoError, ValueError) as exc:
        # The message never repeats the URI: it may hold a password.
        raise SettingsError(f"MONGODB_URI: {exc}") from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def env_name(field_name: str) -> str:
    return "MONGODB_URI" if field_name == "mongodb_uri" else f"FLEET_{field_name.upper()}"


def parse_value(var: str, raw: str, kind: str):
    raw = raw.strip()
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            return parse_bool(raw)
    except ValueError:
        raise SettingsError(f"{var}={raw!r}: expected {kind}") from None
    return raw


def _is_bool(raw: str) -> bool:
    try:
        parse_bool(raw)
    except ValueError:
        return False
    return True


def parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(raw)


def read_env_file(path: Path) -> dict[str, str]:
    """Read KEY=VALUE lines (blank lines and # comments allowed; no shell quoting or expansion)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SettingsError(f"FLEET_ENV_FILE={str(path)!r}: {exc.strerror}") from None
    values = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"{path}:{number}: expected KEY=VALUE, got {line!r}")
        values[key.strip()] = value.strip()
    return values


def write_env_file(path: Path, values: Mapping[str, str]) -> None:
    """Replace the env file atomically: a process starting mid-write reads the old file or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    lines = ["# Written by Tornado Fleet; every app process reads this file at start."]
    lines += [f"{key}={value}" for key, value in sorted(values.items())]
    # Owner-only from the start (it holds FLEET_SECRET_KEY): never world-readable, not even for a moment.
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        out.write("\n".join(lines) + "\n")
        # Rewritten by root (scripts/switch-db-mode), it stays the fleet account's, which must read it.
        with contextlib.suppress(FileNotFoundError):
            owner = os.stat(path)
            if os.geteuid() == 0:
                os.fchown(out.fileno(), owner.st_uid, owner.st_gid)
    os.replace(tmp, path)


def _require(ok: bool, var: str, message: str) -> None:
    if not ok:
        raise SettingsError(f"{var}: {message}")
