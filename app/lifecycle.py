"""Graceful drain: what a process does between SIGTERM and exit, so that a restart loses no request.

The order matters, and each step closes a race seen under load through nginx (tests/whole_fleet/test_switch.py):

1. **Stop listening without resetting anyone.** Closing a listening socket resets (RST) every connection the
   kernel has already completed but the process has not accepted yet. nginx has sent its request on such a
   connection, so for nginx that is an error *after* sending: it passes a GET on to another process, but never a
   POST (it may have been applied), and the client gets a 502. So `FleetHTTPServer.stop_accepting()` accepts
   everything in the queue and closes the socket right after the accept that finds it empty (microseconds
   apart, no await in between), then serves what it accepted. From then on a connect is refused, which nginx
   retries on another process for any method (nothing was sent).
   tests/app/test_lifecycle.py stops a process under a storm of new connections: a plain close lost 3-16 requests
   per stop there; this loses none.
2. **Let nginx close its connections.** nginx keeps connections to the processes open between requests
   (upstream keep-alive, deploy/nginx.conf), and may send a request on an idle one at any moment: a POST sent on
   a connection the process closes at that moment gets a 502 (nginx never resends a POST, LOCK or PATCH it has
   sent). So the drain closes no connection itself. Requests that arrive on an open connection are served with
   ``Connection: close`` (BaseHandler), after which nginx closes it; nginx closes idle ones after its upstream
   ``keepalive_timeout`` (2 s). The drain waits until no request is in flight *and* no connection is open. A
   connection accepted a moment ago with a request not parsed yet is open, so it is waited for too.
3. At the deadline (FLEET_DRAIN_SECONDS, which must exceed nginx's keepalive_timeout), whatever is still open is
   closed: only a client that neither sends nor closes is cut off. Then app.server closes the store.
   supervisord's stopwaitsecs (deploy/supervisord.conf) is well above that deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Iterable

import tornado.httpserver
import tornado.iostream

from app.shedding import ShedGuard

log = logging.getLogger("fleet.lifecycle")

POLL = 0.02


class Lifecycle:
    """In-flight requests and open connections of one process, and its drain."""

    def __init__(self) -> None:
        self.draining = False
        # The handlers of the requests in flight: BaseHandler adds itself, app.web.log_request removes it. The
        # stall shedder (app/shedding.py) reads the same set.
        self.requests: set = set()
        self.open_connections = 0

    @property
    def in_flight(self) -> int:
        return len(self.requests)

    def connection_opened(self) -> None:
        self.open_connections += 1

    def connection_closed(self) -> None:
        self.open_connections -= 1

    def settled(self) -> bool:
        """No request in flight and no connection that could still carry one."""
        return not self.in_flight and not self.open_connections

    async def drain(self, server: FleetHTTPServer, deadline_seconds: float) -> bool:
        """Stop `server` and let its requests finish. Returns False if the deadline cut some off."""
        self.draining = True
        started = time.monotonic()
        accepted = server.stop_accepting()
        log.info(
            "draining: %d request(s) in flight, %d connection(s) open (%d taken from the accept queue), deadline %.1fs",
            self.in_flight,
            self.open_connections,
            accepted,
            deadline_seconds,
        )
        deadline = started + deadline_seconds
        # Polled: cheaper than an event on every request and connection, and the drain is rare.
        while time.monotonic() < deadline:
            if self.settled():
                break
            await asyncio.sleep(POLL)
        clean = self.settled()
        if not clean:
            log.warning(
                "drain deadline reached with %d request(s) in flight and %d connection(s) open",
                self.in_flight,
                self.open_connections,
            )
        await close_connections(server)
        log.info("drained in %.2fs", time.monotonic() - started)
        return clean


class FleetHTTPServer(tornado.httpserver.HTTPServer):
    """Tornado's HTTPServer, telling a `Lifecycle` about its connections, with a stop that resets no one."""

    def initialize(self, *args, lifecycle: Lifecycle, **kwargs) -> None:
        super().initialize(*args, **kwargs)
        self.lifecycle = lifecycle
        self.listening: list[socket.socket] = []
        # Every open connection's stream: stall shedding (app/shedding.py) looks for GETs waiting unread on them.
        self.streams: set[tornado.iostream.IOStream] = set()

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        sockets = list(sockets)
        self.listening += sockets
        super().add_sockets(sockets)

    def handle_stream(self, stream: tornado.iostream.IOStream, address: tuple) -> None:
        self.lifecycle.connection_opened()
        self.streams.add(stream)
        # Tornado turns Nagle's algorithm on while a response is written (so that a handler's several flush()es
        # coalesce) and off at its end (so the last bytes go out at once): two setsockopt() calls per request. To
        # nginx on the same host, small packets cost nothing, so Nagle is off once for the connection's life.
        stream.set_nodelay(True)
        stream.set_nodelay = _keep_nodelay  # type: ignore[method-assign]
        # Makes stall shedding's check-and-shutdown atomic with this connection's reads and writes (app/shedding.py).
        ShedGuard(stream)
        super().handle_stream(stream, address)

    def on_close(self, server_conn) -> None:
        self.lifecycle.connection_closed()
        self.streams.discard(server_conn.stream)
        super().on_close(server_conn)

    def stop_accepting(self) -> int:
        """Close the listening sockets after taking every connection already queued on them; returns how many
        were taken. Synchronous on purpose: nothing else runs between the last accept and the close."""
        # Tornado's stop() unregisters and closes its descriptors; a duplicate keeps each socket listening until
        # its queue is empty, and is closed right after the accept that finds it empty. Only a connection that
        # completes in those few microseconds can still be reset.
        held = [listener.dup() for listener in self.listening]
        self.stop()
        queued: list[tuple[socket.socket, tuple]] = []
        try:
            for listener in held:
                listener.setblocking(False)
                while True:
                    try:
                        queued.append(listener.accept())
                    except (BlockingIOError, InterruptedError):
                        break
                    except ConnectionAbortedError:
                        continue  # the client gave up before we took it
                    except OSError as exc:  # EMFILE, ENFILE, ENOBUFS: what is left in this queue is lost
                        log.error("drain: cannot accept queued connections: %s", exc)
                        break
                listener.close()
        finally:
            for listener in held:
                listener.close()  # a second close is a no-op
        for connection, address in queued:
            self.serve_accepted(connection, address)
        return len(queued)

    def serve_accepted(self, connection: socket.socket, address: tuple) -> None:
        """Serve a connection accepted outside Tornado's accept handler (the drain, the stall shedder).

        What Tornado's TCPServer does with a connection it accepts itself (no TLS here: nginx terminates it)."""
        stream = tornado.iostream.IOStream(
            connection, max_buffer_size=self.max_buffer_size, read_chunk_size=self.read_chunk_size
        )
        self.handle_stream(stream, address)


def _keep_nodelay(value: bool) -> None:
    """FleetHTTPServer's streams keep TCP_NODELAY on (see handle_stream)."""


# How long closing a server's connections may take on the way out: an unresponsive client does not hold the exit.
CLOSE_WAIT = 1.0


async def close_connections(server: tornado.httpserver.HTTPServer) -> None:
    """Close `server`'s open connections, waiting at most CLOSE_WAIT for them."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(server.close_all_connections(), CLOSE_WAIT)
