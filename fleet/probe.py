"""HTTP probes of the fleet (readiness of nginx and of each process), with short timeouts and no retries."""

from __future__ import annotations

import http.client
import json
import time


def get_json(host: str, port: int, path: str, timeout: float = 2.0) -> tuple[int, dict | None]:
    """GET a JSON endpoint; (0, None) when nothing answers."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        try:
            return response.status, json.loads(body)
        except ValueError:
            return response.status, None
    except OSError:
        return 0, None
    finally:
        conn.close()


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
