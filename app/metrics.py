"""Per-process metrics in the Prometheus text format (prometheus_client): what is measured, and how it is counted.

Each app process creates one `Metrics` in `app.server` (inside the loop; nothing happens at import) with its
own `CollectorRegistry`; app.metrics_listener serves it on the process's own metrics listener, never through nginx,
so Prometheus sees each process separately (see README, "Observing the fleet"). Who observes: app.web.log_request
(each request), app.store.guard (each Store operation), app.admission.refusal (each refusal).

What the hot path pays: a few integer additions per request and per database call (`Counts`: a count, a sum of
seconds and a latency bucket), turned into Prometheus counters and histograms only when scraped; prometheus_client's
own Counter.inc and Histogram.observe take a lock and check the metric on every call, which showed in the /json
profile. Everything else (in-flight requests, loop lag, pool sizes and queues) is read from the objects that
already keep it, only when scraped. All of it runs on the loop thread, so nothing needs a lock.
"""

from __future__ import annotations

import bisect
import itertools
import os
import time

import tornado.web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

# Seconds. From a cached /plaintext (well under 1 ms) to the slowest legitimate call (tens of seconds).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The metrics of one process. `observe_app` points the scrape-time gauges at the running app's objects."""

    def __init__(self, *, mode: str, port: int):
        self.mode = mode
        self.port = port
        self.started_at = time.time()
        # The *_created series (a timestamp per label set) double what is stored and say nothing here.
        disable_created_metrics()
        self.registry = CollectorRegistry()
        # process_* (CPU, memory, open files, start time), python_info and python_gc_*: what the default registry
        # would have, but in this process's own registry.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        Info("fleet_process", "This process: database mode, app port and pid", registry=self.registry).info(
            {"mode": mode, "port": str(port), "pid": str(os.getpid())}
        )
        Gauge(
            "fleet_process_start_time_seconds", "When this app process started (Unix time)", registry=self.registry
        ).set(self.started_at)
        self._db_errors = Counter(
            "fleet_db_operation_errors",
            "Store operations that raised, by operation and exception class",
            ["operation", "error"],
            registry=self.registry,
        )
        self._refused = Counter(
            "fleet_http_refused",
            "Requests answered 503 + Retry-After by overload protection (app/admission.py), by reason",
            ["reason"],
            registry=self.registry,
        )
        self.refused_total = 0
        # (handler, method, status) -> [count, sum of seconds, count per LATENCY_BUCKETS slot, +Inf last]: plain
        # Python counting on the loop thread, turned into fleet_http_requests_total and
        # fleet_http_request_duration_seconds at scrape time (_LiveCollector). prometheus_client's Counter.inc and
        # Histogram.observe take a lock and check the metric each time, which showed in the /json profile.
        self.requests: dict[tuple[str, str, int], list] = {}
        # operation -> the same [count, sum, slots] for fleet_db_operation_duration_seconds.
        self.db_operations: dict[str, list] = {}
        self.requests_total = 0
        self.db_in_flight = 0
        self._app_settings: dict | None = None
        self.registry.register(_LiveCollector(self))

    def observe_app(self, app_settings: dict) -> None:
        """Read lifecycle, store, pools and watchdog from the Application's settings, at scrape time."""
        self._app_settings = app_settings

    # -- the hot path ---------------------------------------------------------------------------------------

    def observe_request(self, handler: tornado.web.RequestHandler) -> None:
        request = handler.request
        method = request.method if request.method in handler.SUPPORTED_METHODS else "OTHER"
        key = (type(handler).__name__, method, handler.get_status())
        counts = self.requests.get(key)
        if counts is None:
            counts = self.requests[key] = new_counts()
        add(counts, request.request_time())
        self.requests_total += 1

    def observe_refusal(self, reason: str) -> None:
        self._refused.labels(reason).inc()
        if reason != "client_gone":  # the status page shows refusals someone received, not abandoned requests
            self.refused_total += 1

    def observe_db(self, operation: str, seconds: float, error: BaseException | None) -> None:
        counts = self.db_operations.get(operation)
        if counts is None:
            counts = self.db_operations[operation] = new_counts()
        add(counts, seconds)
        if error is not None:
            self._db_errors.labels(operation, type(error).__name__).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def pool_stats(app_settings: dict) -> dict[str, dict]:
    """Thread pools of this process: `blocking` (app.blocking) and `db` (the store's own, if it has one)."""
    pools = {}
    blocking = app_settings.get("blocking")
    if blocking is not None:
        pools["blocking"] = blocking.stats()
    store = app_settings.get("store")
    if store is not None and (db := store.pool_stats()) is not None:
        pools["db"] = db
    return pools


