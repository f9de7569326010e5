"""The one status model (app/process_status.py): how a process's answers (or their absence) classify it."""

from __future__ import annotations

from app import process_status


def test_a_process_whose_readyz_is_slow_but_whose_loop_answers_is_not_ready_not_stuck():
    snapshot = {"pid": 1, "draining": False}
    state, detail = process_status.classify("timeout", None, snapshot)
    assert state == "not ready" and "database slow or unreachable" in detail
    assert process_status.classify("timeout", None, None)[0] == "not responding"
