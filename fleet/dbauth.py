"""The embedded database's own authentication in production (README "Security").

SecantusDB listens on TCP only (no unix socket), so any local account can connect to 127.0.0.1:FLEET_DB_PORT. In
production it runs with `--auth` (SCRAM-SHA-256): every command but the handshake needs a user. scripts/run
creates that user once, `fleet` with a random password, and keeps the password in MONGODB_URI in the env file
(0600), which is how the app processes, the seeding and `scripts/status` log in. Development keeps the open
database, as before.

SecantusDB provisions users only while it runs without `--auth` ("connect once without auth and run createUser,
then restart with --auth", its --help). So on a first production start scripts/run runs it briefly without auth, as
the fleet's account, on the fleet's own port: for those ~2 seconds, on a fresh and empty database, another local
account could connect too. A marker file in the database folder records that the user exists.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from app.settings import EMBEDDED_URI_OPTIONS

if TYPE_CHECKING:
    from fleet.config import FleetConfig

DB_USER = "fleet"
MARKER = ".fleet-user"
# An embedded database's URI, with the fleet's credentials or without.
EMBEDDED = re.compile(rf"mongodb://(?:{DB_USER}:(?P<password>[^@]+)@)?127\.0\.0\.1:(?P<port>\d+)/\?")
USER_EXISTS = 51003


class ProvisionError(RuntimeError):
    """The database user could not be created; the message says why."""


def new_password() -> str:
    return secrets.token_urlsafe(24)  # URL-safe: needs no escaping in the URI


def authenticated_uri(port: int, password: str) -> str:
    return f"mongodb://{DB_USER}:{password}@127.0.0.1:{port}/?{EMBEDDED_URI_OPTIONS}&authSource=admin"


def password_of(uri: str) -> str | None:
    match = EMBEDDED.match(uri)
    return match["password"] if match else None


def provision(config: FleetConfig, log=print) -> None:
    """Create the fleet's database user in FLEET_VAR_DIR/db unless the marker says it exists (ProvisionError)."""
    storage = config.var_dir / "db"
    if (storage / MARKER).exists():
        return
    account = pwd.getpwnam(config.run_user)
    args = [str(Path(sys.executable).parent / "secantusd-py"), "--host", "127.0.0.1", "--port", str(config.db_port)]
    with open(config.var_dir / "log" / "db.log", "ab") as log_file:  # the child keeps its own descriptor
        server = subprocess.Popen(
            [*args, "--storage-path", str(storage)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            **({"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []} if os.geteuid() == 0 else {}),
            umask=0o077,
        )
    try:
        with MongoClient(f"mongodb://127.0.0.1:{config.db_port}/?{EMBEDDED_URI_OPTIONS}") as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    create_user(client, config.db_password)
                    break
                except PyMongoError as exc:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise ProvisionError(f"could not create the database user: {exc}") from None
                    time.sleep(0.2)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
    marker = storage / MARKER
    with os.fdopen(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        out.write(f"database user {DB_USER} created by scripts/run; its password is in MONGODB_URI\n")
    os.chown(marker, account.pw_uid, account.pw_gid)
    log(f"created the database user {DB_USER} (password in {config.env_file}); the database now requires it")


def create_user(client: MongoClient, password: str) -> None:
    try:
        client.admin.command("createUser", DB_USER, pwd=password, roles=["root"])
    except OperationFailure as exc:
        if exc.code != USER_EXISTS:
            raise
        client.admin.command("updateUser", DB_USER, pwd=password)
