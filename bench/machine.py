"""What the figures were measured on: saved beside them, because a benchmark without its machine means nothing."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

from bench import wrk
from fleet.config import ROOT, nginx_binary

PACKAGES = ("tornado", "motor", "pymongo", "uvloop", "secantusdb", "supervisor")


def machine_info() -> dict:
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gib": memory_gib(),
        "kernel": platform.release(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "nginx": command_version([nginx_binary(), "-v"]),
        "wrk": wrk.version(),
        "git_commit": command_version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def command_version(args: list[str]) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    # nginx -v writes to stderr.
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def measured_line(info: dict) -> str:
    """The first line of every report: when, on what, and how busy the machine was when the run started."""
    load = ", ".join(f"{x:.2f}" for x in info.get("load_average", ()))
    return f"Measured {info.get('date', '?')} on {summary_line(info)}; load average at start {load or 'n/a'}."


def summary_line(info: dict) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items())
    return (
        f"{info['cpu_model']}, {info['nproc']} CPUs, {info['memory_gib']} GiB, Linux {info['kernel']}, "
        f"Python {info['python']}; {packages}; {info['nginx']}; {info['wrk']}"
    )
