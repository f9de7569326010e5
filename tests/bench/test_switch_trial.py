"""scripts/switch-trial and the one bench CLI (`python -m bench SUBCOMMAND`): the help, bad arguments refused before
anything boots, and the trial's table from made-up requests. The switches themselves are
tests/whole_fleet/test_switch.py's."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench import switch_trial
from bench.loadgen import Outcome
from fleet.config import ROOT


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_the_wrapper_explains_itself():
    result = run(str(ROOT / "scripts" / "switch-trial"), "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: scripts/switch-trial")
    assert "--procs" in result.stdout and "--clients" in result.stdout and "--rate" in result.stdout


@pytest.mark.parametrize("args", [["--procs", "0"], ["--clients", "0"], ["--rate", "0"], ["--procs", "x"]])
def test_bad_arguments_exit_2_before_anything_boots(args, capsys):
    with pytest.raises(SystemExit) as stop:
        switch_trial.main(args)
    assert stop.value.code == 2
    assert "usage: scripts/switch-trial" in capsys.readouterr().err


def test_each_switch_counts_the_requests_started_while_it_ran():
    outcomes = [
        Outcome("write", 201, "", started=10.5, latency=0.02),
        Outcome("db", 200, "", started=11.0, latency=0.5),
        Outcome("read_back", 0, "ConnectionResetError", started=11.5, latency=1.5),
        Outcome("db", 200, "", started=13.0, latency=0.01),  # after the switch ended: not counted
    ]
    row = switch_trial.tally({"procs": 2, "mode": "threads", "started": 10.0, "ended": 12.0}, outcomes)
    assert row["requests"] == 3 and row["writes"] == 1 and row["failed"] == 1
    assert row["seconds"] == 2.0 and row["p99_ms"] == 1500.0 and row["max_ms"] == 1500.0
    assert switch_trial.table([row]).splitlines() == [
        "| N | switch to | time | requests during it | of which writes | failed | p99 | max |",
        "|---|---|---|---|---|---|---|---|",
        "| 2 | threads | 2.0 s | 3 | 1 | 1 | 1500 ms | 1500 ms |",
    ]


def test_one_cli_names_its_subcommands_and_refuses_an_unknown_one():
    listing = run(sys.executable, "-m", "bench", "--help")
    assert listing.returncode == 0
    for name in ("throughput", "compare", "profile", "tune", "overload", "blast-radius", "switch-trial"):
        assert f"\n    {name} " in listing.stdout, name
    unknown = run(sys.executable, "-m", "bench", "no-such-thing")
    assert unknown.returncode == 2 and "no-such-thing" in unknown.stderr
    # A subcommand is scripts/bench with its flag: the same options, the same help.
    profile = run(sys.executable, "-m", "bench", "profile", "--help")
    assert profile.returncode == 0 and profile.stdout.startswith("usage: scripts/bench")
    assert run(sys.executable, "-m", "bench", "profile", "no-such-endpoint").returncode == 2
