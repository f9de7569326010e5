"""What the in-process tests of app/ build: a Store on the embedded database, and a handler on one end of a socket
pair (with the shedding guard every connection of FleetHTTPServer gets). No process, no fleet."""

from __future__ import annotations

import asyncio
import socket

import tornado.httputil
import tornado.iostream
import tornado.web

from app import shedding
from app.lifecycle import Lifecycle
from app.settings import Settings
from app.store import open_store

# Both ends of every socket pair `make_handler` made; tests/app/conftest.py closes them after each test.
open_sockets: list[socket.socket] = []


def run_with_store(mode: str, uri: str, db_name: str, scenario, **settings: str):
    """`await scenario(store)` in a new loop, with a Store of `mode` on `uri` (closed afterwards); its result."""

    async def main():
        store = open_store(
            Settings.from_mapping({"FLEET_DB_MODE": mode, "MONGODB_URI": uri, "FLEET_DB_NAME": db_name, **settings})
        )
        try:
            return await scenario(store)
        finally:
            await store.close()

    return asyncio.run(main())


def guarded_stream(sock: socket.socket) -> tornado.iostream.IOStream:
    """A Tornado IOStream on `sock` with the shedding guard FleetHTTPServer gives each connection (inside a loop)."""
    stream = tornado.iostream.IOStream(sock)
    shedding.ShedGuard(stream)
    return stream


class Connection:
    """What RequestHandler and the shedder read from an HTTP connection: a close callback and its stream."""

    def __init__(self, sock: socket.socket):
        self.stream = guarded_stream(sock)

    def set_close_callback(self, callback) -> None:
        pass


def make_handler(cls, method: str = "GET"):
    """A handler of `cls` on one end of a socket pair (call it inside a loop); (handler, the other end)."""
    ours, theirs = socket.socketpair()
    open_sockets.extend((ours, theirs))
    request = tornado.httputil.HTTPServerRequest(
        connection=Connection(ours),
        start_line=tornado.httputil.RequestStartLine(method, "/", "HTTP/1.1"),
        headers=tornado.httputil.HTTPHeaders({"Host": "fleet"}),
    )
    # What BaseHandler counts its requests in (app.web sets both).
    handler = cls(tornado.web.Application(lifecycle=Lifecycle(), in_flight=set(), app_settings=Settings()), request)
    return handler, theirs
