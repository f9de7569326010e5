"""Each process's own metrics listener: /metrics for Prometheus (app.metrics) and /process.json for the status
page (app.process_snapshot), at `Settings.metrics_address`, never through nginx, so each process is seen apart.
"""

from __future__ import annotations

import logging

import tornado.httpserver
import tornado.web
from prometheus_client import CONTENT_TYPE_LATEST

from app import addresses
from app.addresses import Address
from app.lifecycle import close_connections
from app.metrics import Metrics
from app.process_snapshot import ProcessSnapshot

log = logging.getLogger("fleet.metrics")

# Scrapers and the status page: a handful of connections at most.
METRICS_BACKLOG = 128


class _MetricsHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(self.settings["metrics"].exposition())


class _SnapshotHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.finish(self.settings["snapshot"].as_dict())


def make_metrics_app(metrics: Metrics, snapshot: ProcessSnapshot) -> tornado.web.Application:
    """The metrics listener's app: /metrics for Prometheus, /process.json for the status page."""
    return tornado.web.Application(
        [(r"/metrics", _MetricsHandler), (r"/process.json", _SnapshotHandler)],
        metrics=metrics,
        snapshot=snapshot,
        # Scrapes every few seconds per process would drown the app's own log lines at DEBUG.
        log_function=lambda handler: None,
    )


def listen(metrics: Metrics, snapshot: ProcessSnapshot, address: Address) -> tornado.httpserver.HTTPServer | None:
    """Serve `metrics` and `snapshot` at `address`; None (and an error in the log) if it is taken or out of range.

    A taken metrics port must not keep the app from serving: the process runs on, without metrics.
    """
    if isinstance(address, tuple) and not 0 < address[1] <= 65535:
        # getaddrinfo would wrap it silently onto some other port.
        log.error("metrics not served: port %d (app port + FLEET_METRICS_PORT_OFFSET) is out of range", address[1])
        return None
    server = tornado.httpserver.HTTPServer(make_metrics_app(metrics, snapshot))
    try:
        server.add_sockets(addresses.bind(address, METRICS_BACKLOG))
    except OSError as exc:
        log.error("metrics not served: cannot listen on %s: %s", addresses.describe(address), exc)
        return None
    log.info("metrics on %s/metrics", addresses.url(address))
    return server


async def close(server: tornado.httpserver.HTTPServer | None) -> None:
    if server is not None:
        server.stop()
        await close_connections(server)
