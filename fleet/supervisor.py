"""A small client for the fleet's supervisord, over its unix control socket (the XML-RPC API supervisorctl uses)."""

from __future__ import annotations

import os
import time
import weakref
import xmlrpc.client
from pathlib import Path

from supervisor.xmlrpc import SupervisorTransport


class Supervisor:
    def __init__(self, socket_path: Path):
        self.socket_path = Path(socket_path)
        transport = SupervisorTransport(None, None, f"unix://{self.socket_path}")
        # The transport keeps its socket open between calls; close it when this client goes away.
        weakref.finalize(self, transport.close)
        proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
        self.rpc = proxy.supervisor
        # fleet/supervisor_rpc.py's methods (XML-RPC namespace `fleet`): add app processes to the running group and
        # remove them.
        self.app_group = proxy.fleet

    def running(self) -> bool:
        """True if a supervisord answers on the socket."""
        if not self.socket_path.exists():
            return False
        try:
            return self.rpc.getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Fault):
            return False

    def processes(self) -> list[dict]:
        return self.rpc.getAllProcessInfo()

    def process(self, name: str) -> dict:
        return self.rpc.getProcessInfo(name)

    def app_processes(self) -> list[dict]:
        """The app group's processes, in port order; their `name` is app-PORT."""
        apps = [p for p in self.processes() if p["group"] == "app"]
        return sorted(apps, key=app_port)

    def supervisord_pid(self) -> int:
        return self.rpc.getPID()

    def pids(self) -> dict[str, int]:
        """name -> pid of every process supervisord runs now (those not running are left out)."""
        return {p["name"]: p["pid"] for p in self.processes() if p["pid"]}


def app_port(info: dict) -> int:
    """The process number of an app process's supervisord entry (app-8001: 8001), its "port" (FleetConfig.app_ports)."""
    return int(info["name"].rsplit("-", 1)[1])


def wait_for_exit(pids: list[int], timeout: float) -> list[int]:
    """Wait until every pid has exited; returns those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in pids if p and pid_alive(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.1)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it has exited for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
