"""The plain-Tornado reference: the six TechEmpower endpoints written the plain way, for `scripts/bench --compare`.

What a team would write without this template, the way TechEmpower's own Tornado entry is written: N processes
forked by `tornado.process.fork_processes`, each binding the one port with `SO_REUSEPORT` (the kernel spreads
connections), uvloop, minimal handlers on the driver itself, no nginx, and none of the template's features (no
metrics, request ids, logs, watchdog, stall shedding, drain, validation or JSON errors). The fleet is measured
against it side by side, on the same database with the same N (bench/compare.py).

    python -m bench.plain_tornado --port 8090 --procs 2 --mode async --mongodb-uri mongodb://...

`--mode` picks the driver as the fleet's modes do: `motor` (AsyncIOMotorClient), `async` (PyMongo's
AsyncMongoClient) or `threads` (MongoClient on a ThreadPoolExecutor). The parent process only waits for its children
(fork_processes with max_restarts=0: a child that dies ends the reference, which a benchmark must notice rather
than paper over); SIGTERM to its pid stops its children, then itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import random
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

import orjson
import tornado.httpserver
import tornado.netutil
import tornado.process
import tornado.template
import tornado.web
from pymongo import UpdateOne

from bench.cpu import child_pids

MODES = ("motor", "async", "threads")
WORLD_ROWS = 10_000
ADDITIONAL_FORTUNE = "Additional fortune added at request time."
FORTUNES_TEMPLATE = tornado.template.Template(
    "<!DOCTYPE html>\n<html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>"
    '{% for f in fortunes %}<tr><td>{{ f["id"] }}</td><td>{{ f["message"] }}</td></tr>{% end %}'
    "</table></body></html>"
)


def parse_queries(raw: str | None) -> int:
    try:
        return max(1, min(500, int(raw)))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 1


class Database:
    """The three drivers behind one small surface: what the handlers below need, nothing more."""

    def __init__(self, mode: str, uri: str, db_name: str):
        self.mode = mode
        if mode == "motor":
            from motor.motor_asyncio import AsyncIOMotorClient

            self.client = AsyncIOMotorClient(uri)
        elif mode == "async":
            from pymongo import AsyncMongoClient

            self.client = AsyncMongoClient(uri)
        else:
            from pymongo import MongoClient

            self.client = MongoClient(uri)
            self.executor = ThreadPoolExecutor(16)
        self.db = self.client[db_name]

    async def _call(self, fn, *args, **kwargs):
        if self.mode == "threads":
            return await asyncio.get_running_loop().run_in_executor(
                self.executor, functools.partial(fn, *args, **kwargs)
            )
        return await fn(*args, **kwargs)

    async def world(self, world_id: int) -> dict:
        return await self._call(self.db.world.find_one, {"_id": world_id})

    async def fortunes(self) -> list[dict]:
        if self.mode == "threads":
            return await self._call(lambda: list(self.db.fortune.find({}, {"_id": 0})))
        return await self.db.fortune.find({}, {"_id": 0}).to_list(None)

    async def update_worlds(self, updates: list[UpdateOne]) -> None:
        await self._call(self.db.world.bulk_write, updates, ordered=False)


class Handler(tornado.web.RequestHandler):
    @property
    def database(self) -> Database:
        return self.settings["database"]

    async def random_world(self) -> dict:
        doc = await self.database.world(random.randint(1, WORLD_ROWS))
        return {"id": doc["id"], "randomNumber": doc["randomNumber"]}

    def json(self, data) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(data))


class JsonHandler(Handler):
    def get(self) -> None:
        self.json({"message": "Hello, World!"})


class PlaintextHandler(Handler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.finish(b"Hello, World!")


class DbHandler(Handler):
    async def get(self) -> None:
        self.json(await self.random_world())


class QueriesHandler(Handler):
    async def get(self) -> None:
        count = parse_queries(self.get_argument("queries", None))
        self.json([await self.random_world() for _ in range(count)])


class UpdatesHandler(Handler):
    async def get(self) -> None:
        count = parse_queries(self.get_argument("queries", None))
        worlds = [await self.random_world() for _ in range(count)]
        for world in worlds:
            world["randomNumber"] = random.randint(1, WORLD_ROWS)
        latest = {w["id"]: w["randomNumber"] for w in worlds}
        for world in worlds:
            world["randomNumber"] = latest[world["id"]]
        await self.database.update_worlds(
            [UpdateOne({"_id": i}, {"$set": {"randomNumber": n}}) for i, n in sorted(latest.items())]
        )
        self.json(worlds)


class FortunesHandler(Handler):
    async def get(self) -> None:
        fortunes = await self.database.fortunes()
        fortunes.append({"id": 0, "message": ADDITIONAL_FORTUNE})
        fortunes.sort(key=lambda f: f["message"])
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(FORTUNES_TEMPLATE.generate(fortunes=fortunes))


def make_app(database: Database) -> tornado.web.Application:
    return tornado.web.Application(
        [
            (r"/json", JsonHandler),
            (r"/plaintext", PlaintextHandler),
            (r"/db", DbHandler),
            (r"/queries", QueriesHandler),
            (r"/updates", UpdatesHandler),
            (r"/fortunes", FortunesHandler),
        ],
        database=database,
        log_function=lambda handler: None,  # no access log, as TFB entries run
    )


async def serve(port: int, mode: str, uri: str, db_name: str) -> None:
    database = Database(mode, uri, db_name)
    server = tornado.httpserver.HTTPServer(make_app(database))
    server.add_sockets(tornado.netutil.bind_sockets(port, "127.0.0.1", reuse_port=True, backlog=1024))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


def stop_children(parent: int) -> None:
    for pid in child_pids(parent):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    sys.exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plain_tornado", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--mode", choices=MODES, default="async")
    parser.add_argument("--mongodb-uri", required=True)
    parser.add_argument("--db-name", default="fleet")
    args = parser.parse_args(argv)
    # The parent only waits in fork_processes; on SIGTERM it stops its children first, so stopping the reference by
    # its pid stops all of it.
    signal.signal(signal.SIGTERM, lambda *_: stop_children(os.getpid()))
    tornado.process.fork_processes(args.procs, max_restarts=0)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    import uvloop

    uvloop.run(serve(args.port, args.mode, args.mongodb_uri, args.db_name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
