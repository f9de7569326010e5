"""Seed the benchmark collections (`world`, `fortune`) when they are not already complete.

    python -m fleet.seed [--db NAME] [--force]

Idempotent: a complete database is left alone, so `scripts/run` can call it on every start. The database is the
fleet's: MONGODB_URI from the environment, else from the fleet's env file (FLEET_ENV_FILE, else
FLEET_VAR_DIR/fleet.env, else var/fleet.env of this checkout). `--uri` still works, but a command line is
visible to every local user in `ps`: never put a password there.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections.abc import Mapping
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from app.settings import Settings, SettingsError, read_env_file

WORLD_ROWS = 10_000
ROOT = Path(__file__).resolve().parent.parent
FORTUNES_FILE = ROOT / "app" / "data" / "fortunes.json"


def fortunes() -> list[dict]:
    return json.loads(FORTUNES_FILE.read_text())


def seed(uri: str, db_name: str, *, force: bool = False, timeout_ms: int = 5000) -> dict[str, int]:
    """Make `world` hold ids 1..10000 and `fortune` the 12 standard fortunes; returns what was written."""
    written = {"world": 0, "fortune": 0}
    with MongoClient(uri, serverSelectionTimeoutMS=timeout_ms) as client:
        db = client[db_name]
        expected = {"world": WORLD_ROWS, "fortune": len(fortunes())}
        for name, count in expected.items():
            if not force and db[name].count_documents({}) == count:
                continue
            db[name].delete_many({})
            docs = (
                [{"_id": i, "id": i, "randomNumber": random.randint(1, WORLD_ROWS)} for i in range(1, count + 1)]
                if name == "world"
                else fortunes()
            )
            db[name].insert_many(docs, ordered=False)
            written[name] = len(docs)
    return written


def fleet_settings(environ: Mapping[str, str]) -> Settings:
    """The settings of the fleet this checkout runs: its env file, with the environment's MONGODB_URI over it."""
    env_file = environ.get("FLEET_ENV_FILE") or str(Path(environ.get("FLEET_VAR_DIR") or ROOT / "var") / "fleet.env")
    values = read_env_file(Path(env_file)) if Path(env_file).is_file() else {}
    if environ.get("MONGODB_URI", "").strip():
        values["MONGODB_URI"] = environ["MONGODB_URI"].strip()
    return Settings.from_mapping({**{k: v for k, v in environ.items() if k == "FLEET_DB_NAME"}, **values})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleet.seed", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--uri",
        help="MongoDB URI (default: MONGODB_URI from the environment or the fleet's env file); shows in ps: no "
        "password here",
    )
    parser.add_argument("--db", help="database name (default: FLEET_DB_NAME from the settings)")
    parser.add_argument("--force", action="store_true", help="rewrite the collections even when complete")
    args = parser.parse_args(argv)
    try:
        settings = fleet_settings(os.environ)
    except SettingsError as exc:
        print(f"seed: invalid setting: {exc}", file=sys.stderr)
        return 2
    try:
        written = seed(args.uri or settings.mongodb_uri, args.db or settings.db_name, force=args.force)
    except PyMongoError as exc:
        print(f"seed: database error: {exc}", file=sys.stderr)
        return 1
    print(f"seed: wrote {written['world']} world and {written['fortune']} fortune documents")
    return 0


if __name__ == "__main__":
    sys.exit(main())
