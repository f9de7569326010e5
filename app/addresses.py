"""Where a process listens: a unix socket in the fleet's private folder, or a TCP port.

A fleet started by scripts/run puts every process's sockets in one folder only the fleet's account can enter
(FLEET_SOCKET_DIR, `var/run`, 0700): no other local user can connect to a process behind nginx's back, nor take a
process's place while it restarts (a loopback port is free for anyone to bind for about a second then). Each process
is still named by its number, FLEET_APP_PORT_BASE + i (`app-8001`): its sockets are `app-8001.sock` and, for the
metrics listener, `app-8001.metrics.sock`. With no socket folder (Kubernetes, where a pod's network is its own, and
a process started alone) a process listens on FLEET_HOST:PORT and PORT + FLEET_METRICS_PORT_OFFSET instead.

An address is a str (a unix socket's path) or a (host, port) tuple; everything that talks to a process takes one.
"""

from __future__ import annotations

import errno
import os
import socket
import urllib.parse

import tornado.netutil

Address = str | tuple[str, int]


def app_address(socket_dir: str, host: str, port: int) -> Address:
    return os.path.join(socket_dir, f"app-{port}.sock") if socket_dir else (host, port)


def metrics_address(socket_dir: str, host: str, port: int, offset: int) -> Address | None:
    """The metrics listener's address; None when FLEET_METRICS_PORT_OFFSET is 0 (no listener)."""
    if not offset:
        return None
    return os.path.join(socket_dir, f"app-{port}.metrics.sock") if socket_dir else (host, port + offset)


def bind(address: Address, backlog: int) -> list[socket.socket]:
    """Listening sockets for `address`. A unix socket is 0600: nginx and the tools run as the same account, and the
    folder (0700) already keeps everyone else out. A stale socket file of a previous run is replaced; one that a
    process still listens on is not (EADDRINUSE, as on TCP)."""
    if isinstance(address, str):
        if answers(address):
            # Tornado's bind replaces any socket file, a live one too: another process with this number (one
            # started by hand) would silently take over the supervised one's traffic. TCP refuses; so does this.
            raise OSError(errno.EADDRINUSE, f"{os.strerror(errno.EADDRINUSE)}: a process listens on {address}")
        try:
            return [tornado.netutil.bind_unix_socket(address, mode=0o600, backlog=backlog)]
        except ValueError as exc:  # something that is not a socket has the name: never removed
            raise OSError(errno.EADDRINUSE, f"{os.strerror(errno.EADDRINUSE)}: {exc}") from None
    host, port = address
    return tornado.netutil.bind_sockets(port, address=host, backlog=backlog)


def answers(path: str) -> bool:
    """Whether something accepts connections on the unix socket `path` (a stale file refuses them)."""
    try:
        connect(path, timeout=1.0).close()
    except OSError:
        return False
    return True


def connect(address: Address, timeout: float) -> socket.socket:
    """A connected blocking socket to `address` (OSError when nothing listens there)."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        return sock
    return socket.create_connection(address, timeout=timeout)


def describe(address: Address) -> str:
    return address if isinstance(address, str) else f"{address[0]}:{address[1]}"


def url(address: Address) -> str:
    """An http URL (no path) for `address`; a unix socket's is `http+unix://` + the quoted path, the form
    fleet.probe.request and app/process_status.py's client understand."""
    if isinstance(address, str):
        return "http+unix://" + urllib.parse.quote(address, safe="")
    return f"http://{address[0]}:{address[1]}"


def parse_url(url: str) -> tuple[Address, str]:
    """(address, path and query) of an http:// or http+unix:// URL; ValueError for anything else."""
    for scheme in ("http://", "http+unix://"):
        if url.startswith(scheme):
            where, _, path = url[len(scheme) :].partition("/")
            break
    else:
        raise ValueError(f"not an http:// or http+unix:// URL: {url!r}")
    if scheme == "http+unix://":
        return urllib.parse.unquote(where), "/" + path
    host, _, port = where.rpartition(":") if ":" in where else (where, "", "80")
    return (host, int(port)), "/" + path
