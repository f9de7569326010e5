"""Prometheus for the fleet: the files `scripts/run` renders into var/prometheus/ from deploy/prometheus/.

- `prometheus.yml`: deploy/prometheus/prometheus.yml with the lines marked `fleet:` rewritten (the scrape and
  evaluation interval, and the absolute path of deploy/prometheus/alerts.yml, so an edited alert is picked up by a
  reload: `supervisorctl signal HUP prometheus`).
- `targets.json`: the `file_sd_configs` list, one target per app process's metrics listener (app port +
  FLEET_METRICS_PORT_OFFSET), labelled with its app port. It comes from the same FLEET_PROCS and
  FLEET_APP_PORT_BASE as supervisord's process group and nginx's upstream, so the three always agree.

Rendered for every fleet (an external Prometheus may read targets.json); run under supervisord only with
FLEET_PROMETHEUS=true (deploy/supervisord.conf, `[program:prometheus]`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

PROMETHEUS_DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"
TEMPLATE = PROMETHEUS_DEPLOY / "prometheus.yml"
ALERTS = PROMETHEUS_DEPLOY / "alerts.yml"
INTERVAL_MARK = "# fleet:interval"
RULES_MARK = "# fleet:rules"
# Prometheus's duration syntax, limited to what makes sense for an interval.
INTERVAL = re.compile(r"^[1-9]\d*(ms|s|m|h)$")
JOB = "tornado-fleet"


def render_config(template: str, interval: str, rules: Path) -> str:
    """Rewrite the `fleet:` lines of deploy/prometheus/prometheus.yml for this interval and rules file."""
    out = []
    for line in template.splitlines():
        if INTERVAL_MARK in line:
            out.append(re.sub(r"(:\s*)\S+(\s+#)", lambda m: f"{m[1]}{interval}{m[2]}", line, count=1))
        elif RULES_MARK in line:
            out.append(re.sub(r"(-\s*)\S+(\s+#)", lambda m: f"{m[1]}{rules}{m[2]}", line, count=1))
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def targets(app_ports: list[int], metrics_offset: int) -> list[dict]:
    """The file_sd target groups: one per process, so each alert names the app port (supervisord's app-PORT)."""
    if not metrics_offset:
        return []  # FLEET_METRICS_PORT_OFFSET=0: no process serves metrics
    return [
        {"targets": [f"127.0.0.1:{port + metrics_offset}"], "labels": {"app_port": str(port)}} for port in app_ports
    ]


def write_files(folder: Path, *, app_ports: list[int], metrics_offset: int, interval: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_atomically(folder / "prometheus.yml", render_config(TEMPLATE.read_text(), interval, ALERTS))
    write_targets(folder, app_ports=app_ports, metrics_offset=metrics_offset)


def write_targets(folder: Path, *, app_ports: list[int], metrics_offset: int) -> None:
    """Also called by fleet/scale.py when the running fleet gains or loses processes."""
    folder.mkdir(parents=True, exist_ok=True)
    # Prometheus watches this file: a half-written one would drop every target until the next write.
    write_atomically(folder / "targets.json", json.dumps(targets(app_ports, metrics_offset), indent=2) + "\n")


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def binary() -> str | None:
    """Debian's prometheus (/usr/bin/prometheus), or None when it is not installed."""
    return shutil.which("prometheus") or shutil.which("prometheus", path="/usr/bin:/usr/local/bin")
