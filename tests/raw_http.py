"""Raw HTTP for the hardening tests: bytes no well-behaved client would send, from a chosen source address.

`tests/client.py` speaks correct HTTP; these helpers send malformed requests, hold connections half-open, and bind
the client side to another loopback address (127.0.0.2, ...) so nginx sees a client other than the host itself.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import time
from urllib.parse import urlsplit


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


def connect(url: str, source: str = "127.0.0.1", timeout: float = 10.0) -> socket.socket:
    sock = socket.socket()
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect(address(url))
    return sock


def exchange(url: str, data: bytes, timeout: float = 10.0) -> bytes:
    """Send `data` on a fresh connection and read one answer: until its Content-Length is complete, or until the
    server closes (or resets) the connection."""
    with connect(url, timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # the server may answer and close before reading all of it
            sock.sendall(data)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while not complete(answer) and (chunk := sock.recv(65536)):
                answer += chunk
    return answer


def complete(answer: bytes) -> bool:
    head, separator, body = answer.partition(b"\r\n\r\n")
    if not separator:
        return False
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return length is not None and len(body) >= int(length[1])


def parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of a raw HTTP/1.1 answer read to the end."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


class SourceConnection(http.client.HTTPConnection):
    """A keep-alive connection from a chosen loopback address."""

    def __init__(self, url: str, source: str, timeout: float = 10.0):
        host, port = address(url)
        super().__init__(host, port, timeout=timeout, source_address=(source, 0))

    def fetch(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        self.request(method, path, body=body)
        response = self.getresponse()
        return response.status, response.read()


class SlowHeaderClients:
    """`count` connections that send the start of a request header, then one more byte per `trickle()`, and never
    finish it: a "slowloris" attack."""

    def __init__(self, url: str, count: int):
        self.sockets = []
        for _ in range(count):
            sock = connect(url)
            sock.setblocking(False)
            sock.send(b"GET /api/notes HTTP/1.1\r\nHost: x\r\n")
            self.sockets.append(sock)
        self.started = time.monotonic()
        self.closed_at: dict[int, float] = {}  # connection -> seconds after the start when the server closed it
        self.answers: list[bytes] = []  # anything the server sent them

    @property
    def open(self) -> int:
        return len(self.sockets) - len(self.closed_at)

    def trickle(self) -> None:
        """One more header byte on every open connection; note those the server has closed."""
        for index, sock in enumerate(self.sockets):
            if index not in self.closed_at and not self._still_open(sock):
                self.closed_at[index] = time.monotonic() - self.started

    def _still_open(self, sock: socket.socket) -> bool:
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            try:
                sock.send(b"X")  # one more byte of a header line that never ends
            except BlockingIOError:
                pass
            except OSError:
                return False
            return True
        except OSError:
            return False
        if data:
            self.answers.append(data)
        return False

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
