"""A minimal blocking HTTP client for tests: one connection per request, no retries, no redirects.

The request function lives in fleet/probe.py (the tools use it too); re-exported here for the tests.
"""

from __future__ import annotations

from fleet.probe import Response, request

__all__ = ["Response", "get", "request"]


def get(url: str, **kwargs) -> Response:
    return request("GET", url, **kwargs)
