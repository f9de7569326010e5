"""The workload: the six TechEmpower test types, and what each costs the database per request."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    # HTTP/1.1 pipelining depth wrk uses (TFB pipelines /plaintext 16 deep).
    depth: int = 1
    # Database operations one request makes: requests/s x this = the load it puts on the database, comparable
    # with the "database alone" reference (find_one by _id, ops/s).
    db_ops: int = 0
    # wrk's connections ÷ this: an endpoint making many round trips per request serves few requests/s, so at
    # full concurrency its latency nears a run's length and a run would complete almost nothing.
    connections_divisor: int = 1


ENDPOINTS = {
    e.name: e
    for e in (
        Endpoint("json", "/json"),
        Endpoint("plaintext", "/plaintext", depth=16),
        Endpoint("db", "/db", db_ops=1),
        Endpoint("queries", "/queries?queries=20", db_ops=20, connections_divisor=4),
        # 20 reads, then one bulk write of 20 updates.
        Endpoint("updates", "/updates?queries=20", db_ops=21, connections_divisor=4),
        Endpoint("fortunes", "/fortunes", db_ops=1),
    )
}

DB_BOUND_NOTE = (
    "bounded by the embedded database (SecantusDB: one GIL-bound Python process, a few thousand simple "
    "operations/s); a real mongod is much faster"
)
