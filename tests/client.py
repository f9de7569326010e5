"""A minimal blocking HTTP client for tests: one connection per request, no retries, no redirects; and the
Prometheus text a process's metrics listener serves, read as samples.

The request function lives in fleet/probe.py (the tools use it too); re-exported here for the tests.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from fleet.probe import Response, request

__all__ = ["Response", "get", "request", "scrape", "value"]


def get(url: str, **kwargs) -> Response:
    return request("GET", url, **kwargs)


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    """{(sample name, labels): value} from the Prometheus text on port's /metrics."""
    response = get(f"http://127.0.0.1:{port}/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))
