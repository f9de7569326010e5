"""Stall shedding: while this process's event loop is stalled, let nginx send its waiting requests elsewhere.

Requests that reach a process whose loop is blocked wait: nothing runs them until the loop is free again, and
nginx, which has sent them, waits too. `least_conn` stops sending new ones there, but the ones already sent wait
out the whole stall. While the watchdog sees a stall (app/watchdog.py), its thread calls the shedder, which
closes the connections of the requests that are safe to send elsewhere. nginx sees "upstream closed the
connection" (an error, never a timeout) and passes each one to another process at once (`proxy_next_upstream
error`). It takes:
- requests in flight (a handler exists) that are GET or HEAD, whose response has not started, and that are not
  a request seen running the blocking code during the stall (found in the loop thread's stack, and remembered
  after it moves on to an await): sending that one elsewhere would spread a "query of death" to the next process;
- connections arriving in the accept queue while the stall lasts, as soon as they arrive, if their request is a
  GET or HEAD (read with MSG_PEEK, left unread); any other connection is handed back to the loop, which serves it
  once it is free;
- requests nginx sends on connections it keeps open between requests (upstream keep-alive) and that no handler
  has seen yet, if they are a GET or HEAD: those waiting unread as soon as they arrive (MSG_PEEK again), and those
  Tornado read just before the loop stalled but has not parsed (if the route's handler does not opt out). An idle
  kept-alive connection is never closed: nginx may be sending a POST on it at that very moment, and a POST nginx has
  sent is never resent (the client would get a 502).

The stall can end while the shedder is deciding: the loop then reads and writes the same connections. Each
connection's `ShedGuard` makes the shedder's last look and its shutdown one step for the loop: the loop takes the
guard's lock for every read and write on the connection, the shedder holds it while it checks again (the response
not started, no read since it looked, nothing buffered) and shuts the connection down.

Only GET and HEAD are shed. nginx does not pass a request it has sent with POST, LOCK or PATCH to another
process (the client would get a 502); it does resend the other methods, DELETE and PUT included, but this app
sheds only the two that handlers must keep idempotent. GET and HEAD are run again: nginx already replays them on
another process when a process dies mid-request. That is the contract: a GET handler that writes (GET /updates)
must not be run twice, and opts out with the class attribute `shed_on_stall = False`. A handler that was running
(say, awaiting the database) finishes after the stall into a closed connection; Tornado treats that like a client
that went away.

Only for a blocking call: one callback holding the loop, with no read or write on any connection, for HOLD_CONFIRM
past the watchdog's threshold. An overloaded loop lags as much but keeps doing I/O; shedding its requests would only
bounce them between busy processes until nginx runs out of tries.

Only when another process can take the requests: before shedding, it asks the other processes of the fleet
(FLEET_APP_PORTS) for /healthz with a short timeout, and sheds only if one answers. When every process is stalled
(an overloaded machine, not one blocked process), shedding would turn slow answers into 502s, so it does not.
Alone (FLEET_APP_PORTS lists no other process), app.server starts no shedder at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import socket
import struct
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import tornado.iostream
import tornado.web

from app import addresses
from app.addresses import Address

if TYPE_CHECKING:
    from app.lifecycle import FleetHTTPServer

log = logging.getLogger("fleet.shedding")

# How long one callback must hold the loop, seen by two calls of the shedder, before it sheds (after the watchdog's
# threshold): what tells a blocking call from an overloaded loop running many short callbacks.
HOLD_CONFIRM = 0.05
ASYNCIO_DIR = os.path.dirname(asyncio.__file__)
# Bytes of a buffered request looked at to find its request line (method and path).
REQUEST_LINE_BYTES = 512
# What nginx passes to another process after the connection failed, whatever it had sent; handlers of these methods
# must be idempotent to be shed (a handler that writes sets `shed_on_stall = False`).
SAFE_METHODS = ("GET", "HEAD")
SAFE_PREFIXES = tuple(f"{method} ".encode() for method in SAFE_METHODS)
# SO_LINGER on, timeout 0: on TCP, close() sends RST at once (no FIN_WAIT for a connection nobody will read). On a
# unix socket it changes nothing: closing one whose request is still unread resets it there too (ECONNRESET).
RESET_ON_CLOSE = struct.pack("ii", 1, 0)
# How long one call waits for new connections, and for the request on a new connection. The watchdog calls
# again right away while the stall lasts, so this only bounds how late the shedder notices the stall's end.
WAIT = 0.05
FIRST_BYTES_WAIT = 0.005
# A peer that does not answer /healthz within this is stalled too (a healthy one answers in about 1 ms).
PEER_TIMEOUT = 0.1
# How long a peer's answer is trusted: a stall lasts seconds, a check costs one request to each peer.
PEER_RECHECK = 0.5


class StallShedder:
    def __init__(
        self,
        server: FleetHTTPServer,
        listening: Iterable[socket.socket],
        in_flight: set[tornado.web.RequestHandler],
        is_stalled: Callable[[], bool],
        peers: Iterable[Address],
    ):
        self.server = server
        self.listening = list(listening)
        self.in_flight = in_flight
        self.is_stalled = is_stalled
        self.peers = list(peers)
        # Created on the loop thread (app.server): that is the thread whose stack names the blocking request.
        self.loop = asyncio.get_running_loop()
        self.loop_thread_id = threading.get_ident()
        self.shed = 0  # requests sent back to nginx, since start (fleet_stall_shed_total)
        self._done: weakref.WeakSet[tornado.web.RequestHandler] = weakref.WeakSet()
        # Every handler seen running the blocking code: it may await later with no response started, and must
        # still never be sent to another process (a query of death would spread).
        self._exempt: weakref.WeakSet[tornado.web.RequestHandler] = weakref.WeakSet()
        self._peer_checked = -PEER_RECHECK
        self._peer_ready = True  # until a check says otherwise (only a change is logged)
        # The callback holding the loop at the last call, the loop's I/O count then, and since when
        # (see `_held_by_one_callback`).
        self._holder = None
        self._holder_io = -1
        self._held_since = 0.0

    def __call__(self) -> None:
        """Shed what is safe to shed now (called from the watchdog thread, again and again while a stall lasts)."""
        # The blocking handler is on the loop's stack only while it blocks: note it before anything slow.
        self._note_running()
        if not self._held_by_one_callback():
            return
        if not self._peer_available() or not self.is_stalled():
            return  # the peer check can take PEER_TIMEOUT per peer: the stall may be over by now
        shed = self._shed_in_flight() + self._shed_arrivals()
        if shed:
            self.shed += shed
            log.warning("event loop stalled: closed %d waiting GET/HEAD request(s) for nginx to retry elsewhere", shed)

    def _held_by_one_callback(self) -> bool:
        """True once one callback has held the loop for HOLD_CONFIRM with no read or write on any connection: a
        blocking call. An overloaded loop also lags past the watchdog's threshold, but runs one short callback
        after another, reading and writing; shedding then would only bounce requests between busy processes until
        nginx runs out of tries and answers 502 (README "Overload" has what a burst on a saturated machine did
        before this check). The callback is the outermost frame the event loop called on the loop thread, kept
        here (not its id) so that a new frame cannot pass for it."""
        root = callback_root(self.loop_thread_id)
        io = ShedGuard.io
        now = time.monotonic()
        if root is None or root is not self._holder or io != self._holder_io:
            self._holder, self._holder_io, self._held_since = root, io, now
            return False
        return now - self._held_since >= HOLD_CONFIRM

    def _peer_available(self) -> bool:
        now = time.monotonic()
        if now - self._peer_checked >= PEER_RECHECK:
            ready = any(answers_health_check(peer) for peer in self.peers)
            if not ready and self._peer_ready:
                log.warning("event loop stalled, and no other process answers /healthz: not shedding")
            self._peer_ready = ready
            self._peer_checked = time.monotonic()
        return self._peer_ready

    def _note_running(self) -> None:
        running = running_handler(self.loop_thread_id)
        if running is not None:
            self._exempt.add(running)

    def _shed_in_flight(self) -> int:
        self._note_running()
        shed = 0
        # list() of a set is one step under the GIL, whatever the loop thread does meanwhile.
        for handler in list(self.in_flight):
            if handler in self._exempt or handler in self._done or not sheddable(handler):
                continue
            if not self.is_stalled():
                break  # the loop runs again: what is left is served here
            stream = getattr(handler.request.connection, "stream", None)
            guard = getattr(stream, "shed_guard", None)
            # Once the loop writes the response's first byte, nginx can no longer pass the request on.
            if guard is not None and guard.shut_down_if(lambda handler=handler: sheddable(handler)):
                self._done.add(handler)
                shed += 1
        return shed

    def _shed_arrivals(self) -> int:
        """Shed GETs as they arrive, for up to WAIT seconds while the stall lasts: new connections in the accept
        queues, and requests on kept-alive connections that no handler has seen."""
        kept_alive, shed = self._kept_alive_waiting()
        poller = select.poll()
        listeners = {}
        for listener in self.listening:
            with contextlib.suppress(OSError, ValueError):  # closed by the drain
                poller.register(listener, select.POLLIN)
                listeners[listener.fileno()] = listener
        for fd in kept_alive:
            poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + WAIT
        while self.is_stalled() and (left := deadline - time.monotonic()) > 0:
            try:
                events = poller.poll(1000 * left)
            except OSError:
                return shed
            for fd, event in events:
                if fd in kept_alive:
                    # Readable: a request arrived, or nginx closed the connection. Looked at once per call.
                    poller.unregister(fd)
                    shed += self._shed_kept_alive(*kept_alive.pop(fd))
                elif event & (select.POLLNVAL | select.POLLERR):
                    poller.unregister(fd)  # a listening socket the drain closed
                elif fd in listeners:
                    shed += self._shed_queue(listeners[fd])
        return shed

    def _shed_queue(self, listener: socket.socket) -> int:
        """Accept what is queued on `listener`: reset GETs and HEADs (nginx retries them), hand the rest back."""
        shed = 0
        # Checked again before every accept: the poll may have returned after the loop came back.
        while self.is_stalled():
            try:
                conn, address = listener.accept()
            except OSError:
                break  # queue empty (EAGAIN), or the socket was closed by the drain
            if first_bytes(conn).startswith(SAFE_PREFIXES) and self.is_stalled():
                try:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
                except OSError:
                    pass  # the client already reset it: a plain close does
                finally:
                    conn.close()
                shed += 1
            else:
                self._hand_back(conn, address)
        return shed

    def _kept_alive_waiting(self) -> tuple[dict[int, tuple[ShedGuard, int]], int]:
        """The kept-alive connections no handler is serving, by descriptor, with their guard and its read count
        now, to watch for requests arriving; and how many were shed at once because Tornado had read a GET from
        them that no handler has started yet (Tornado parses what it read one loop turn later, so a stall often
        catches a request there)."""
        idle: dict[int, tuple[ShedGuard, int]] = {}
        shed = 0
        serving = self._streams_served()
        for stream in list(self.server.streams):
            guard = getattr(stream, "shed_guard", None)
            if guard is None or stream.closed() or stream in serving:
                continue
            if guard.buffered():
                shed += self._shed_buffered(guard)
                continue
            try:
                idle[stream.socket.fileno()] = (guard, guard.reads)
            except (AttributeError, OSError):
                continue
        return idle, shed

    def _streams_served(self) -> set:
        """The connections a handler in flight is serving (one pass over the in-flight set)."""
        return {getattr(h.request.connection, "stream", None) for h in list(self.in_flight)}

    def _shed_buffered(self, guard: ShedGuard) -> int:
        """Shut down a connection whose read but unparsed request is a GET or HEAD that its handler lets be sent
        elsewhere. Like a shed in-flight GET it may have started here as the stall ended (the loop parses without a
        read), which is the contract for GET handlers; a handler that opts out (`shed_on_stall = False`) never is."""
        head = guard.buffered_head()
        if not head.startswith(SAFE_PREFIXES) or not route_sheddable(self.server, head):
            return 0

        def untouched() -> bool:
            return guard.buffered_head() == head and guard.stream not in self._streams_served()

        return int(self.is_stalled() and guard.shut_down_if(untouched))

    def _shed_kept_alive(self, guard: ShedGuard, reads: int) -> int:
        """Shut down a kept-alive connection whose waiting request is a GET or HEAD, if the loop has not read from
        it since `reads` was counted; 1 if shed. A POST waiting, an idle connection or one nginx closed is left."""

        def waiting_get() -> bool:
            return guard.reads == reads and not guard.buffered() and peek(guard.socket).startswith(SAFE_PREFIXES)

        return int(self.is_stalled() and guard.shut_down_if(waiting_get))

    def _hand_back(self, conn: socket.socket, address) -> None:
        try:
            self.loop.call_soon_threadsafe(self.server.serve_accepted, conn, address)
        except RuntimeError:  # the loop is closed: the process is exiting
            conn.close()


class ShedGuard:
    """One connection's lock between the loop's reads and writes and the shedder's check-and-shutdown.

    Installed on every connection by app.lifecycle.FleetHTTPServer (`stream.shed_guard`); it wraps the stream's
    `read_from_fd` and `write`, so each of them takes the lock (uncontended: well under a microsecond) and each read
    is counted."""

    # Reads and writes on every connection of the process (on the loop thread): a loop that does any is not held by
    # one blocking callback.
    io = 0

    def __init__(self, stream: tornado.iostream.IOStream):
        self.lock = threading.Lock()
        self.reads = 0
        self.stream = stream
        self.socket = stream.socket
        read, write = stream.read_from_fd, stream.write

        def guarded_read(buf):
            with self.lock:
                self.reads += 1
                ShedGuard.io += 1
                return read(buf)

        def guarded_write(data, *args, **kwargs):
            with self.lock:
                ShedGuard.io += 1
                return write(data, *args, **kwargs)

        stream.read_from_fd = guarded_read  # type: ignore[method-assign]
        stream.write = guarded_write  # type: ignore[method-assign]
        stream.shed_guard = self  # type: ignore[attr-defined]

    def buffered(self) -> bool:
        """Bytes Tornado has read from the connection and not consumed yet (a request it may parse any moment)."""
        return bool(self.stream._read_buffer_size)

    def buffered_head(self) -> bytes:
        """The start of what Tornado has read and not consumed: enough for a request line."""
        return bytes(self.stream._read_buffer[:REQUEST_LINE_BYTES]) if self.stream._read_buffer_size else b""

    def shut_down_if(self, still_safe: Callable[[], bool]) -> bool:
        """Shut the connection down if `still_safe()` holds, with the loop's reads and writes held off meanwhile."""
        with self.lock:
            if not still_safe():
                return False
            try:
                # Not close(): the loop owns the descriptor; a shutdown leaves it valid for the loop to close.
                self.socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                return False
            return True


