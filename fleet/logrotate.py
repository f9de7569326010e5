"""Rotate nginx's log files by size without losing a line: `python -m fleet.logrotate` (run by supervisord).

Every `--interval` seconds, each log file in `--dir` (access.log, and error.log if nginx writes one) larger than
`--max-bytes` is renamed to NAME.1 (NAME.1 to NAME.2 and so on; the oldest beyond `--backups` is dropped), then
nginx's master (pid in `--pid-file`) gets USR1 and reopens its log files: a new NAME.

Why nothing is lost: a rename keeps the file open in nginx, so lines written between the rename and the reopen go
to NAME.1; at the reopen nginx flushes its access-log buffer (`buffer=64k flush=1s`) into the old file first.
The file dropped at a rotation was renamed `--backups` rotations earlier (at least that many intervals), long
after nginx reopened. With nginx not running nothing is renamed (it could not reopen the file).

What supervisord captures (the app processes' output, nginx's stderr where its error log goes) is rotated by
supervisord itself (`stdout_logfile_maxbytes`): supervisord is the only writer of those files, so it loses
nothing either. The README shows Debian's `logrotate` doing the same job instead ("Log rotation").

Exit status: 0 when stopped (SIGTERM or SIGINT), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

DEFAULT_LOGS = ("access.log", "error.log")


def rotate(path: Path, backups: int) -> None:
    """NAME.{backups-1} -> NAME.{backups}, ..., NAME -> NAME.1 (renames only: a writer keeps its open file)."""
    for index in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{index + 1}"))
    os.replace(path, path.with_name(f"{path.name}.1"))


def nginx_pid(pid_file: Path) -> int | None:
    """The pid of nginx's running master, or None (no pid file, or its process is gone)."""
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def check(log_dir: Path, names: list[str], pid_file: Path, *, max_bytes: int, backups: int, log=print) -> list[str]:
    """Rotate each file over `max_bytes` and tell nginx to reopen; returns the names rotated."""
    due = []
    for name in names:
        try:
            size = (log_dir / name).stat().st_size
        except FileNotFoundError:
            continue
        if size > max_bytes:
            due.append((name, size))
    if not due:
        return []
    pid = nginx_pid(pid_file)
    if pid is None:
        log(f"not rotating {', '.join(name for name, _ in due)}: nginx is not running (no live pid in {pid_file})")
        return []
    for name, _ in due:
        rotate(log_dir / name, backups)
    os.kill(pid, signal.SIGUSR1)
    for name, size in due:
        log(f"rotated {log_dir / name} ({size} bytes); nginx (pid {pid}) reopens it")
    return [name for name, _ in due]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleet.logrotate", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="nginx's log folder (var/nginx/logs)")
    parser.add_argument("--pid-file", type=Path, required=True, help="nginx's pid file (var/nginx/nginx.pid)")
    parser.add_argument("--max-bytes", type=int, required=True, help="rotate a file larger than this")
    parser.add_argument("--backups", type=int, default=5, help="rotated files kept per log (default 5)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between checks (default 1)")
    parser.add_argument("--log", action="append", dest="names", help=f"file name in --dir (default: {DEFAULT_LOGS})")
    parser.add_argument("--once", action="store_true", help="check once and exit (for cron)")
    args = parser.parse_args(argv)
    if args.max_bytes < 1:
        parser.error("--max-bytes must be at least 1")
    if args.backups < 1:
        parser.error("--backups must be at least 1")
    if args.interval <= 0:
        parser.error("--interval must be positive")
    names = args.names or list(DEFAULT_LOGS)

    def log(message: str) -> None:
        print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}", flush=True)

    if args.once:
        check(args.dir, names, args.pid_file, max_bytes=args.max_bytes, backups=args.backups, log=log)
        return 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log(f"rotating {', '.join(names)} in {args.dir} past {args.max_bytes} bytes, keeping {args.backups}")
    while not stop.wait(args.interval):
        check(args.dir, names, args.pid_file, max_bytes=args.max_bytes, backups=args.backups, log=log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
