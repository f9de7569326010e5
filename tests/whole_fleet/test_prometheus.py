"""Prometheus: the files scripts/run renders agree with the fleet's ports and pass promtool, bad settings are
refused naming the variable, and Debian's real prometheus, run by supervisord with FLEET_PROMETHEUS=true, sees every
app process up, raises the stall alert when one process's loop is blocked, and follows the fleet when it is scaled.

The alert rules themselves are unit-tested by promtool (deploy/prometheus/alerts_test.yml, run by scripts/test).
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import urllib.parse

import pytest

from fleet import launcher, probe, scale
from fleet.sandbox import fleet_config, free_port_block, stop_fleet

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="Debian's prometheus is not installed")


def query(port: int, promql: str) -> list[dict]:
    status, body = probe.get_json(port, "/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    return body["data"]["result"] if status == 200 and body else []


def alerts(port: int, name: str) -> list[dict]:
    status, body = probe.get_json(port, "/api/v1/alerts")
    found = body["data"]["alerts"] if status == 200 and body else []
    return [alert for alert in found if alert["labels"]["alertname"] == name]


@pytest.mark.fleet
def test_prometheus_sees_every_process_up_and_a_blocked_loop_raises_the_stall_alert():
    # Scrapes and rule evaluations every second, so the test sees in seconds what takes minutes by default; a 1 s
    # watchdog threshold, so a busy 2-core machine does not stall a loop by itself.
    config = dataclasses.replace(
        fleet_config("motor", 2, FLEET_FAULTS="true", FLEET_WATCHDOG_MS="1000"),
        prometheus=True,
        prometheus_port=free_port_block(1),
        prometheus_interval="1s",
    )
    try:
        launcher.up(config, log=lambda *_: None)
        prometheus_port = config.prometheus_port

        def every_process_up() -> bool:
            result = query(prometheus_port, 'up{job="tornado-fleet"}')
            return sorted((r["metric"]["app_port"], r["value"][1]) for r in result) == [
                (str(port), "1") for port in config.app_ports
            ]

        assert probe.wait_until(every_process_up, 20, interval=0.5), query(prometheus_port, "up")
        # Scraped for real: each process's own series, by its app port.
        modes = query(prometheus_port, "fleet_process_info")
        assert sorted(r["metric"]["port"] for r in modes) == [str(port) for port in config.app_ports]
        blocked = config.app_ports[0]
        assert alerts(prometheus_port, "FleetEventLoopStalls") == []

        # Block one process's loop for 3 s through its own socket (not nginx, which would pick either process).
        answers: list = []
        blocker = threading.Thread(
            target=lambda: answers.append(
                probe.get_json(config.app_address(blocked), "/fault/block?seconds=3", timeout=15)
            )
        )
        blocker.start()
        try:
            assert probe.wait_until(lambda: alerts(prometheus_port, "FleetEventLoopStalls"), 20, interval=0.5)
        finally:
            blocker.join(20)
        assert answers and answers[0][0] == 200
        raised = alerts(prometheus_port, "FleetEventLoopStalls")
        assert {a["labels"]["app_port"] for a in raised} == {str(blocked)}
        assert all(a["state"] in ("pending", "firing") for a in raised)

        # Scaled down, the fleet's targets follow (fleet/scale.py rewrites targets.json as it reloads nginx).
        scale.scale(config, 1, log=lambda *_: None)
        assert probe.wait_until(
            lambda: (
                [r["metric"]["app_port"] for r in query(prometheus_port, 'up{job="tornado-fleet"}')]
                == [str(config.app_ports[0])]
            ),
            20,
            interval=0.5,
        ), query(prometheus_port, "up")
    finally:
        stop_fleet(config)
