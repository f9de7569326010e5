"""The handlers' base class (app/handlers/base.py), in-process: its clear() is Tornado's but for a cached Date
and the request id.
"""

from __future__ import annotations

import asyncio
import email.utils
import socket

import pytest
import tornado.httputil
import tornado.iostream
import tornado.web

from app.handlers.benchmark import JsonHandler
from app.lifecycle import Lifecycle
from app.settings import Settings

_sockets: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_sockets():
    yield
    while _sockets:
        _sockets.pop().close()


class _Connection:
    """What RequestHandler reads from an HTTP connection: a close callback and its stream."""

    def __init__(self, sock: socket.socket):
        self.stream = tornado.iostream.IOStream(sock)

    def set_close_callback(self, callback) -> None:
        pass


def make_handler(cls, method: str = "GET"):
    """A handler of `cls` on one end of a socket pair (inside a loop), as tests/app/test_shedding.py builds them."""
    ours, theirs = socket.socketpair()
    _sockets.extend((ours, theirs))
    request = tornado.httputil.HTTPServerRequest(
        connection=_Connection(ours),
        start_line=tornado.httputil.RequestStartLine(method, "/", "HTTP/1.1"),
        headers=tornado.httputil.HTTPHeaders({"Host": "fleet"}),
    )
    # What BaseHandler counts its requests in (app.web sets both).
    handler = cls(tornado.web.Application(lifecycle=Lifecycle(), in_flight=set(), app_settings=Settings()), request)
    return handler, theirs


def test_the_handlers_clear_is_tornados_but_for_a_cached_date_and_the_request_id():
    # BaseHandler.clear replaces Tornado's (app/handlers/base.py); a Tornado upgrade that changes its own must show.
    async def scenario():
        handler, _ = make_handler(JsonHandler)
        ours = dict(handler._headers)
        tornado.web.RequestHandler.clear(handler)
        theirs = dict(handler._headers)
        assert set(ours) - {"X-Request-Id"} == set(theirs)
        assert {k: ours[k] for k in theirs if k != "Date"} == {k: theirs[k] for k in theirs if k != "Date"}
        assert abs(parse_date(ours["Date"]) - parse_date(theirs["Date"])) <= 1
        assert (handler._status_code, handler._reason, handler._write_buffer) == (200, "OK", [])

    asyncio.run(scenario())


def parse_date(value: str) -> float:
    return email.utils.parsedate_to_datetime(value).timestamp()
