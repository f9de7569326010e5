"""The stall shedder's choices, the timed store and the metrics listener, in-process (no fleet, no database).

test_blast_radius.py checks shedding through real processes; these pin what is hard to time there: a request seen
blocking the loop is never shed, even once it has moved on to an await, and nothing is shed once the stall ended;
on kept-alive connections (nginx's upstream keep-alive) a waiting GET is shed, a waiting POST and an idle
connection never are.
"""

from __future__ import annotations

import asyncio
import http.client
import select
import socket
import threading
import time

import pytest
import tornado.httputil
import tornado.web

from app import shedding
from app.handlers.benchmark import JsonHandler, UpdatesHandler
from fleet import probe
from fleet.sandbox import free_port_block
from tests.app.inprocess import guarded_stream, make_handler, open_sockets
from tests.client import get, request


class _Server:
    """The shedder's view of the HTTP server: its open connections' streams and its app's routes."""

    def __init__(self, streams=()):
        self.streams = set(streams)
        self.request_callback = tornado.web.Application([(r"/json", JsonHandler), (r"/updates", UpdatesHandler)])


class Blocker(tornado.web.RequestHandler):
    def block_while(self, call) -> None:
        # On the loop thread's stack while `call` runs in another thread: what the watchdog sees during a stall.
        thread = threading.Thread(target=call)
        thread.start()
        thread.join()


def was_shed(peer: socket.socket) -> bool:
    # A shutdown of our end reads as end-of-file on the peer's; an untouched connection has nothing to read.
    readable, _, _ = select.select([peer], [], [], 0)
    return bool(readable) and peer.recv(1) == b""


@pytest.fixture
def peer_answers(monkeypatch):
    monkeypatch.setattr(shedding, "answers_health_check", lambda peer: True)


def during_stall(shed, loop_io: bool = False) -> None:
    """What the watchdog does while a stall lasts: call the shedder again and again (here twice, HOLD_CONFIRM
    apart). `loop_io`: the loop reads or writes meanwhile, as an overloaded (not blocked) loop does."""
    shed()
    time.sleep(1.5 * shedding.HOLD_CONFIRM)
    if loop_io:
        shedding.ShedGuard.io += 1
    shed()


def test_an_overloaded_loop_that_still_reads_and_writes_is_not_shed(peer_answers):
    # Lag past the threshold with I/O going on is overload, not a blocking call: shedding would bounce requests
    # between busy processes until nginx gives up.
    async def scenario():
        stalled = [True]
        get, get_peer = kept_alive(b"GET /db HTTP/1.1\r\nHost: app\r\n\r\n")
        shed = shedder_for([], stalled, streams=[get])
        thread = threading.Thread(target=during_stall, args=(shed, True))
        thread.start()
        thread.join()
        assert not was_shed(get_peer) and shed.shed == 0

    asyncio.run(scenario())


def shedder_for(handlers, stalled, streams=()):
    return shedding.StallShedder(
        server=_Server(streams),
        listening=[],
        in_flight=set(handlers),
        is_stalled=lambda: stalled[0],
        peers=[("127.0.0.1", 9)],
    )


def kept_alive(sent: bytes = b"", buffered: bytes = b""):
    """A kept-alive connection no handler serves: (its stream, nginx's end). `sent` waits unread in the socket,
    `buffered` was read by Tornado before the loop stalled (and is in its read buffer, not yet parsed)."""
    ours, theirs = socket.socketpair()
    open_sockets.extend((ours, theirs))
    stream = guarded_stream(ours)
    if buffered:
        theirs.sendall(buffered)
        readable, _, _ = select.select([ours], [], [], 5)
        assert readable
        stream._read_to_buffer_loop()  # what the loop did before it stalled
        assert stream._read_buffer_size == len(buffered)
    if sent:
        theirs.sendall(sent)
    return stream, theirs


