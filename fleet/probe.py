"""HTTP probes of the fleet (readiness of nginx and of each process), with short timeouts and no retries, and the
one blocking HTTP request function the tools and the tests share (one connection per request, no redirects)."""

from __future__ import annotations

import dataclasses
import http.client
import json
import time
from typing import Any


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
    """`body` is sent as JSON; `raw` as given. `url` is http://host:port/path?query. OSError when nothing answers."""
    if not url.startswith("http://"):
        raise ValueError(f"not an http:// URL: {url!r}")
    hostport, _, path = url[len("http://") :].partition("/")
    host, _, port = hostport.partition(":")
    conn = http.client.HTTPConnection(host, int(port or 80), timeout=timeout)
    payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    try:
        conn.request(method, "/" + path, body=payload, headers=headers or {})
        response = conn.getresponse()
        return Response(response.status, response.headers, response.read())
    finally:
        conn.close()


def get_json(host: str, port: int, path: str, timeout: float = 2.0) -> tuple[int, dict | None]:
    """GET a JSON endpoint; (0, None) when nothing answers."""
    try:
        response = request("GET", f"http://{host}:{port}{path}", timeout=timeout)
    except OSError:
        return 0, None
    try:
        return response.status, response.json()
    except ValueError:
        return response.status, None


def ready(port: int, host: str = "127.0.0.1") -> dict | None:
    """The /readyz body of the process (or nginx) on `port` if it answers 200, else None."""
    status, body = get_json(host, port, "/readyz")
    return body if status == 200 else None


def wait_until(predicate, timeout: float, interval: float = 0.1):
    """Poll `predicate` until it returns something truthy; returns it, or None at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval)
