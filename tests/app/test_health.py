"""The probes (app/handlers/health.py), in-process: a database that answers but refuses this client makes
/readyz a 503 naming the error, not a 500.
"""

from __future__ import annotations

import asyncio
import json

import tornado.httpclient
import tornado.httpserver
import tornado.testing
from pymongo.errors import OperationFailure

from app.settings import Settings
from app.web import make_app


class RefusingStore:
    """A store whose database answers, but refuses this client (say, wrong credentials)."""

    mode = "motor"

    async def ping(self) -> None:
        raise OperationFailure("Authentication failed.", code=18)


def test_a_database_that_refuses_us_makes_readyz_a_503_not_a_500():
    async def ask() -> tuple[int, dict]:
        sock, port = tornado.testing.bind_unused_port()
        server = tornado.httpserver.HTTPServer(
            make_app(Settings.from_mapping({}), RefusingStore(), blocking=None, port=port)
        )
        server.add_sockets([sock])
        client = tornado.httpclient.AsyncHTTPClient(force_instance=True)
        try:
            response = await client.fetch(f"http://127.0.0.1:{port}/readyz", raise_error=False)
            return response.code, json.loads(response.body)
        finally:
            client.close()
            server.stop()

    code, body = asyncio.run(ask())
    assert code == 503
    assert (body["status"], body["error"]) == ("unavailable", "OperationFailure")