def new_counts() -> list:
    """[count, sum of seconds, count per LATENCY_BUCKETS slot with +Inf last]: one series' plain counts."""
    return [0, 0.0, [0] * (len(LATENCY_BUCKETS) + 1)]


def add(counts: list, seconds: float) -> None:
    counts[0] += 1
    counts[1] += seconds
    counts[2][bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1


def histogram_family(name: str, documentation: str, label: str, series: dict[str, tuple[float, list[int]]]):
    """A histogram family from per-label (sum of seconds, count per slot) plain counts."""
    family = HistogramMetricFamily(name, documentation, labels=[label])
    for value, (seconds, slots) in sorted(series.items()):
        cumulative = list(itertools.accumulate(slots))
        buckets = [(str(bound), n) for bound, n in zip(LATENCY_BUCKETS, cumulative, strict=False)]
        family.add_metric([value], [*buckets, ("+Inf", cumulative[-1])], seconds)
    return family


def db_family(operations: dict[str, list]):
    """fleet_db_operation_duration_seconds{operation} from Metrics.observe_db's plain counts."""
    return histogram_family(
        "fleet_db_operation_duration_seconds",
        "Duration of Store operations (in threads mode including the wait for a pool thread)",
        "operation",
        {operation: (seconds, slots) for operation, (_, seconds, slots) in operations.items()},
    )


def request_families(requests: dict[tuple[str, str, int], list]):
    """fleet_http_requests_total{handler,method,status} and fleet_http_request_duration_seconds{handler} from the
    plain counts Metrics.observe_request keeps."""
    total = CounterMetricFamily(
        "fleet_http_requests",
        "HTTP requests answered, by handler class, method and status",
        labels=["handler", "method", "status"],
    )
    per_handler: dict[str, list] = {}
    for (handler, method, status), (count, seconds, slots) in sorted(requests.items()):
        total.add_metric([handler, method, str(status)], count)
        merged = per_handler.setdefault(handler, [0.0, [0] * len(slots)])
        merged[0] += seconds
        merged[1] = [a + b for a, b in zip(merged[1], slots, strict=True)]
    yield total
    yield histogram_family(
        "fleet_http_request_duration_seconds",
        "Time from request received to response finished, by handler class",
        "handler",
        {handler: (seconds, slots) for handler, (seconds, slots) in per_handler.items()},
    )


class _LiveCollector:
    """Gauges read at scrape time from the objects that already keep the numbers (no cost per request)."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def collect(self):
        metrics = self.metrics
        yield from request_families(metrics.requests)
        yield db_family(metrics.db_operations)
        app = metrics._app_settings or {}
        lifecycle = app.get("lifecycle")
        if lifecycle is not None:
            yield GaugeMetricFamily(
                "fleet_http_requests_in_flight", "Requests being served right now", value=lifecycle.in_flight
            )
            yield GaugeMetricFamily(
                "fleet_draining", "1 while the process drains before exiting", value=int(lifecycle.draining)
            )
        yield GaugeMetricFamily(
            "fleet_db_operations_in_flight", "Store operations started and not finished", value=metrics.db_in_flight
        )
        watchdog = app.get("watchdog")
        if watchdog is not None:
            yield GaugeMetricFamily(
                "fleet_event_loop_lag_seconds", "How late the loop's heartbeat runs now", value=watchdog.current_lag
            )
            yield GaugeMetricFamily(
                "fleet_event_loop_lag_max_seconds",
                "Largest loop lag over the watchdog's window (60 s)",
                value=watchdog.max_lag,
            )
            yield CounterMetricFamily(
                "fleet_event_loop_stalls", "Times the loop was blocked past FLEET_WATCHDOG_MS", value=watchdog.stalls
            )
            shed = getattr(watchdog.on_stall, "shed", None)
            if isinstance(shed, int):
                yield CounterMetricFamily(
                    "fleet_stall_shed",
                    "Requests closed during a loop stall for nginx to retry on another process (app/shedding.py)",
                    value=shed,
                )
        families = {
            "size": GaugeMetricFamily("fleet_pool_threads", "Threads a pool may run", labels=["pool"]),
            "active": GaugeMetricFamily("fleet_pool_active", "Calls running in a pool's threads", labels=["pool"]),
            "queued": GaugeMetricFamily("fleet_pool_queued", "Calls waiting for a pool thread", labels=["pool"]),
        }
        for pool, stats in pool_stats(app).items():
            for key, family in families.items():
                if key in stats:
                    family.add_metric([pool], stats[key])
        yield from families.values()
