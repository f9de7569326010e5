"""The one status model (app/process_status.py): how a process's answers (or their absence) classify it."""

from __future__ import annotations

import asyncio
import socket

from tornado.httpclient import AsyncHTTPClient

from app import process_status


def test_a_process_whose_readyz_is_slow_but_whose_loop_answers_is_not_ready_not_stuck():
    snapshot = {"pid": 1, "draining": False}
    state, detail = process_status.classify("timeout", None, snapshot)
    assert state == "not ready" and "database slow or unreachable" in detail
    assert process_status.classify("timeout", None, None)[0] == "not responding"


def test_a_process_whose_socket_is_missing_or_stale_is_down_not_stuck(tmp_path):
    # A process that never bound (its socket file, or the folder, missing) and one that died (a stale file) are both
    # "nothing listens": down, like a refused port; only an accepted and unanswered connection is "not responding".
    stale = tmp_path / "app-8002.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(stale))

    async def codes():
        sockets = process_status.ProcessSockets()
        client = AsyncHTTPClient(force_instance=True, resolver=sockets)
        try:
            return [
                await process_status.fetch_json(client, sockets.url(str(path), "/readyz"), 1.0)
                for path in (tmp_path / "app-8001.sock", stale, tmp_path / "missing" / "app-8003.sock")
            ]
        finally:
            client.close()

    answers = asyncio.run(codes())
    assert answers == [("refused", None)] * 3
    assert {process_status.classify(code, body, None)[0] for code, body in answers} == {"down"}
