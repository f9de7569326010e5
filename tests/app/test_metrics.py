"""The metrics one process serves on its own listener (app/metrics.py): database errors counted by operation and
class, and the pools each mode reports. Through a fleet: tests/whole_fleet/test_metrics.py.
"""

from __future__ import annotations

from fleet import probe
from fleet.sandbox import APP_METRICS_OFFSET, free_port_block, start_app
from tests.client import get, scrape, value


def test_database_errors_are_counted_by_operation_and_class(tmp_path):
    dead_db = free_port_block(1)
    env = {
        "FLEET_DB_MODE": "async",
        "MONGODB_URI": f"mongodb://127.0.0.1:{dead_db}/?retryWrites=false",
        "FLEET_DB_TIMEOUT_MS": "200",
    }
    app = start_app(env, tmp_path, ready_path="/healthz")
    try:
        assert get(f"{app.url}/readyz").status == 503
        assert get(f"{app.url}/db").status == 503
        samples = scrape(app.metrics_port)
    finally:
        app.stop()
    errors = {"ServerSelectionTimeoutError"}
    for operation in ("ping", "find_one"):
        counted = {
            dict(labels)["error"]
            for (name, labels), v in samples.items()
            if name == "fleet_db_operation_errors_total" and dict(labels)["operation"] == operation and v == 1
        }
        assert counted == errors, (operation, counted)
        assert value(samples, "fleet_db_operation_duration_seconds_count", operation=operation) == 1
    assert value(samples, "fleet_http_requests_total", handler="DbHandler", method="GET", status="503") == 1


def test_each_mode_reports_its_pools(app_url):
    port = int(app_url.rsplit(":", 1)[1])
    mode = probe.ready(port)["db_mode"]
    # app_url's processes are started by fleet.sandbox.start_app, their metrics port right after the app port.
    samples = scrape(port + APP_METRICS_OFFSET)
    assert value(samples, "fleet_pool_threads", pool="blocking") == 4
    db_pool = value(samples, "fleet_pool_threads", pool="db")
    if mode == "threads":
        assert db_pool == 16
        assert value(samples, "fleet_pool_active", pool="db") == 0
    elif mode == "motor":
        # Motor's own pool, sized by FLEET_DB_THREADS as the threads pool is; how many of its threads run is not
        # readable.
        assert db_pool == 16
        assert value(samples, "fleet_pool_active", pool="db") is None
        assert value(samples, "fleet_pool_queued", pool="db") is not None
    else:
        assert db_pool is None  # async: no thread runs a database call
