"""How the fleet's programs end: one `error: ...` line on stderr and the exit status their --help documents.

Shared by scripts/run and scripts/stop (fleet/launcher.py), switch-db-mode, rolling-restart, scale, drain-host,
undrain-host, fleet-hosts, status and `python -m fleet.kubernetes`: 0 done; EXIT_FAILED the fleet is not running or
the operation failed; EXIT_INVALID an invalid setting, option or env file (nothing was changed). Statuses only some
programs have (run's EXIT_REFUSED, status's 2 for "nothing to ask") stay with the program.
"""

from __future__ import annotations

import sys

EXIT_FAILED = 1
EXIT_INVALID = 2
# scripts/run and scripts/scale: a port the fleet needs is held by another program (nothing started or changed).
EXIT_PORT_TAKEN = 3


def fail(error: object, status: int = EXIT_FAILED) -> int:
    """Print `error: ERROR` on stderr; returns `status`, for main() to return."""
    print(f"error: {error}", file=sys.stderr)
    return status


def invalid_setting(error: Exception) -> int:
    """A SettingsError (it names the variable and what is wrong): EXIT_INVALID."""
    return fail(f"invalid setting: {error}", EXIT_INVALID)
