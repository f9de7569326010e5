"""Hosts as Linux network namespaces on a private bridge, for tests/whole_fleet/test_multihost.py.

The bridge has no address in the machine's own namespace and no namespace has a default route, so nothing on it
can reach anything else (no NAT, no forwarding): each namespace sees only the bridge's subnet and its own loopback.
Names carry a random run id, so two runs never collide, and everything made is undone by `Network.close()` (the
caller runs it in `finally`). Needs root and `ip` (iproute2).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def unavailable() -> str:
    """Why network namespaces cannot be made here ('' when they can)."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if not shutil.which("ip"):
        return "needs `ip` (iproute2)"
    name = f"tfprobe{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` is not allowed here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return ""


def ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def in_netns(namespace: str, fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(*args)` in a thread that has joined `namespace`: the sockets it opens, and the threads it starts
    (which inherit the namespace), are in that namespace. The rest of the process is not affected."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({namespace}): {os.strerror(err)}")
            finally:
                os.close(fd)
            outcome["value"] = fn(*args)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=f"netns-{namespace}")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class Network:
    """A bridge and namespaces attached to it, one address each in a /24 chosen at random."""

    def __init__(self) -> None:
        self.run_id = uuid.uuid4().hex[:6]
        self.bridge = f"tfb{self.run_id}"
        self.subnet = f"10.{random.randrange(100, 250)}.{random.randrange(0, 256)}"
        self.namespaces: dict[str, str] = {}  # role -> namespace name
        self.addresses: dict[str, str] = {}  # role -> address
        self.links: dict[str, str] = {}  # role -> the bridge side of its veth (in the machine's namespace)
        ip("link", "add", self.bridge, "type", "bridge")
        ip("link", "set", self.bridge, "up")

    def add(self, role: str, host_number: int) -> str:
        """A namespace for `role` at SUBNET.host_number; returns its name."""
        name = f"tf{self.run_id}-{role}"
        link = f"tf{self.run_id}{len(self.namespaces)}"
        inner = f"{link}p"
        ip("netns", "add", name)
        self.namespaces[role] = name
        ip("link", "add", link, "type", "veth", "peer", "name", inner)
        self.links[role] = link
        ip("link", "set", inner, "netns", name)
        ip("-n", name, "link", "set", inner, "name", "eth0")
        address = f"{self.subnet}.{host_number}"
        ip("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", name, "link", "set", "eth0", "up")
        ip("-n", name, "link", "set", "lo", "up")
        ip("link", "set", link, "master", self.bridge)
        ip("link", "set", link, "up")
        self.addresses[role] = address
        return name

    def set_link(self, role: str, up: bool) -> None:
        """Cut (or restore) `role`'s cable: its port on the bridge goes down, its packets go nowhere."""
        ip("link", "set", self.links[role], "up" if up else "down")

    def exec_prefix(self, role: str) -> list[str]:
        return ["ip", "netns", "exec", self.namespaces[role]]

    def close(self) -> None:
        """Delete the namespaces (their veths go with them) and the bridge. Processes still inside would keep a
        namespace alive: the caller stops them first."""
        for name in self.namespaces.values():
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        for link in self.links.values():
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


def tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False
