"""Start and stop the whole fleet: `python -m fleet.launcher up|down` (behind scripts/run and scripts/stop).

`up` writes var/fleet.env and var/nginx.conf from the environment (see the README's settings table), starts
supervisord with deploy/supervisord.conf, seeds the embedded database (rewrites the `world` or `fortune`
collection whenever its document count is not the expected 10,000 or 12: fleet/seed.py; notes are never touched),
and returns once nginx and every app process answer /readyz. Running it while the fleet is up changes nothing and
reports the fleet.
`down` shuts supervisord down (it stops every process, app processes draining first) and waits until every
process it ran has exited.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from pymongo.errors import PyMongoError

from app.settings import SettingsError
from fleet import probe
from fleet.config import SUPERVISORD_CONF, FleetConfig
from fleet.seed import seed
from fleet.supervisor import Supervisor, wait_for_exit

READY_TIMEOUT = 60.0


class FleetError(RuntimeError):
    """The fleet could not be brought to the asked state; the message says why and where to look."""


def up(config: FleetConfig, *, log=print, ready_timeout: float = READY_TIMEOUT) -> Supervisor:
    supervisor = Supervisor(config.socket)
    if supervisor.running():
        log(f"fleet already running (supervisord pid {supervisor.supervisord_pid()}); not restarting it")
        # Leave a running fleet's files alone: its env file may hold a switched mode.
    else:
        config.write_runtime_files()
        env = {**os.environ, **config.supervisor_env()}
        supervisord = [sys.executable, "-m", "supervisor.supervisord", "-c", str(SUPERVISORD_CONF)]
        result = subprocess.run(supervisord, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise FleetError(f"supervisord did not start: {result.stderr.strip() or result.stdout.strip()}")
        if not probe.wait_until(supervisor.running, 15):
            raise FleetError(f"supervisord did not answer on {config.socket}; see {config.var_dir}/log/supervisord.log")
        log(f"supervisord started (pid {supervisor.supervisord_pid()}), logs in {config.var_dir}/log/")
    settings = config.app_settings()
    if config.embedded_db:
        seed_embedded(config, settings, log)
    wait_ready(config, supervisor, ready_timeout)
    return supervisor


def seed_embedded(config: FleetConfig, settings, log) -> None:
    # The embedded server is ready ~0.4 s after start; allow for a slow first start of WiredTiger.
    deadline = time.monotonic() + 30
    while True:
        try:
            written = seed(settings.mongodb_uri, settings.db_name, timeout_ms=2000)
            break
        except PyMongoError as exc:
            if time.monotonic() > deadline:
                raise FleetError(f"embedded database not reachable: {exc}; see {config.var_dir}/log/db.log") from None
            # A refused connection fails at once: don't spin on it.
            time.sleep(0.2)
    if any(written.values()):
        log(f"seeded {written['world']} world and {written['fortune']} fortune documents")


def wait_ready(config: FleetConfig, supervisor: Supervisor, timeout: float) -> None:
    """Wait until every app process and nginx answer /readyz with 200."""

    def all_ready():
        # supervisord must agree too: a program answers before `startsecs` has made it RUNNING, and the rolling
        # scripts refuse a fleet whose processes are still STARTING.
        starting = [p for p in supervisor.processes() if p["statename"] in ("STARTING", "BACKOFF")]
        return not starting and all(probe.ready(port) for port in config.app_ports) and probe.ready(config.port)

    if not probe.wait_until(all_ready, timeout, interval=0.2):
        not_ready = [port for port in config.app_ports if not probe.ready(port)]
        states = ", ".join(f"{p['name']}={p['statename']}" for p in supervisor.processes())
        raise FleetError(
            f"fleet not ready after {timeout:.0f}s (processes: {states}; not ready: ports {not_ready or 'nginx'}); "
            f"see {config.var_dir}/log/"
        )


def down(config: FleetConfig, *, log=print, timeout: float = 60.0) -> None:
    supervisor = Supervisor(config.socket)
    if not supervisor.running():
        log("fleet is not running")
        return
    pids = [supervisor.supervisord_pid()] + [p["pid"] for p in supervisor.processes() if p["pid"]]
    supervisor.rpc.shutdown()
    alive = wait_for_exit(pids, timeout)
    if alive:
        raise FleetError(f"processes still running {timeout:.0f}s after shutdown: pids {alive}")
    log(f"fleet stopped ({len(pids)} processes)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleet.launcher", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down"])
    args = parser.parse_args(argv)
    try:
        config = FleetConfig.from_env()
        if args.action == "down":
            down(config)
            return 0
        up(config)
    except SettingsError as exc:
        print(f"error: invalid setting: {exc}", file=sys.stderr)
        return 2
    except FleetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # The running fleet's own answer: its env file may hold a mode switched since it started.
    mode = (probe.ready(config.port) or {}).get("db_mode", "?")
    where = "embedded database" if config.embedded_db else "MONGODB_URI"
    print(
        f"fleet ready: {config.url}/  ({config.procs} processes on ports {config.app_ports[0]}-{config.app_ports[-1]},"
        f" db_mode={mode}, {where})\n"
        f"  status:  .venv/bin/supervisorctl -c deploy/supervisord.conf status\n"
        f"  stop:    scripts/stop"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
