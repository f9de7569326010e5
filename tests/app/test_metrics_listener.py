"""The metrics listener (app/metrics_listener.py): a port out of range is not served."""

from __future__ import annotations

from app import metrics, metrics_listener
from app.process_snapshot import ProcessSnapshot


def test_a_metrics_port_out_of_range_is_not_served(caplog):
    process_metrics = metrics.Metrics(mode="async", port=65000)
    snapshot = ProcessSnapshot(process_metrics, {})
    assert metrics_listener.listen(process_metrics, snapshot, ("127.0.0.1", 65000 + 1000)) is None
    assert "out of range" in caplog.text
