"""Throw-away fleets and processes on free ports in /tmp folders: what the tests and the benchmark both boot.

Nothing here touches the default ports (8080, 8001.., 27018) or `var/`; every process started is stopped by its
PID, never by name, because other fleets may be running on the same machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pymongo.errors import PyMongoError

from app.settings import embedded_uri
from fleet import launcher, ports, probe
from fleet.config import FleetConfig
from fleet.seed import seed
from fleet.supervisor import Supervisor, wait_for_exit

VENV_BIN = Path(sys.executable).parent


def free_port_block(count: int) -> int:
    """The first of `count` consecutive ports that are free on 127.0.0.1 right now.

    Chosen below the kernel's ephemeral range: under load tests that range fills with outgoing connections and
    TIME_WAIT sockets (nginx opens one per proxied request), and a port taken from it may be in use a moment later.
    """
    low = ephemeral_range()[0]
    rng = random.Random()
    for _ in range(500):
        base = rng.randrange(10_000, low - count)
        if all(ports.bindable(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no block of {count} free ports found between 10000 and {low}")


def ephemeral_range() -> tuple[int, int]:
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default
    # A range that starts low leaves little room below it: then search up to 65000, overlapping it.
    return (low, high) if low > 20_000 else (65_000, high)


def short_tmp_dir(prefix: str) -> Path:
    """A folder directly under /tmp that nginx's workers can enter: pytest's own tmp folders are private (0700),
    which nginx's unprivileged workers cannot enter, and deep enough to overflow a unix socket path (108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)
    return path


def start_process(args: list[str], log_path: Path, env: dict | None = None) -> subprocess.Popen:
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    # By PID, never by name.
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def start_embedded_db(port: int, storage: str | Path, log_path: Path, timeout: float = 20) -> subprocess.Popen:
    """Start the embedded server (`:memory:` or a folder) and seed `world` and `fortune` in database `fleet`."""
    args = [str(VENV_BIN / "secantusd-py"), "--host", "127.0.0.1", "--port", str(port), "--storage-path", str(storage)]
    server = start_process(args, log_path)
    uri = embedded_uri(port)

    def seeded() -> bool:
        try:
            seed(uri, "fleet", timeout_ms=500)
            return True
        except PyMongoError:
            return server.poll() is not None

    if not probe.wait_until(seeded, timeout, interval=0.2) or server.poll() is not None:
        stop_process(server)
        raise RuntimeError(f"embedded server did not start: {log_path.read_text()[-2000:]}")
    return server


@contextlib.contextmanager
def embedded_db(storage: str | Path = ":memory:", log_dir: Path | None = None) -> Iterator[str]:
    """A seeded embedded server on a free port for the duration of the block; yields its URI.

    Its log goes to `log_dir`, by default to a /tmp folder of its own that is removed afterwards.
    """
    port = free_port_block(1)
    folder = short_tmp_dir("embedded-db-") if log_dir is None else Path(log_dir)
    try:
        server = start_embedded_db(port, storage, folder / "db.log")
        try:
            yield embedded_uri(port)
        finally:
            # In memory, nothing is lost to a SIGKILL; a clean stop waits ~2 s for its accept thread's join to time out.
            stop_process(server, signal.SIGKILL if storage == ":memory:" else signal.SIGTERM)
    finally:
        if log_dir is None:
            shutil.rmtree(folder, ignore_errors=True)


# One app process's metrics listener sits right after its app port, so that both fit one reserved block.
APP_METRICS_OFFSET = 1


@dataclasses.dataclass
class AppProcess:
    """One app process started by `start_app`: its ports, its log and its process (stop it with `stop`)."""

    port: int
    metrics_port: int
    log: Path
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        stop_process(self.process)


def start_app(env: dict[str, str], log_dir: Path, *, ready_path: str = "/readyz", timeout: float = 20) -> AppProcess:
    """Start `python -m app` on a free port with `env` (no env file) and wait until `ready_path` answers 200.

    Reserves the app port and its metrics port together (FLEET_METRICS_PORT_OFFSET=1): a metrics port left to the
    default offset would be a port nobody checked was free. `ready_path="/healthz"` for a process whose database is
    unreachable on purpose. Raises RuntimeError (after stopping it) when the process exits or never answers.
    """
    port = free_port_block(2)
    log = Path(log_dir) / f"app-{port}.log"
    settings = {"FLEET_ENV_FILE": "", **env, "FLEET_METRICS_PORT_OFFSET": str(APP_METRICS_OFFSET)}
    process = start_process([sys.executable, "-m", "app", "--port", str(port)], log, settings)
    app = AppProcess(port, port + APP_METRICS_OFFSET, log, process)

    def answered() -> bool:
        return probe.get_json(port, ready_path)[0] == 200 or process.poll() is not None

    up = probe.wait_until(answered, timeout)
    if not up or process.poll() is not None:
        app.stop()
        raise RuntimeError(f"app did not start: {log.read_text()[-2000:]}")
    return app


