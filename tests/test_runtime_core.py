"""The stall shedder's choices, the timed store and the metrics listener, in-process (no fleet, no database).

test_blast_radius.py checks shedding through real processes; these pin what is hard to time there: a request seen
blocking the loop is never shed, even once it has moved on to an await, and nothing is shed once the stall ended.
"""

from __future__ import annotations

import asyncio
import select
import socket
import threading

import pytest
import tornado.httputil
import tornado.web

from app import metrics, shedding
from app.handlers.benchmark import UpdatesHandler
from app.lifecycle import Lifecycle


class _Connection:
    """What RequestHandler and the shedder read from an HTTP connection: a close callback and a stream's socket."""

    def __init__(self, sock: socket.socket):
        self.stream = type("Stream", (), {"socket": sock})()

    def set_close_callback(self, callback) -> None:
        pass


class Blocker(tornado.web.RequestHandler):
    def block_while(self, call) -> None:
        # On the loop thread's stack while `call` runs in another thread: what the watchdog sees during a stall.
        thread = threading.Thread(target=call)
        thread.start()
        thread.join()


_sockets: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_sockets():
    yield
    while _sockets:
        _sockets.pop().close()


def make_handler(cls, method: str = "GET"):
    ours, theirs = socket.socketpair()
    _sockets.extend((ours, theirs))
    request = tornado.httputil.HTTPServerRequest(
        connection=_Connection(ours),
        start_line=tornado.httputil.RequestStartLine(method, "/", "HTTP/1.1"),
        headers=tornado.httputil.HTTPHeaders({"Host": "fleet"}),
    )
    # What BaseHandler counts its requests in (app.web sets both).
    handler = cls(tornado.web.Application(lifecycle=Lifecycle(), in_flight=set()), request)
    return handler, theirs


def was_shed(peer: socket.socket) -> bool:
    # A shutdown of our end reads as end-of-file on the peer's; an untouched connection has nothing to read.
    readable, _, _ = select.select([peer], [], [], 0)
    return bool(readable) and peer.recv(1) == b""


@pytest.fixture
def peer_answers(monkeypatch):
    monkeypatch.setattr(shedding, "answers_health_check", lambda peer: True)


def shedder_for(handlers, stalled):
    return shedding.StallShedder(
        server=None, listening=[], in_flight=set(handlers), is_stalled=lambda: stalled[0], peers=[("127.0.0.1", 9)]
    )


def test_the_blocking_request_is_never_shed_even_after_it_moves_on_to_an_await(peer_answers):
    async def scenario():
        stalled = [True]
        blocker, blocker_peer = make_handler(Blocker)
        waiting, waiting_peer = make_handler(Blocker)
        shed = shedder_for([blocker, waiting], stalled)
        blocker.block_while(shed)
        assert was_shed(waiting_peer)
        assert not was_shed(blocker_peer)
        # The blocking handler now awaits (off the stack) with no response started; a later stall must not shed it.
        await asyncio.sleep(0)
        thread = threading.Thread(target=shed)
        thread.start()
        thread.join()
        assert not was_shed(blocker_peer)
        assert shed.shed == 1

    asyncio.run(scenario())


def test_nothing_is_shed_once_the_stall_is_over(peer_answers):
    async def scenario():
        stalled = [False]
        handler, peer = make_handler(Blocker)
        shed = shedder_for([handler], stalled)
        shed()
        assert not was_shed(peer)
        assert shed.shed == 0

    asyncio.run(scenario())


def test_a_get_that_writes_opts_out_and_other_methods_are_never_shed():
    async def scenario():
        assert shedding.sheddable(make_handler(Blocker)[0])
        assert not shedding.sheddable(make_handler(UpdatesHandler)[0])
        assert not shedding.sheddable(make_handler(Blocker, method="POST")[0])

    asyncio.run(scenario())


class _Store:
    mode = "fake"

    async def find_one(self, collection, filter, projection=None):
        return {"collection": collection}

    async def added_later(self, value):
        raise ValueError(value)

    def stats(self):
        return {"size": 1}


def test_every_coroutine_method_of_the_store_is_timed_and_its_errors_counted():
    recorded = []

    class Recorder:
        db_in_flight = 0

        def observe_db(self, operation, seconds, error):
            recorded.append((operation, type(error).__name__ if error else None))

    store = metrics.InstrumentedStore(_Store(), Recorder())

    async def scenario():
        assert await store.find_one("world", {}) == {"collection": "world"}
        with pytest.raises(ValueError):
            await store.added_later(1)

    asyncio.run(scenario())
    assert recorded == [("find_one", None), ("added_later", "ValueError")]
    assert store.stats() == {"size": 1}  # not a coroutine: passed through


def test_a_metrics_port_out_of_range_is_not_served(caplog):
    assert metrics.listen(metrics.Metrics(mode="async", port=65000), "127.0.0.1", 65000 + 1000) is None
    assert "out of range" in caplog.text
