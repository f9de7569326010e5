"""scripts/scale (fleet/scale.py) without a fleet: the nginx config it reloads is the one scripts/run writes, built
from the running fleet (its supervisord, env file and nginx config), not from the caller's environment."""

from __future__ import annotations

import dataclasses
import subprocess

from fleet import scale
from fleet.config import FleetConfig
from fleet.sandbox import fleet_config


class RunningSupervisor:
    """supervisord as scale.running_config asks it: the app processes it runs and its own pid (whose environment
    holds FLEET_RUN_USER)."""

    def __init__(self, ports: list[int], pid: int):
        self.ports, self.pid = ports, pid

    def app_processes(self) -> list[dict]:
        return [{"name": f"app-{port}", "group": "app"} for port in self.ports]

    def supervisord_pid(self) -> int:
        return self.pid


def test_scale_reloads_nginx_with_the_config_scripts_run_writes(tmp_path):
    config = dataclasses.replace(fleet_config("motor", 3, FLEET_MAX_IN_FLIGHT="300"), var_dir=tmp_path)
    config.write_runtime_files()
    written = (tmp_path / "nginx.conf").read_text()
    # The caller's environment says otherwise about nearly everything; the running fleet wins.
    caller = FleetConfig(var_dir=tmp_path, procs=7, app_port_base=20001, app_listen="tcp", user="nobody")
    with subprocess.Popen(["sleep", "60"], env={"FLEET_RUN_USER": config.run_user}) as supervisord:
        try:
            running = scale.running_config(caller, RunningSupervisor(config.app_ports, supervisord.pid))
        finally:
            supervisord.kill()
    assert running.nginx_conf() == written
    assert written.count("max_conns=300") == 3
