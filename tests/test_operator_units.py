"""The parts behind the operator's scripts, without a fleet: who holds a port (fleet/ports.py), which settings a
re-run of scripts/run compares with a running fleet (fleet/launcher.py), and the nginx config scripts/scale
reloads, which must be the one scripts/run writes (fleet/scale.py)."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys

from app.settings import DEV_SECRET_KEY, Settings
from fleet import launcher, ports, scale
from fleet.sandbox import fleet_config, free_port_block


def test_the_holder_of_a_port_is_found_with_its_pid_and_command():
    port = free_port_block(1)
    with socket.create_server(("127.0.0.1", port)):
        assert not ports.bindable(port)
        holders = ports.holders(port)
        assert [h.pid for h in holders] == [os.getpid()]
        assert "python" in holders[0].command
        taken = ports.taken({port: "test port", free_port_block(1): "a free one"})
        assert [(t.port, t.role) for t in taken] == [(port, "test port")]
        assert str(taken[0]).startswith(f"port {port} (test port) is held by pid {os.getpid()} (")
    assert ports.bindable(port) and ports.holders(port) == []


def test_a_port_held_by_the_fleets_own_processes_is_not_taken():
    # A child holds the port; seen from its parent (this test, standing in for supervisord) it is "own".
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, sys; s = socket.create_server(('127.0.0.1', 0));"
            "print(s.getsockname()[1], flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(child.stdout.readline())
        assert ports.taken({port: "app"}, own_root=os.getpid()) == []
        assert [t.holders[0].pid for t in ports.taken({port: "app"}, own_root=1 << 22)] == [child.pid]
    finally:
        child.stdin.close()
        child.wait(10)
        child.stdout.close()


def test_only_settings_given_and_not_empty_are_compared():
    environ = {"FLEET_PROCS": "4", "FLEET_DB_MODE": "", "FLEET_APP_PORTS": "1,2", "HOME": "/root", "MONGODB_URI": "x"}
    assert launcher.explicit_settings(environ) == {"FLEET_PROCS": "4", "MONGODB_URI": "x"}


def test_app_settings_are_compared_as_the_settings_parse_them():
    env = Settings.from_mapping({"MONGODB_URI": "mongodb://127.0.0.1:1/"}).to_env()
    same = {"FLEET_DB_POOL_SIZE": "0100", "FLEET_DB_JOURNAL": "yes", "FLEET_SECRET_KEY": DEV_SECRET_KEY}
    assert launcher.app_setting_changes(env, same) == {}
    changed = launcher.app_setting_changes(env, {"FLEET_DB_POOL_SIZE": "50", "FLEET_PORT": "1"})
    assert changed == {"FLEET_DB_POOL_SIZE": ("100", "50")}


def test_scale_reloads_nginx_with_the_config_scripts_run_writes(tmp_path):
    config = dataclasses.replace(fleet_config("motor", 3, FLEET_MAX_IN_FLIGHT="300"), var_dir=tmp_path)
    config.write_runtime_files()
    written = (tmp_path / "nginx.conf").read_text()
    assert scale.nginx_conf(config) == written
    assert written.count("max_conns=300") == 3
