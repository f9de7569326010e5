"""nginx's access log rotates by size under load (fleet/logrotate.py under supervisord) and no request's line is
lost or written twice: every request id sent is in exactly one of access.log, access.log.1, ... The rotation's
own rules: tests/fleet/test_logrotate.py.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import threading
import time
import uuid
from pathlib import Path

import pytest

from fleet import launcher, probe
from fleet.sandbox import fleet_config, stop_fleet
from fleet.supervisor import Supervisor


def request_ids(log_dir: Path) -> dict[str, list[str]]:
    """request_id -> the files holding a line for it."""
    found: dict[str, list[str]] = {}
    for path in sorted(log_dir.glob("access.log*")):
        for line in path.read_text().splitlines():
            found.setdefault(json.loads(line)["request_id"], []).append(path.name)
    return found


def send_load(port: int, prefix: str, seconds: float, max_requests: int) -> list[str]:
    """GET /plaintext through nginx from 4 keep-alive connections for `seconds` (at most `max_requests`); returns
    the request ids answered 200."""
    sent: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(worker: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            for i in range(max_requests // 4):
                if time.monotonic() > deadline:
                    return
                request_id = f"{prefix}-{worker}-{i}"
                conn.request("GET", "/plaintext", headers={"X-Request-ID": request_id})
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    with lock:
                        sent.append(request_id)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    return sent


@pytest.mark.fleet
def test_access_log_rotates_under_load_and_keeps_every_line_once():
    # A tiny size and backups enough to keep every rotated file, so every line of the test can be counted.
    config = dataclasses.replace(fleet_config("motor", 2), nginx_log_max_bytes=8192, nginx_log_backups=1000)
    log_dir = config.var_dir / "nginx" / "logs"
    try:
        launcher.up(config, log=lambda *_: None)
        prefix = f"rot-{uuid.uuid4().hex[:8]}"
        sent = send_load(config.port, prefix, seconds=6, max_requests=20_000)
        assert len(sent) > 200
        # No rotation while the files are read: stop the rotator, then wait for nginx's buffered lines (flush=1s).
        supervisor = Supervisor(config.socket)
        supervisor.rpc.stopProcess("logrotate")

        def all_logged() -> bool:
            return set(sent) <= set(request_ids(log_dir))

        assert probe.wait_until(all_logged, 15, interval=0.5), f"{len(set(sent) - set(request_ids(log_dir)))} missing"
        found = {rid: files for rid, files in request_ids(log_dir).items() if rid.startswith(prefix)}
        assert set(found) == set(sent)
        twice = {rid: files for rid, files in found.items() if len(files) != 1}
        assert twice == {}
        rotated = sorted(log_dir.glob("access.log.*"))
        # The load ran for several of the rotator's 1 s checks, each over 8 KB.
        assert len(rotated) >= 3, rotated
        assert {files[0] for files in found.values()} - {"access.log"}, "no request line in a rotated file"
        rotator_log = (config.var_dir / "log" / "logrotate.log").read_text()
        assert rotator_log.count("rotated ") >= len(rotated)
    finally:
        stop_fleet(config)
