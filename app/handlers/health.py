"""Probes: /healthz says the process runs (no I/O); /readyz says it can serve (it pings the database)."""

from __future__ import annotations

import asyncio
import os

from pymongo.errors import PyMongoError

from app.handlers.base import BaseHandler
from app.store import DATABASE_UNAVAILABLE


class HealthHandler(BaseHandler):
    def get(self) -> None:
        self.write_json({"status": "ok"})

    head = get


class ReadyHandler(BaseHandler):
    async def get(self) -> None:
        info = {
            "pid": os.getpid(),
            "port": self.process.port,
            "db_mode": self.store.mode,
            # The loop actually running ("asyncio" or "uvloop"), not the setting: what scripts/bench checks.
            "event_loop": type(asyncio.get_running_loop()).__module__.partition(".")[0],
            "draining": self.lifecycle.draining,
            "in_flight": self.lifecycle.in_flight,
            # Event-loop lag (app/watchdog.py): now, the worst of the last minute, and stalls past the threshold.
            "loop_lag_ms": round(1000 * self.watchdog.current_lag, 1),
            "loop_lag_max_ms": round(1000 * self.watchdog.max_lag, 1),
            "loop_stalls": self.watchdog.stalls,
        }
        if self.lifecycle.draining:
            self.write_json({**info, "status": "draining"}, 503)
            return
        timeout = self.app_settings.db_timeout_ms / 1000
        try:
            # The driver's own server-selection timeout should fire first; this bounds the probe regardless.
            await asyncio.wait_for(self.store.ping(), timeout + 0.5)
        # Any driver error (an authentication failure too, say) means this process cannot serve: a 503 that
        # nginx's users and the status page understand, never a 500 with a traceback.
        except (TimeoutError, PyMongoError, *DATABASE_UNAVAILABLE) as exc:
            self.write_json({**info, "status": "unavailable", "error": type(exc).__name__}, 503)
            return
        self.write_json({**info, "status": "ready"})
