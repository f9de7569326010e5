"""The six TechEmpower Framework Benchmarks test types, following the TFB rules (see README, "Endpoints").

Tornado adds the required `Server` and `Date` headers to every response; nothing here is compressed.
"""

from __future__ import annotations

import random

from pymongo.operations import UpdateOne

from app.handlers.base import BaseHandler

WORLD_ROWS = 10_000
ADDITIONAL_FORTUNE = "Additional fortune added at request time."


def parse_queries(raw: str | None) -> int:
    """TFB: missing, non-integer or < 1 means 1; more than 500 means 500."""
    try:
        count = int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 1
    return max(1, min(500, count))


def random_id() -> int:
    return random.randint(1, WORLD_ROWS)


class BenchmarkHandler(BaseHandler):
    async def random_world(self) -> dict:
        doc = await self.store.find_one("world", {"_id": random_id()})
        return {"id": doc["id"], "randomNumber": doc["randomNumber"]}

    async def random_worlds(self) -> list[dict]:
        # TFB requires N separate single-document reads (no $in).
        count = parse_queries(self.get_query_argument("queries", None))
        return [await self.random_world() for _ in range(count)]


class JsonHandler(BenchmarkHandler):
    def get(self) -> None:
        self.write_json({"message": "Hello, World!"})


class PlaintextHandler(BenchmarkHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.finish(b"Hello, World!")


class DbHandler(BenchmarkHandler):
    async def get(self) -> None:
        self.write_json(await self.random_world())


class QueriesHandler(BenchmarkHandler):
    async def get(self) -> None:
        self.write_json(await self.random_worlds())


class UpdatesHandler(BenchmarkHandler):
    # A GET that writes: never sent to another process during a stall (app/shedding.py), it would run twice.
    shed_on_stall = False

    async def get(self) -> None:
        worlds = await self.random_worlds()
        for world in worlds:
            world["randomNumber"] = random_id()
        # Two picks of the same id: the last value wins in the database and is what both entries say.
        latest = {w["id"]: w["randomNumber"] for w in worlds}
        for world in worlds:
            world["randomNumber"] = latest[world["id"]]
        # Benchmark data, with w: 1, no journal wait, as in other TFB implementations: a journal
        # fsync per request would measure the disk, not the fleet (README "Reliability" has the cost).
        await self.store.bulk_update(
            "world",
            [UpdateOne({"_id": i}, {"$set": {"randomNumber": n}}) for i, n in sorted(latest.items())],
            durable=False,
        )
        self.write_json(worlds)


class FortunesHandler(BenchmarkHandler):
    async def get(self) -> None:
        fortunes = await self.store.find("fortune", {}, projection={"_id": 0, "id": 1, "message": 1})
        fortunes.append({"id": 0, "message": ADDITIONAL_FORTUNE})
        fortunes.sort(key=lambda f: f["message"])
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.render("fortunes.html", fortunes=fortunes)