def test_on_kept_alive_connections_a_waiting_get_is_shed_but_a_post_an_idle_one_or_an_opted_out_one_never(peer_answers):
    async def scenario():
        stalled = [True]
        get, get_peer = kept_alive(b"GET /db HTTP/1.1\r\nHost: app\r\n\r\n")
        head, head_peer = kept_alive(buffered=b"HEAD /json HTTP/1.1\r\nHost: app\r\n\r\n")
        writes, writes_peer = kept_alive(buffered=b"GET /updates?queries=2 HTTP/1.1\r\nHost: app\r\n\r\n")
        post, post_peer = kept_alive(b"POST /api/notes HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
        idle, idle_peer = kept_alive()
        shed = shedder_for([], stalled, streams=[get, head, writes, post, idle])
        thread = threading.Thread(target=during_stall, args=(shed,))
        thread.start()
        thread.join()
        assert was_shed(get_peer)
        # Read by Tornado just before the stall and not parsed yet: shed, unless its handler opts out.
        assert was_shed(head_peer)
        assert not was_shed(writes_peer)
        assert not was_shed(post_peer) and not was_shed(idle_peer)
        assert shed.shed == 2

    asyncio.run(scenario())


def test_a_connection_the_loop_read_from_after_the_shedder_looked_is_not_shed(peer_answers):
    # The stall ends between the shedder's look and its shutdown: the loop reads the GET (and may run it), so
    # shutting the connection down now would run it twice.
    async def scenario():
        stalled = [True]
        get, get_peer = kept_alive(b"GET /updates HTTP/1.1\r\nHost: app\r\n\r\n")
        shed = shedder_for([], stalled, streams=[get])
        watched, _ = shed._kept_alive_waiting()
        guard, reads = watched[get.socket.fileno()]
        get._read_to_buffer_loop()  # the loop, running again, reads the request (through the guard)
        assert guard.reads > reads
        assert shed._shed_kept_alive(guard, reads) == 0
        assert not was_shed(get_peer)

    asyncio.run(scenario())


def test_a_get_arriving_on_an_idle_kept_alive_connection_during_the_stall_is_shed(peer_answers):
    async def scenario():
        stalled = [True]
        idle, nginx_end = kept_alive()
        shed = shedder_for([], stalled, streams=[idle])

        # nginx picks the idle connection while the stall lasts; the watchdog calls the shedder again and again.
        def watchdog_calls():
            deadline = time.monotonic() + 5
            while not shed.shed and time.monotonic() < deadline:
                shed()

        thread = threading.Thread(target=watchdog_calls)
        thread.start()
        nginx_end.sendall(b"GET /json HTTP/1.1\r\nHost: app\r\n\r\n")
        thread.join()
        assert was_shed(nginx_end)

    asyncio.run(scenario())


def test_the_blocking_request_is_never_shed_even_after_it_moves_on_to_an_await(peer_answers):
    async def scenario():
        stalled = [True]
        blocker, blocker_peer = make_handler(Blocker)
        waiting, waiting_peer = make_handler(Blocker)
        shed = shedder_for([blocker, waiting], stalled)
        blocker.block_while(lambda: during_stall(shed))
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


def in_thread(fn, *args, **kwargs) -> tuple[threading.Thread, list]:
    """Run fn in a thread; the list receives its result, or the exception it raised."""
    out: list = []

    def target():
        try:
            out.append(fn(*args, **kwargs))
        except Exception as exc:
            out.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def wait_for_log(app, text: str, timeout: float = 10) -> None:
    assert probe.wait_until(lambda: text in app.log_text(), timeout, interval=0.05), f"{text!r} not logged"


def test_a_stalled_process_sheds_waiting_gets_but_not_posts_nor_the_blocking_request(start_app):
    neighbour = start_app()
    # FLEET_APP_PORTS names a healthy neighbour, as in a fleet: the shedder sheds only if another process answers.
    app = start_app(FLEET_FAULTS="true", FLEET_WATCHDOG_MS="200", FLEET_APP_PORTS=str(neighbour.port))
    # Awaiting, as a request waiting on the database would be; it outlasts the block, so that it is still in
    # flight when the stall is shed however slowly this machine gets there.
    in_flight, in_flight_result = in_thread(get, f"{app.url}/fault/sleep?seconds=5", timeout=20)
    # /readyz counts itself: 2 means the slow GET is in flight.
    assert probe.wait_until(lambda: get(f"{app.url}/readyz").json()["in_flight"] >= 2, 10, interval=0.05)
    blocker, blocker_result = in_thread(get, f"{app.url}/fault/block?seconds=3", timeout=20)
    wait_for_log(app, "waiting GET/HEAD request(s) for nginx to retry elsewhere")  # the stall is seen and shed
    poster, post_result = in_thread(request, "POST", f"{app.url}/api/notes", {"title": "during a stall"}, timeout=10)
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
        get(f"{app.url}/json", timeout=10)  # arriving during the stall: closed at once, for nginx to retry elsewhere
    for thread in (in_flight, blocker, poster):
        thread.join(25)

    assert isinstance(in_flight_result[0], (ConnectionError, http.client.RemoteDisconnected)), in_flight_result
    assert blocker_result[0].status == 200  # the request running the blocking code is never sent elsewhere
    assert post_result[0].status == 201  # a POST is served once the loop is free: nginx would not retry it
    assert "waiting GET/HEAD request(s) for nginx to retry elsewhere" in app.log_text()
    # Every shed request is finished and forgotten once its handler returns (the slow GET's after its 5 s): only
    # the /readyz asking is left.
    assert probe.wait_until(lambda: get(f"{app.url}/readyz").json()["in_flight"] == 1, 10, interval=0.1)


def test_a_stalled_process_sheds_nothing_when_no_other_process_answers(start_app):
    # The neighbour named in FLEET_APP_PORTS is not there: shedding would only turn waiting into a 502.
    app = start_app(FLEET_FAULTS="true", FLEET_WATCHDOG_MS="200", FLEET_APP_PORTS=str(free_port_block(1)))
    blocker, blocker_result = in_thread(get, f"{app.url}/fault/block?seconds=3", timeout=20)
    wait_for_log(app, "no other process answers /healthz: not shedding")
    assert get(f"{app.url}/json", timeout=20).status == 200  # arriving during the stall: served after it
    blocker.join(20)
    assert blocker_result[0].status == 200
