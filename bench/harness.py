"""How a measurement boots a fleet: `fleet.sandbox`'s throw-away fleets (free ports, a /tmp folder), started and
always stopped by `sandbox.booted`. Every bench command boots through here or through `sandbox.booted` itself.

A measurement that reaches an app process by its own port (wrk on one process without nginx, a block sent to one
process, a hand-written nginx upstream) asks for `tcp=True`: fleets may listen on unix sockets by default.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from bench.errors import BenchError
from fleet import launcher, probe, sandbox
from fleet.config import FleetConfig


def fleet_config(mode: str, procs: int, *, tcp: bool = False, **kwargs) -> FleetConfig:
    """`sandbox.fleet_config`; with `tcp`, its app processes listen on their TCP ports (the default: unix sockets)."""
    return sandbox.fleet_config(mode, procs, **({"app_listen": "tcp"} if tcp else {}), **kwargs)


@contextlib.contextmanager
def booted_fleet(
    mode: str, loop: str | None, procs: int, db_uri: str, *, tcp: bool = False, **app_env: str
) -> Iterator[FleetConfig]:
    """A fleet on `db_uri` for the duration of the block, every process checked to run `mode` and `loop`;
    `loop` None: the settings' default event loop; `tcp`: see `fleet_config`."""
    if loop:
        app_env = {"FLEET_EVENT_LOOP": loop, **app_env}
    config = fleet_config(mode, procs, tcp=tcp, mongodb_uri=db_uri, prefix="bench-", **app_env)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(sandbox.booted(config))
        except launcher.FleetError as exc:
            raise BenchError(f"fleet {mode}/{loop} procs={procs} did not start: {exc}") from None
        check_fleet(config, mode, loop)
        yield config


def check_fleet(config: FleetConfig, mode: str, loop: str | None) -> None:
    """Every process must run the mode and loop the cell is labelled with, or the figures would lie."""
    for port in config.app_ports:
        ready = probe.ready(config.app_address(port)) or {}
        if ready.get("db_mode") != mode or (loop and ready.get("event_loop") != loop):
            raise BenchError(f"process on port {port} reports {ready}, expected db_mode={mode} event_loop={loop}")
