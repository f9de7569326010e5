"""The handlers' base class (app/handlers/base.py), in-process: its clear() is Tornado's but for a cached Date
and the request id.
"""

from __future__ import annotations

import asyncio
import email.utils

import tornado.httputil
import tornado.iostream
import tornado.web

from app.handlers.benchmark import JsonHandler
from tests.app.inprocess import make_handler


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
