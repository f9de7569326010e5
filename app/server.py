"""One app process: `python -m app --port N`.

Everything with I/O (database client, thread pools, the listening socket) is created here, inside the running
loop, and closed on the way out; supervisord starts one such process per port.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

import tornado.ioloop

from app import addresses, logs, metrics, metrics_listener
from app.blocking import BlockingPool
from app.early_errors import JsonErrorsHTTPServer
from app.lifecycle import Lifecycle
from app.process_snapshot import ProcessSnapshot
from app.settings import Settings, SettingsError
from app.shedding import StallShedder
from app.store import open_store
from app.watchdog import Watchdog
from app.web import make_app

log = logging.getLogger("fleet.server")

MAX_BODY_BYTES = 1024 * 1024
LISTEN_BACKLOG = 4096
IDLE_CONNECTION_TIMEOUT = 300


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description="Run one Tornado Fleet app process.")
    parser.add_argument(
        "--port",
        type=int,
        required=True,
        help="the process's number (supervisord's process_num): it listens on FLEET_SOCKET_DIR/app-PORT.sock, or on "
        "TCP port PORT when FLEET_SOCKET_DIR is empty (app/addresses.py)",
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings.load()
    except SettingsError as exc:
        print(f"app: invalid setting: {exc}", file=sys.stderr)
        return 2
    # JSON lines with pid, port, mode and the request id (app/logs.py).
    logs.setup(settings.log_level, port=args.port, mode=settings.db_mode)
    try:
        with asyncio.Runner(loop_factory=loop_factory(settings.event_loop)) as runner:
            runner.run(serve(settings, args.port))
    except OSError as exc:
        log.error("cannot serve on %s: %s", addresses.describe(settings.app_address(args.port)), exc)
        return 3  # supervisord does not restart this exit (exitcodes in deploy/supervisord.conf)
    return 0


def loop_factory(event_loop: str):
    """The event loop FLEET_EVENT_LOOP names (None: asyncio's default). uvloop is imported only when chosen."""
    if event_loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


async def serve(settings: Settings, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    process_metrics = metrics.Metrics(mode=settings.db_mode, port=port) if settings.metrics else None
    store = open_store(settings, metrics=process_metrics)
    blocking = BlockingPool(settings.blocking_threads, queue_limit=settings.blocking_queue_limit)
    lifecycle = Lifecycle()
    # Stopped last, so it also names code that blocks the loop during the drain or while closing the store.
    watchdog = Watchdog(settings.watchdog_ms / 1000)
    if settings.watchdog_ms:
        watchdog.start()
    app = make_app(
        settings, store, blocking=blocking, port=port, lifecycle=lifecycle, watchdog=watchdog, metrics=process_metrics
    )
    rate_sampler = snapshot = None
    if process_metrics is not None:
        process_metrics.observe_app(app.settings)
        snapshot = ProcessSnapshot(process_metrics, app.settings)
        rate_sampler = tornado.ioloop.PeriodicCallback(snapshot.sample_rate, 1000)
        rate_sampler.start()
    metrics_server = None
    # Counts connections for the drain and stops listening without resetting queued ones (app/lifecycle.py);
    # answers Tornado's own early 400s in JSON (app/early_errors.py). No xheaders: Tornado's validates the client
    # address with a getaddrinfo() call per request (the largest single cost in a /json profile after the
    # connection handling); nginx sets X-Real-IP itself, and BaseHandler.client_ip reads it.
    server = JsonErrorsHTTPServer(
        app,
        max_body_size=MAX_BODY_BYTES,
        lifecycle=lifecycle,
        # nginx closes idle kept-alive connections after 2 s (deploy/nginx.conf); the app must never close one
        # first, or a POST nginx sends at that moment would fail. This only bounds clients that are not nginx.
        idle_connection_timeout=IDLE_CONNECTION_TIMEOUT,
    )
    try:
        # Backlog 4096, not Tornado's 128: a TechEmpower burst of 512 new connections from nginx overflowed 128 and
        # nginx's connect timed out (504); the kernel caps it at net.core.somaxconn (README "Overload").
        address = settings.app_address(port)
        server.add_sockets(addresses.bind(address, LISTEN_BACKLOG))
        # The peers at their sockets, or on TCP at 127.0.0.1 even when FLEET_HOST is 0.0.0.0, as nginx asks them.
        peers = [
            addresses.app_address(settings.socket_dir, "127.0.0.1", other)
            for other in settings.fleet_ports(port)
            if other != port
        ]
        if settings.stall_shedding and settings.watchdog_ms and peers:
            # Alone, a process has no one to pass requests to: nginx would answer 502 instead of waiting.
            watchdog.on_stall = StallShedder(
                server, server.listening, app.settings["in_flight"], lambda: watchdog.stalled, peers
            )
        metrics_address = settings.metrics_address(port)
        if process_metrics is not None and snapshot is not None and metrics_address is not None:
            metrics_server = metrics_listener.listen(process_metrics, snapshot, metrics_address)
            if metrics_server is None and settings.env == "production":  # taken: whoever holds it is not us
                raise OSError(f"metrics listener {addresses.describe(metrics_address)} not served (README Security)")
        log.info(
            "listening on %s, db_mode=%s, event_loop=%s",
            addresses.describe(address),
            settings.db_mode,
            settings.event_loop,
        )
        await stop.wait()
        log.info("stopping")
        await lifecycle.drain(server, settings.drain_seconds)
    finally:
        # Run last to first, each even if one before it raised (the errors are re-raised after the last one).
        async with contextlib.AsyncExitStack() as cleanup:
            cleanup.callback(log.info, "stopped")
            cleanup.callback(watchdog.stop)
            cleanup.push_async_callback(blocking.aclose)
            cleanup.push_async_callback(store.close)
            if rate_sampler is not None:
                cleanup.callback(rate_sampler.stop)
            # Metrics stay readable during the drain (the status page shows the process as draining).
            cleanup.push_async_callback(metrics_listener.close, metrics_server)
