"""Upstream keep-alive (deploy/nginx.conf) is lossless: nginx never resends a POST it has written, so the app must
never close a kept-alive connection on which nginx may just have sent one. A storm of POSTs through nginx while
every process is restarted one by one (scripts/rolling-restart: each drains, app/lifecycle.py) fails none and loses
no acknowledged write. What stall shedding does on kept-alive connections is pinned in tests/app/test_shedding.py
and, through nginx, in tests/whole_fleet/test_blast_radius.py."""

from __future__ import annotations

import pytest

from bench.loadgen import Load, all_note_ids
from fleet.supervisor import pid_alive
from tests.fleets import module_fleet
from tests.whole_fleet.test_switch import processes, script, wait_for_requests

fleet = module_fleet("async", 2)


@pytest.mark.fleet
def test_the_shipped_upstream_keeps_connections_alive(fleet):
    rendered = (fleet.var_dir / "nginx.conf").read_text()
    assert "keepalive 64;" in rendered and "proxy_http_version 1.1;" in rendered


@pytest.mark.fleet
def test_a_post_storm_through_kept_alive_connections_survives_a_rolling_restart(fleet):
    before = processes(fleet)
    # 24 clients, each sending POSTs back to back on its own keep-alive connection: nginx's upstream connections
    # are all busy or briefly idle, which is when a process closing one would lose a POST.
    with Load(fleet.url, clients=24, rate=50, cycle=("write",)) as load:
        wait_for_requests(load, 100)
        restarted = script(fleet, "rolling-restart")
        wait_for_requests(load, 100)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    after = processes(fleet)
    for port in fleet.app_ports:
        assert after[port].pid != before[port].pid and after[port].ready
        assert not pid_alive(before[port].pid)
    result = load.result
    failed = result.failures
    assert failed == [], f"{len(failed)} of {len(result.outcomes)} POSTs failed: {failed[:5]}"
    assert len(result.acknowledged) >= 200
    missing = set(result.acknowledged) - all_note_ids(fleet.url)
    assert not missing, f"{len(missing)} acknowledged writes cannot be read back"