def fleet_config(
    mode: str = "motor",
    procs: int = 2,
    *,
    mongodb_uri: str | None = None,
    prefix: str = "fleet-",
    app_listen: str = "unix",
    **app_env: str,
) -> FleetConfig:
    """A fleet in a new /tmp folder on free ports; with `mongodb_uri`, it uses that database instead of its own.
    `app_listen="tcp"`: its processes listen on their ports (for a client that must reach them without nginx)."""
    # App ports, nginx, database, then one metrics port per process (app port + FLEET_METRICS_PORT_OFFSET).
    base = free_port_block(2 * procs + 2)
    # The folder last: nothing is left behind in /tmp when no ports are free.
    return FleetConfig(
        var_dir=short_tmp_dir(f"{prefix}{mode}-"),
        port=base + procs,
        procs=procs,
        app_port_base=base,
        db_port=base + procs + 1,
        mongodb_uri=mongodb_uri,
        app_listen=app_listen,
        app_env={"FLEET_DB_MODE": mode, "FLEET_METRICS_PORT_OFFSET": str(procs + 2), **app_env},
    )


def script_env(config: FleetConfig) -> dict[str, str]:
    """The environment under which scripts/run, scripts/stop, ... act on `config`'s fleet (the inverse of
    `FleetConfig.from_env`)."""
    env = {
        **os.environ,
        "FLEET_VAR_DIR": str(config.var_dir),
        "FLEET_PROCS": str(config.procs),
        "FLEET_APP_PORT_BASE": str(config.app_port_base),
        "FLEET_PORT": str(config.port),
        "FLEET_DB_PORT": str(config.db_port),
        "FLEET_APP_LISTEN": config.app_listen,
        # Throw-away fleets run as the invoking user, root included (scripts/run as root would otherwise drop to
        # tornado-fleet, which may not be able to read this checkout: tests/whole_fleet/test_security_privileges.py).
        "FLEET_USER": config.run_user,
        **config.app_env,
    }
    if config.mongodb_uri:
        env["MONGODB_URI"] = config.mongodb_uri
    return env


@contextlib.contextmanager
def booted(config: FleetConfig) -> Iterator[Supervisor]:
    """`launcher.up(config)` for the duration of the block (yields its Supervisor); the fleet is stopped and its
    folder removed on the way out, also when it failed to come up."""
    try:
        yield launcher.up(config, log=lambda *_: None)
    finally:
        stop_fleet(config)


def stop_fleet(config: FleetConfig) -> None:
    """Stop a fleet started with `launcher.up` and remove its folder, killing by PID whatever hangs.

    supervisord would stop the programs one priority group per tick of its loop (~1 s each), the database last
    (~3 s: its accept thread's join times out, then WiredTiger closes), for files removed right after. So once
    supervisord is shutting down (it restarts nothing then), nginx and the app processes are signalled here, all
    at once, by PID (the apps still drain: nginx's graceful stop closes the connections they wait for), the log
    rotator is killed, and the database too once no app process is left to close its store. scripts/stop and
    `launcher.down` are unchanged.
    """
    supervisor = Supervisor(config.socket)
    if not supervisor.running():
        shutil.rmtree(config.var_dir, ignore_errors=True)
        return
    processes = [p for p in supervisor.processes() if p["pid"]]
    pids = [supervisor.supervisord_pid()] + [p["pid"] for p in processes]
    throwaway = {p["name"]: p["pid"] for p in processes if p["name"] in ("db", "logrotate")}
    others = [p["pid"] for p in processes if p["name"] not in throwaway]
    try:
        supervisor.rpc.shutdown()
        kill(throwaway.get("logrotate"))
        for p in processes:
            if p["name"] not in throwaway:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p["pid"], signal.SIGQUIT if p["name"] == "nginx" else signal.SIGTERM)
        wait_for_exit(others, 60)
        kill(throwaway.get("db"))
    finally:
        # Whatever is left after the deadline hung: kill it, by PID (never by name: other fleets may be running).
        for pid in wait_for_exit(pids, 60):
            kill(pid)
        wait_for_exit(pids, 5)
        shutil.rmtree(config.var_dir, ignore_errors=True)


def kill(pid: int | None) -> None:
    with contextlib.suppress(ProcessLookupError):
        if pid:
            os.kill(pid, signal.SIGKILL)
