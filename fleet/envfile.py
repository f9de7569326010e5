"""What a cold start keeps: the deployment's env file (var/fleet.env) survives `scripts/stop` + `scripts/run`.

`scripts/run` on a stopped fleet starts from the env file it wrote last time and applies only the app settings
given explicitly in the environment, so a production fleet restarted after a reboot without its exports comes back
in production, with its key, its switched database mode and its MONGODB_URI. What changed is printed (secrets by
name only). A first production start with no FLEET_SECRET_KEY gets a random one, stored in the env file (0600).
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
from collections.abc import Mapping
from pathlib import Path

from app.settings import Settings, SettingsError, env_name, read_env_file
from fleet import dbauth
from fleet.config import DERIVED_SETTINGS, ROOT, FleetConfig
from fleet.supervisor import Supervisor

# Shown by name only, never by value.
SECRETS = {"FLEET_SECRET_KEY", "FLEET_STATUS_TOKEN", "MONGODB_URI"}


def app_variables() -> set[str]:
    return {env_name(field.name) for field in dataclasses.fields(Settings)}


def carry_over(environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """`environ` with what the fleet's existing env file holds and `environ` does not give, and a generated secret
    key for a first production start without one; and what to tell the operator once the file is written. A
    running fleet's files are left alone: then `environ` comes back as it is."""
    var_dir = Path(environ.get("FLEET_VAR_DIR", "").strip() or ROOT / "var").resolve()
    path = var_dir / "fleet.env"
    if Supervisor(var_dir / "supervisor.sock").running():
        return dict(environ), []
    notes: list[str] = []
    old = read_env_file(path) if path.exists() else {}
    carried = app_variables() - DERIVED_SETTINGS - {"MONGODB_URI"}
    merged = {**{k: v for k, v in old.items() if k in carried}, **environ}
    old_uri = old.get("MONGODB_URI", "")
    if dbauth.password_of(old_uri) and not environ.get("FLEET_DB_PASSWORD"):
        merged["FLEET_DB_PASSWORD"] = dbauth.password_of(old_uri)  # the embedded database's user's (production)
    if not environ.get("MONGODB_URI", "").strip() and old_uri and not dbauth.EMBEDDED.match(old_uri):
        merged["MONGODB_URI"] = old_uri
        notes.append(f"{path}: keeps its MONGODB_URI (no embedded database); set MONGODB_URI to change it")
    if merged.get("FLEET_ENV", "").strip() == "production" and not merged.get("FLEET_SECRET_KEY", "").strip():
        merged["FLEET_SECRET_KEY"] = secrets.token_urlsafe(32)
        notes.append(f"generated a random FLEET_SECRET_KEY for production, stored in {path} (owner-only, 0600)")
    if old:
        with contextlib.suppress(SettingsError):  # an invalid setting is reported when the fleet's config is made
            new = FleetConfig.from_env(merged).app_settings().to_env()
            notes += [f"{path}: {line}" for line in changes(old, new)]
    return merged, notes


def changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """One line per setting whose value differs between two env files (secrets by name only)."""
    lines = []
    for var in sorted(set(new) - DERIVED_SETTINGS):
        before, after = old.get(var), new[var]
        if before is None or before == after:
            continue
        lines.append(f"{var} changed" if var in SECRETS else f"{var}: {before} -> {after}")
    return lines


# What supervisord, and through it every program it runs, inherits from the caller of scripts/run: the locale and
# the search path. Nothing else: the caller's MONGODB_URI (with its password) or FLEET_SECRET_KEY must reach neither
# nginx nor the database; the app processes read every setting, secrets included, from the env file (FLEET_ENV_FILE),
# which supervisord names for them. No driver variable either: FLEET_DB_THREADS, in the env file, sizes Motor's pool.
PASSED = {"PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR"}


def child_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of `environ` supervisord may pass on to the programs it runs."""
    return {k: v for k, v in environ.items() if k in PASSED or k.startswith("LC_")}
