"""This process in one JSON-able dict: what its /process.json answers, for the status page (app/process_status.py).

pid, mode, port, uptime, draining and in-flight requests, the request rate, loop lag and pool figures. No setting
is in it, so no secret is. The counts come from `app.metrics.Metrics`; the rate is this module's own: a window of
once-a-second samples of the request count.
"""

from __future__ import annotations

import collections
import os
import time

from app.metrics import Metrics, pool_stats

# The request rate the status page shows is averaged over this many seconds.
RATE_WINDOW = 10


class ProcessSnapshot:
    """Reads `metrics` and the running app's objects (its Application settings) when asked; `sample_rate` once a
    second (a PeriodicCallback in app.server) keeps the request-rate window."""

    def __init__(self, metrics: Metrics, app_settings: dict):
        self.metrics = metrics
        self.app_settings = app_settings
        self._rate_samples: collections.deque[tuple[float, int]] = collections.deque(maxlen=RATE_WINDOW + 1)

    def sample_rate(self) -> None:
        self._rate_samples.append((time.monotonic(), self.metrics.requests_total))

    def requests_per_second(self) -> float:
        if len(self._rate_samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._rate_samples[0], self._rate_samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def as_dict(self) -> dict:
        metrics, app = self.metrics, self.app_settings
        lifecycle = app.get("lifecycle")
        return {
            "pid": os.getpid(),
            "port": metrics.port,
            "mode": metrics.mode,
            "started_at": metrics.started_at,
            "uptime_s": round(time.time() - metrics.started_at, 1),
            "draining": bool(lifecycle and lifecycle.draining),
            "in_flight": lifecycle.in_flight if lifecycle else 0,
            "requests_total": metrics.requests_total,
            "requests_per_s": round(self.requests_per_second(), 1),
            "refused_total": metrics.refused_total,
            "db_in_flight": metrics.db_in_flight,
            "loop": loop_stats(app.get("watchdog")),
            "pools": pool_stats(app),
        }


def loop_stats(watchdog) -> dict | None:
    if watchdog is None:
        return None
    return {
        "lag_ms": round(1000 * watchdog.current_lag, 1),
        "max_lag_ms": round(1000 * watchdog.max_lag, 1),
        "stalls": watchdog.stalls,
    }
