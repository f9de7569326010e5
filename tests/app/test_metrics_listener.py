"""The metrics listener (app/metrics_listener.py): a port out of range is not served, and in production a process
whose metrics port is taken exits instead of serving without it."""

from __future__ import annotations

import socket
import sys

from app import metrics, metrics_listener
from app.process_snapshot import ProcessSnapshot
from fleet.sandbox import free_port_block, start_process, stop_process


def test_a_metrics_port_out_of_range_is_not_served(caplog):
    process_metrics = metrics.Metrics(mode="async", port=65000)
    snapshot = ProcessSnapshot(process_metrics, {})
    assert metrics_listener.listen(process_metrics, snapshot, ("127.0.0.1", 65000 + 1000)) is None
    assert "out of range" in caplog.text


def test_a_production_process_whose_metrics_port_is_taken_does_not_serve(mongo_uri, tmp_path):
    """Whoever holds a process's metrics port would answer for it on the status page: in production the process
    exits 3 (supervisord does not restart that exit; scripts/run names it) instead of running without metrics."""
    port = free_port_block(2)
    squatter = socket.create_server(("127.0.0.1", port + 1))
    env = {
        "FLEET_ENV_FILE": "",
        "MONGODB_URI": mongo_uri,
        "FLEET_ENV": "production",
        "FLEET_SECRET_KEY": "k" * 43,
        "FLEET_METRICS_PORT_OFFSET": "1",
    }
    process = start_process([sys.executable, "-m", "app", "--port", str(port)], tmp_path / "app.log", env)
    try:
        assert process.wait(30) == 3
        assert f"metrics listener 127.0.0.1:{port + 1} not served" in (tmp_path / "app.log").read_text()
    finally:
        stop_process(process)
        squatter.close()
