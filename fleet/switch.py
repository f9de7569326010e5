"""Switch the fleet's database mode with no failed request: `python -m fleet.switch MODE` (scripts/switch-db-mode).

It checks the mode and that the fleet is up, sets FLEET_DB_MODE in the env file every process reads at start
(var/fleet.env, replaced atomically: a process starting meanwhile reads the old file or the new one, never half
of it), then restarts the processes that do not already serve MODE, one at a time, each ready in the new mode and
routed by nginx before the next one goes (fleet/rolling.py). Nothing else in the env file changes, so the command
that undoes a switch is the same command with the previous mode: on failure it is printed.

`--status` prints every process: port, pid, supervisord's state, database mode, ready or not.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from app.process_status import ProcessStatus
from app.settings import DB_MODES, Settings, SettingsError, read_env_file, write_env_file
from fleet import rolling
from fleet.config import FleetConfig
from fleet.exit_status import EXIT_INVALID, fail, invalid_setting

MODE_VAR = "FLEET_DB_MODE"


class UnknownMode(ValueError):
    pass


class SwitchFailed(RuntimeError):
    """A process did not come back in the new mode; `previous_mode` is what to roll back to (None: nothing)."""

    def __init__(self, message: str, previous_mode: str | None):
        super().__init__(message)
        self.previous_mode = previous_mode


def check_mode(mode: str) -> str:
    if mode not in DB_MODES:
        raise UnknownMode(f"unknown database mode {mode!r}: choose one of {', '.join(DB_MODES)}")
    return mode


def previous_mode(env_mode: str, rows: list[ProcessStatus], target: str) -> str | None:
    """The mode to roll back to: the env file's, or, when a failed switch already wrote the target there, the mode
    most of the processes still serve. None when every process already serves the target."""
    if env_mode != target:
        return env_mode
    others = Counter(r.mode for r in rows if r.mode and r.mode != target)
    return others.most_common(1)[0][0] if others else None


def switch(
    running: rolling.RunningFleet, mode: str, *, timeout: float = rolling.READY_TIMEOUT, log=print
) -> tuple[int, float, str | None]:
    """Write `mode` to the env file and restart the processes not serving it yet. Returns (processes restarted,
    seconds, the previous mode). Raises InvalidEnvFile before changing anything, SwitchFailed on the way."""
    env = read_env_file(running.env_file)
    try:
        current = Settings.from_mapping(env)
        Settings.from_mapping({**env, MODE_VAR: mode})
    except SettingsError as exc:
        raise rolling.InvalidEnvFile(f"invalid setting in {running.env_file}: {exc}; nothing was changed") from None
    rows = rolling.status(running)
    previous = previous_mode(current.db_mode, rows, mode)
    pending = [r for r in rows if not (r.ready and r.mode == mode)]
    if env.get(MODE_VAR) != mode:
        write_env_file(running.env_file, {**env, MODE_VAR: mode})
        log(f"{running.env_file}: {MODE_VAR}={mode} (was {current.db_mode})")
    if not pending:
        log(f"every process already serves {mode}; nothing to restart (scripts/rolling-restart restarts them anyway)")
        return 0, 0.0, previous
    log(f"switching {len(pending)} of {len(rows)} app processes to {mode}, one at a time")
    try:
        seconds = rolling.rolling_restart(running, pending, mode, timeout=timeout, log=log)
    except rolling.RestartFailed as exc:
        raise SwitchFailed(str(exc), previous) from None
    return len(pending), seconds, previous


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/switch-db-mode",
        description="Switch every app process to another database mode, one process at a time, with no failed "
        "request; or show each process with --status. The fleet is the one in FLEET_VAR_DIR (default: var/).",
        epilog="Exit status: 0 done (--status: every process ready), 1 the fleet is not running or a process did "
        "not come back (the rest keep serving; the rollback command is printed), 2 unknown mode or invalid env file "
        "(nothing changed).",
    )
    parser.add_argument("mode", nargs="?", help=f"the new mode: {', '.join(DB_MODES)}")
    parser.add_argument("--status", action="store_true", help="print each process (port, pid, mode, ready) and exit")
    parser.add_argument(
        "--timeout",
        type=float,
        default=rolling.READY_TIMEOUT,
        help=f"seconds a process may take to be ready after its start (default {rolling.READY_TIMEOUT:g})",
    )
    args = parser.parse_args(argv)
    if args.status == bool(args.mode):
        parser.error("give a MODE or --status")
    config = None
    try:
        if args.mode:
            check_mode(args.mode)
        config = FleetConfig.from_env()
        running = rolling.connect(config)
        if args.status:
            rows = rolling.status(running)
            print(rolling.format_status(rows))
            return 0 if all(r.ready for r in rows) else 1
        with rolling.exclusive(config):
            count, seconds, _ = switch(running, args.mode, timeout=args.timeout)
    except UnknownMode as exc:
        return fail(exc, EXIT_INVALID)
    except SettingsError as exc:
        return invalid_setting(exc)
    except rolling.RollingError as exc:
        return fail(exc, exc.exit_status)
    except SwitchFailed as exc:
        code = fail(exc)
        if exc.previous_mode and config is not None:
            print(f"Roll back with: {rolling.command('switch-db-mode', config, exc.previous_mode)}", file=sys.stderr)
        return code
    if count:
        print(f"switched {count} processes to {args.mode} in {seconds:.1f}s; every process serves {args.mode}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
