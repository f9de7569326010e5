"""Running wrk and reading what it prints.

wrk's human output is its stable interface (TechEmpower's toolset parses it the same way): the `--latency`
distribution, the request count, "Requests/sec", and two lines printed only when non-zero: "Socket errors: ..."
and "Non-2xx or 3xx responses: N". HTTP/1.1 pipelining is a Lua script that sends N copies of the request in one
write (the script TechEmpower uses for /plaintext).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

PIPELINE_LUA = """\
-- HTTP/1.1 pipelining: each write carries `depth` requests (wrk ... -s pipeline.lua URL -- depth).
init = function(args)
  local depth = tonumber(args[1]) or 1
  local r = {}
  for i = 1, depth do
    r[i] = wrk.format()
  end
  req = table.concat(r)
end

request = function()
  return req
end
"""

_TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_TIME = r"([\d.]+)(us|ms|s|m|h)"


class WrkError(RuntimeError):
    """wrk did not run or printed something this module cannot read."""


@dataclasses.dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    # None when wrk could not time the requests (pipelined runs: see `parse`).
    p50_ms: float | None
    p99_ms: float | None
    socket_errors: dict[str, int]
    non_2xx: int

    @property
    def errors(self) -> int:
        """Every failed request: socket errors (connect, read, write, timeout) plus non-2xx/3xx answers."""
        return sum(self.socket_errors.values()) + self.non_2xx


def parse(text: str) -> WrkResult:
    """Read one wrk run's standard output (run with --latency)."""
    totals = re.search(r"^\s*(\d+) requests in " + _TIME, text, re.M)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if not totals or not rps:
        raise WrkError(f"not a wrk report: {text.strip()[:300]!r}")
    percentiles = {int(p): _ms(v, u) for p, v, u in re.findall(r"^\s+(\d+)%\s+" + _TIME + r"\s*$", text, re.M)}
    if 50 not in percentiles or 99 not in percentiles:
        raise WrkError("no latency distribution in the wrk report (was it run with --latency?)")
    # With pipelining wrk times a whole batch once and its Debian build prints a distribution of zeros for it:
    # an all-zero distribution means "not timed", not "instant" (as it does when no request completed).
    timed = any(percentiles.values())
    socket_errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    found = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if found:
        socket_errors = dict(zip(socket_errors, map(int, found.groups()), strict=True))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return WrkResult(
        requests=int(totals[1]),
        duration_s=_ms(totals[2], totals[3]) / 1000,
        rps=float(rps[1]),
        p50_ms=percentiles[50] if timed else None,
        p99_ms=percentiles[99] if timed else None,
        socket_errors=socket_errors,
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
    )


def _ms(value: str, unit: str) -> float:
    return float(value) * _TIME_UNITS_MS[unit]


@dataclasses.dataclass(frozen=True)
class WrkOptions:
    threads: int = 1
    connections: int = 64
    # Well above the slowest cell's queueing delay (/updates?queries=20 at full concurrency), so a slow database
    # shows up as latency, not as wrk's own timeout errors (its default is 2 s).
    timeout_s: int = 10


def command(url: str, duration_s: int, options: WrkOptions, pipeline_script: Path | None, depth: int) -> list[str]:
    args = [
        wrk_binary(),
        f"-t{options.threads}",
        f"-c{max(options.connections, options.threads)}",
        f"-d{duration_s}s",
        f"--timeout={options.timeout_s}s",
        "--latency",
    ]
    if pipeline_script is not None and depth > 1:
        return [*args, "-s", str(pipeline_script), url, "--", str(depth)]
    return [*args, url]


def run(
    url: str, duration_s: int, options: WrkOptions, *, pipeline_script: Path | None = None, depth: int = 1
) -> WrkResult:
    args = command(url, duration_s, options, pipeline_script, depth)
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=duration_s + options.timeout_s + 30)
    except subprocess.TimeoutExpired:
        raise WrkError(f"wrk did not finish: {' '.join(args)}") from None
    if done.returncode != 0:
        raise WrkError(f"wrk failed ({done.returncode}) on {url}: {(done.stderr or done.stdout).strip()[:300]}")
    result = parse(done.stdout)
    if depth > 1:
        # wrk times a pipelined batch as one request and its distribution for it is often garbage (a p50 of
        # 500 ms with a p99 of 0): report no latency rather than a wrong one.
        result = dataclasses.replace(result, p50_ms=None, p99_ms=None)
    return result


def write_pipeline_script(folder: Path) -> Path:
    path = folder / "pipeline.lua"
    path.write_text(PIPELINE_LUA)
    return path


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if not found:
        raise WrkError("wrk is not installed (scripts/bench installs Debian's package `wrk`)")
    return found


def version() -> str:
    # `wrk -v` prints its version banner and exits with status 1.
    done = subprocess.run([wrk_binary(), "-v"], capture_output=True, text=True)
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) else "?"
