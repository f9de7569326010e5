"""Reload a running fleet's nginx with a new config, returning only once the new config answers requests.

After a HUP, nginx starts new workers with the new config while the old ones finish their requests, and nothing
a client sees (not /readyz) says which config answered. So the config is loaded with a marker location that
returns a tag unique to this reload, and the reload is done when nginx serves that tag and no old worker can
take a new connection any more: nginx's master lets the new workers start for 100 ms before it tells the old ones
to stop accepting (ngx_master_process_cycle), so in that window a new connection may still reach an old worker.
"""

from __future__ import annotations

import http.client
import itertools
import re
import subprocess
import time

from fleet import probe
from fleet.config import FleetConfig, nginx_binary
from fleet.supervisor import Supervisor

MARKER_PATH = "/_config_tag"
# After the new config first answers: nginx's 100 ms start-up window for the new workers, with room for a busy
# old worker to handle its stop signal.
SETTLE_SECONDS = 0.4
_reloads = itertools.count(1)


class ReloadError(RuntimeError):
    """nginx rejected the config or did not load it in time; the message says which and where to look."""


def with_marker(conf: str, tag: str) -> str:
    """`conf` with a location that answers MARKER_PATH with `tag`, in the fleet's server block."""
    marked, found = re.subn(
        r"^([ \t]*)server_name _;\n",
        rf"\g<0>\1location = {MARKER_PATH} {{ return 200 '{tag}'; }}\n",
        conf,
        count=1,
        flags=re.M,
    )
    if not found:
        raise ReloadError("nginx.conf has no 'server_name _;' line to put the reload marker after")
    return marked


def served_tag(port: int) -> str:
    """The tag nginx on `port` serves now ('' if none or no answer)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", MARKER_PATH)
        response = conn.getresponse()
        return response.read().decode() if response.status == 200 else ""
    except OSError:
        return ""
    finally:
        conn.close()


def load(config: FleetConfig, supervisor: Supervisor, conf: str, name: str, *, timeout: float = 15) -> None:
    """Write `conf` (plus the marker) as the fleet's nginx.conf, reload nginx and wait until it serves it."""
    tag = f"{name} {next(_reloads)}".replace("'", "")
    path = config.var_dir / "nginx.conf"
    path.write_text(with_marker(conf, tag))
    check = subprocess.run(
        [nginx_binary(), "-t", "-q", "-p", f"{config.var_dir}/nginx/", "-c", str(path), "-e", "stderr"],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        raise ReloadError(f"nginx rejects config {name!r}: {check.stderr.strip()}")
    supervisor.rpc.signalProcess("nginx", "HUP")
    loaded = probe.wait_until(lambda: served_tag(config.port) == tag, timeout, interval=0.05)
    time.sleep(SETTLE_SECONDS)
    if not loaded or any(served_tag(config.port) != tag for _ in range(3)):
        raise ReloadError(f"nginx did not load config {name!r} within {timeout:.0f} s; see {config.var_dir}/log/")
