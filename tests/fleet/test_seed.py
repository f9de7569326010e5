"""Seeding the database (fleet/seed.py): with no --uri (which every local user sees in ps), the fleet's env file
says where the database is.
"""

from __future__ import annotations

import os
import subprocess
import sys

from fleet.config import ROOT


def test_fleet_seed_reads_the_uri_from_the_env_file(tmp_path):
    """No --uri (which every local user sees in ps): the fleet's env file says where the database is."""
    env_file = tmp_path / "fleet.env"
    env_file.write_text("MONGODB_URI=mongodb://127.0.0.1:1/?retryWrites=false\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_") and k != "MONGODB_URI"}
    result = subprocess.run(
        [sys.executable, "-m", "fleet.seed"],
        env={**clean, "FLEET_ENV_FILE": str(env_file)},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    # Port 1: nobody there; the error names the address the env file gave.
    assert result.returncode == 1 and "127.0.0.1:1" in result.stderr, result.stderr
