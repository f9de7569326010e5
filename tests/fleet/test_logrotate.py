"""nginx's access log rotates by size under load (fleet/logrotate.py under supervisord) and no request's line is
lost or written twice: every request id sent is in exactly one of access.log, access.log.1, ... And the rotation
itself: backups shift and the oldest is dropped; nothing is renamed while nginx is not running."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleet import logrotate


def test_rotate_shifts_backups_and_drops_the_oldest(tmp_path):
    log = tmp_path / "access.log"
    for generation in range(4):
        log.write_text(f"generation {generation}\n")
        logrotate.rotate(log, backups=2)
    assert not log.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["access.log.1", "access.log.2"]
    assert (tmp_path / "access.log.1").read_text() == "generation 3\n"
    assert (tmp_path / "access.log.2").read_text() == "generation 2\n"


def test_nothing_is_renamed_without_a_running_nginx(tmp_path):
    log = tmp_path / "access.log"
    log.write_text("x" * 100)
    messages: list[str] = []
    pid_file = tmp_path / "nginx.pid"
    assert logrotate.check(tmp_path, ["access.log"], pid_file, max_bytes=10, backups=2, log=messages.append) == []
    # A stale pid file: the process is gone.
    pid_file.write_text(f"{dead_pid()}\n")
    assert logrotate.check(tmp_path, ["access.log"], pid_file, max_bytes=10, backups=2, log=messages.append) == []
    assert log.read_text() == "x" * 100
    assert len(messages) == 2 and "nginx is not running" in messages[0]


def test_small_files_are_left_alone(tmp_path):
    (tmp_path / "access.log").write_text("x" * 10)
    pid_file = tmp_path / "nginx.pid"
    pid_file.write_text(f"{os.getpid()}\n")  # never signalled: nothing is due
    assert logrotate.check(tmp_path, ["access.log", "error.log"], pid_file, max_bytes=10, backups=2) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("access")] == ["access.log"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-bytes", "0"], "--max-bytes must be at least 1"),
        (["--max-bytes", "10", "--backups", "0"], "--backups must be at least 1"),
        (["--max-bytes", "10", "--interval", "0"], "--interval must be positive"),
        (["--max-bytes", "ten"], "invalid int value"),
    ],
)
def test_bad_arguments_exit_2_naming_the_option(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as stopped:
        logrotate.main(["--dir", str(tmp_path), "--pid-file", str(tmp_path / "nginx.pid"), *argv])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def dead_pid() -> int:
    """A pid no process has right now (one past the last in /proc, checked)."""
    pid = max(int(p) for p in os.listdir("/proc") if p.isdigit()) + 1000
    while Path(f"/proc/{pid}").exists():
        pid += 1
    return pid
