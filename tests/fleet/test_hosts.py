"""scripts/fleet-hosts' order of work and its failure handling, with stand-in host scripts: each "host" runs the
scripts of a folder given as --dir, which log their calls and fail where told. (tests/whole_fleet/test_multihost.py
runs it for real, on hosts in network namespaces, as root.) And how it reads each host's process modes from the table
`switch-db-mode --status` prints (fleet.hosts.parse_modes)."""

from __future__ import annotations

import os
import subprocess
import textwrap

import pytest

from app.process_status import ProcessStatus, report
from fleet.config import ROOT
from fleet.hosts import parse_modes
from fleet.status import render

# Every stand-in logs "HOST SCRIPT ARGS"; switch-db-mode --status prints scripts/status's table; a script
# named in FAIL (HOST:SCRIPT, or HOST:status for switch-db-mode --status) exits 1.
STAND_IN = textwrap.dedent(
    """\
    #!/bin/sh
    name=$(basename "$0")
    echo "$FAKE_HOST $name $*" >> "$(dirname "$0")/../calls.log"
    key="$FAKE_HOST:$name"; [ "$1" = --status ] && key="$FAKE_HOST:status"
    case ",$FAIL," in *",$key,"*) echo "error: $name failed on $FAKE_HOST" >&2; exit 1 ;; esac
    if [ "$name" = switch-db-mode ] && [ "$1" = --status ]; then
        sed "s/MODE_HERE/${MODE:-motor}/" "$(dirname "$0")/../status.txt"
    fi
    exit 0
    """
)


def status_table() -> str:
    """The table the real `switch-db-mode --status` prints (scripts/status's), every process in MODE_HERE."""
    rows = [ProcessStatus(port, "ready", pid=pid, mode="MODE_HERE") for port, pid in ((8001, 11), (8002, 12))]
    return render(report(rows)) + "\n"


@pytest.fixture
def hosts_dir(tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (tmp_path / "status.txt").write_text(status_table())
    for name in ("drain-host", "undrain-host", "switch-db-mode", "rolling-restart"):
        path = scripts / name
        path.write_text(STAND_IN)
        path.chmod(0o755)
    return tmp_path


def fleet_hosts(hosts_dir, *args: str, fail: str = "") -> subprocess.CompletedProcess:
    template = f"env FAKE_HOST={{host}} FAIL={fail or '-'}"
    return subprocess.run(
        [str(ROOT / "scripts" / "fleet-hosts"), *args, "--command", template, "--dir", str(hosts_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "FLEET_HOSTS": ""},
    )


def calls(hosts_dir) -> list[str]:
    log = hosts_dir / "calls.log"
    return [" ".join(line.split()[:2]) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_switch_goes_host_by_host_drain_switch_undrain(hosts_dir):
    result = fleet_hosts(hosts_dir, "switch", "async", "--hosts", "a,b")
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(hosts_dir) == [
        "a switch-db-mode",  # --status, before anything changes
        "b switch-db-mode",
        "a drain-host",
        "a switch-db-mode",
        "a undrain-host",
        "b drain-host",
        "b switch-db-mode",
        "b undrain-host",
    ]
    assert "switched 2 host(s) to async" in result.stdout


def test_the_first_failure_stops_everything_and_says_how_to_roll_back(hosts_dir):
    result = fleet_hosts(hosts_dir, "switch", "async", "--hosts", "a,b,c", fail="b:switch-db-mode")
    assert result.returncode == 1
    assert calls(hosts_dir)[3:] == [
        "a drain-host",
        "a switch-db-mode",
        "a undrain-host",
        "b drain-host",
        "b switch-db-mode",
    ]
    assert "host b: switch-db-mode async exited 1; it stays drained" in result.stderr
    assert "Done: a; untouched: c." in result.stderr
    # Back to the mode the hosts served, the failed host first.
    assert "Roll back with: scripts/fleet-hosts switch motor --hosts b,a " in result.stderr
    assert "error: switch-db-mode failed on b" in result.stdout  # the host's own words, prefixed with its name


def test_a_failed_drain_leaves_its_host_unchanged_and_a_host_not_ready_stops_it_before_anything(hosts_dir):
    result = fleet_hosts(hosts_dir, "rolling-restart", "--hosts", "a,b", fail="a:drain-host")
    assert result.returncode == 1
    assert "host a: drain-host" in result.stderr and "it was undrained again and is unchanged" in result.stderr
    assert "Fix a, then go on with: scripts/fleet-hosts rolling-restart --hosts a,b" in result.stderr
    (hosts_dir / "calls.log").unlink()
    result = fleet_hosts(hosts_dir, "switch", "async", "--hosts", "a,b", fail="b:status")
    assert result.returncode == 1 and "host b is not ready" in result.stderr
    assert calls(hosts_dir) == ["a switch-db-mode", "b switch-db-mode"], "something ran after a failed --status"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["switch", "--hosts", "a"], "switch needs a MODE"),
        (["switch", "nosql", "--hosts", "a"], "switch needs a MODE"),
        (["status", "--hosts", ""], "no hosts"),
        (["status", "--hosts", "a,a"], "listed twice"),
        (["status", "--hosts", "a;reboot"], "invalid host name"),
    ],
)
def test_bad_arguments_exit_2_and_run_nothing(hosts_dir, args, message):
    result = fleet_hosts(hosts_dir, *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert calls(hosts_dir) == []


def test_the_modes_are_read_from_the_table_switch_db_mode_status_prints():
    # The table fleet/status.py renders, with states of two words, a process without a mode, a detail, a pool and
    # the summary line: the MODE column is read where the header puts it, row by row.
    rows = [
        ProcessStatus(8001, "ready", pid=11, mode="motor", snapshot={"pools": {"db": {"size": 16, "queued": 0}}}),
        ProcessStatus(8002, "not ready", "database slow or unreachable", pid=12, mode="threads"),
        ProcessStatus(8003, "not responding", "no answer in time (event loop blocked?)"),
        ProcessStatus(8004, "draining", pid=14, mode="async"),
        ProcessStatus(8005, "down", "connection refused"),
    ]
    table = render(report(rows))
    assert table.splitlines()[0].split()[:3] == ["PORT", "STATE", "MODE"]
    assert parse_modes(table) == ["motor", "threads", "async"]
    assert parse_modes(table + "\n") == ["motor", "threads", "async"]
    assert parse_modes("") == [] and parse_modes("error: the fleet is not running\n") == []
