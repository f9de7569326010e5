"""Prometheus's files (fleet/prometheus.py) without a fleet: the files scripts/run renders agree with the fleet's
ports and pass promtool; bad settings are refused naming the variable. Through a fleet:
tests/whole_fleet/test_prometheus.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from app.settings import SettingsError
from fleet import prometheus as fleet_prometheus
from fleet.config import FleetConfig

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="Debian's prometheus is not installed")


def test_rendered_files_follow_the_fleets_ports(tmp_path):
    config = FleetConfig(
        var_dir=tmp_path,
        procs=3,
        port=18080,
        app_port_base=18101,
        db_port=18200,
        app_env={"FLEET_METRICS_PORT_OFFSET": "500"},
        prometheus_interval="2s",
    )
    config.write_runtime_files()
    folder = tmp_path / "prometheus"
    groups = json.loads((folder / "targets.json").read_text())
    assert groups == [
        {"targets": [f"127.0.0.1:{port + 500}"], "labels": {"app_port": str(port)}} for port in (18101, 18102, 18103)
    ]
    rendered = (folder / "prometheus.yml").read_text()
    assert "scrape_interval: 2s" in rendered and "evaluation_interval: 2s" in rendered
    assert f"- {fleet_prometheus.ALERTS}  # fleet:rules" in rendered
    # Prometheus's own checker accepts the rendered file, its rules file and its targets file.
    checker = ["promtool", "check", "config", str(folder / "prometheus.yml")]
    result = subprocess.run(checker, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_no_metrics_listeners_no_targets(tmp_path):
    FleetConfig(var_dir=tmp_path, procs=2, app_env={"FLEET_METRICS_PORT_OFFSET": "0"}).write_runtime_files()
    assert json.loads((tmp_path / "prometheus" / "targets.json").read_text()) == []


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"FLEET_PROMETHEUS": "maybe"}, "FLEET_PROMETHEUS='maybe': expected true or false"),
        ({"FLEET_PROMETHEUS_INTERVAL": "fast"}, "FLEET_PROMETHEUS_INTERVAL: 'fast' is not a duration"),
        ({"FLEET_PROMETHEUS": "true", "FLEET_PROMETHEUS_PORT": "8001"}, "FLEET_PROMETHEUS_PORT: 8001 is not usable"),
        ({"FLEET_PROMETHEUS": "true", "FLEET_PROMETHEUS_PORT": "x"}, "FLEET_PROMETHEUS_PORT='x': expected an integer"),
        ({"FLEET_PROMETHEUS": "true", "FLEET_METRICS_PORT_OFFSET": "0"}, "FLEET_PROMETHEUS: needs metrics listeners"),
        ({"FLEET_NGINX_LOG_MAXBYTES": "-1"}, "FLEET_NGINX_LOG_MAXBYTES: must be 0"),
        ({"FLEET_NGINX_LOG_BACKUPS": "0"}, "FLEET_NGINX_LOG_BACKUPS: must be at least 1"),
    ],
)
def test_bad_settings_are_refused_naming_the_variable(environ, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        FleetConfig.from_env({"FLEET_PROCS": "2", **environ})