def route_sheddable(server, head: bytes) -> bool:
    """Whether the handler routed for the request line at the start of `head` lets a GET be sent elsewhere."""
    try:
        path = head.split(b" ", 2)[1].split(b"?", 1)[0].decode("latin-1")
    except IndexError:
        return False
    app = getattr(server, "request_callback", None)
    for rule in getattr(getattr(app, "wildcard_router", None), "rules", ()):
        regex = getattr(rule.matcher, "regex", None)
        if regex is not None and regex.match(path):
            target = rule.target
            return isinstance(target, type) and getattr(target, "shed_on_stall", True)
    return False  # unknown path: the default handler answers 404 fast anyway


def sheddable(handler: tornado.web.RequestHandler) -> bool:
    # Tornado has no public "response started" flag; these two are what RequestHandler itself checks.
    return (
        getattr(handler, "shed_on_stall", True)
        and handler.request.method in SAFE_METHODS
        and not handler._headers_written
        and not handler._finished
    )


def callback_root(thread_id: int):
    """The outermost Python frame of the callback the event loop is running on `thread_id` (None if it is idle in
    the loop itself): the frame just inside the loop's own code (asyncio's modules; uvloop's loop is C)."""
    frame = sys._current_frames().get(thread_id)
    root = None
    while frame is not None and not frame.f_code.co_filename.startswith(ASYNCIO_DIR):
        root = frame
        frame = frame.f_back
    del frame
    return root


