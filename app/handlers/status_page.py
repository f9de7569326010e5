"""The fleet status page: /status (one HTML page that refreshes itself) and /status.json (the same data).

Whichever process nginx picks serves them: it asks every process of the fleet (app/process_status.py), itself included,
so the page stays right while processes restart. Registered only when FLEET_STATUS_PAGE is on; in production
only for the clients app/access.py allows.
"""

from __future__ import annotations

import os

import tornado.web

from app import process_status
from app.access import InternalHandler

# Bounds on the page's refresh interval (seconds), settable with ?refresh=: fast enough to catch a restart,
# slow enough that an open page never loads the fleet.
REFRESH_DEFAULT, REFRESH_MIN, REFRESH_MAX = 2.0, 0.2, 60.0


class StatusJsonHandler(InternalHandler):
    async def get(self) -> None:
        settings = self.app_settings
        processes = await process_status.collect(
            settings.fleet_ports(self.process.port),
            settings,
            # A /readyz waits at most the database timeout; a process silent for longer than that is stuck
            # (app/process_status.py caps the wait so that nginx's 5 s for /status.json is never reached).
            request_timeout=settings.db_timeout_ms / 1000 + 1.0,
        )
        report = process_status.report(processes)
        report["served_by"] = {"port": self.process.port, "pid": os.getpid()}
        # The watchdog's stall threshold (FLEET_WATCHDOG_MS, the same for every process): lags above it are
        # highlighted on the page.
        report["stall_threshold_ms"] = settings.watchdog_ms
        self.set_header("Cache-Control", "no-store")
        self.write_json(report)


class StatusPageHandler(InternalHandler):
    def get(self) -> None:
        try:
            refresh = float(self.get_query_argument("refresh", str(REFRESH_DEFAULT)))
        except ValueError:
            refresh = REFRESH_DEFAULT
        refresh = min(REFRESH_MAX, max(REFRESH_MIN, refresh))
        self.set_header("Cache-Control", "no-store")
        self.render("status.html", refresh=refresh)


class StatusAssetHandler(InternalHandler, tornado.web.StaticFileHandler):
    """The page's script and stylesheet: files (nginx's Content-Security-Policy forbids inline ones), served
    through BaseHandler so they carry an X-Request-ID, are counted like any request and fail as JSON."""

    # Files are worth revalidating: keep StaticFileHandler's ETag (BaseHandler computes none).
    compute_etag = tornado.web.StaticFileHandler.compute_etag
