"""scripts/scale (fleet/scale.py) without a fleet: the nginx config it reloads is the one scripts/run writes."""

from __future__ import annotations

import dataclasses

from fleet import scale
from fleet.sandbox import fleet_config


def test_scale_reloads_nginx_with_the_config_scripts_run_writes(tmp_path):
    config = dataclasses.replace(fleet_config("motor", 3, FLEET_MAX_IN_FLIGHT="300"), var_dir=tmp_path)
    config.write_runtime_files()
    written = (tmp_path / "nginx.conf").read_text()
    assert scale.nginx_conf(config) == written
    assert written.count("max_conns=300") == 3