def running_handler(thread_id: int) -> tornado.web.RequestHandler | None:
    """The request handler on the given thread's stack (innermost first), if any: the one blocking the loop."""
    frame = sys._current_frames().get(thread_id)
    try:
        while frame is not None:
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, tornado.web.RequestHandler):
                return candidate
            frame = frame.f_back
        return None
    finally:
        del frame  # a frame reference keeps the loop thread's locals alive


def first_bytes(conn: socket.socket) -> bytes:
    """The first bytes of the request on a new connection, left in the socket; empty if none arrive within
    FIRST_BYTES_WAIT."""
    try:
        readable, _, _ = select.select([conn], [], [], FIRST_BYTES_WAIT)
    except (OSError, ValueError):
        return b""
    return peek(conn) if readable else b""


def peek(conn: socket.socket) -> bytes:
    """The first bytes waiting unread on `conn`, left there (empty if none, or if the peer closed it)."""
    try:
        return conn.recv(8, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:
        return b""


def answers_health_check(peer: Address) -> bool:
    """True if the process at `peer` answers /healthz with 200 within PEER_TIMEOUT: its loop is free."""
    try:
        with addresses.connect(peer, PEER_TIMEOUT) as conn:
            conn.sendall(b"GET /healthz HTTP/1.0\r\nHost: fleet-peer\r\n\r\n")
            return conn.recv(16).startswith((b"HTTP/1.0 200", b"HTTP/1.1 200"))
    except OSError:
        return False
