"""HTTP probes of the fleet (readiness of nginx and of each process), with short timeouts and no retries, and the
one blocking HTTP request function the tools and the tests share (one connection per request, no redirects)."""

from __future__ import annotations

import dataclasses
import http.client
import json
import time
from typing import Any

from app import addresses
from app.addresses import Address


@dataclasses.dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def request(
    method: str,
    url: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> Response:
    """`body` is sent as JSON; `raw` as given. `url` is http://host:port/path?query, or http+unix:// and a unix
    socket's quoted path (app.addresses.url). OSError when nothing answers."""
    address, path = addresses.parse_url(url)
    if isinstance(address, str):
        conn: http.client.HTTPConnection = UnixHTTPConnection(address, timeout=timeout)
    else:
        conn = http.client.HTTPConnection(*address, timeout=timeout)
    payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    try:
        conn.request(method, path, body=payload, headers=headers or {})
        response = conn.getresponse()
        return Response(response.status, response.headers, response.read())
    finally:
        conn.close()


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = addresses.connect(self.path, self.timeout)


def url(address: int | Address) -> str:
    """The URL (no path) of a process or nginx: a port on 127.0.0.1, or an address (app.addresses)."""
    return addresses.url(("127.0.0.1", address) if isinstance(address, int) else address)


def get_json(address: int | Address, path: str, timeout: float = 2.0) -> tuple[int, dict | None]:
    """GET a JSON endpoint of `address` (see `url`); (0, None) when nothing answers."""
    try:
        response = request("GET", url(address) + path, timeout=timeout)
    except OSError:
        return 0, None
    try:
        return response.status, response.json()
    except ValueError:
        return response.status, None


def ready(address: int | Address) -> dict | None:
    """The /readyz body of the process or nginx at `address` (see `url`) if it answers 200, else None."""
    status, body = get_json(address, "/readyz")
    return body if status == 200 else None


def wait_until(predicate, timeout: float, interval: float = 0.1):
    """Poll `predicate` until it returns something truthy; returns it, or None at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval)
