"""Overload protection for one process: admission control, request deadlines and cancellation of abandoned work.

Three rules, each a fast, explicit "not now" instead of a queue that grows until everything is late
(README "Overload"):

1. **A bound on requests in progress** (FLEET_MAX_IN_FLIGHT). A request beyond it is answered at once with a JSON
   503 and ``Retry-After``, before it touches the database. Health and readiness probes and the status page are
   never refused: an operator must be able to see an overloaded process, and a probe failing under load would
   make a load balancer take a busy but healthy host out. nginx's ``max_conns`` is the same bound, so nginx
   sends the excess to a process with room before any process refuses.
2. **A deadline per request** (FLEET_REQUEST_TIMEOUT_MS). Each database operation runs under
   ``pymongo.timeout(what is left)`` (PyMongo's client-side operation timeout, CSOT), in every mode: the
   AsyncMongoClient reads the context variable on the loop, Motor copies the context into its worker threads
   (``motor.frameworks.asyncio.run_on_executor``), and app.blocking does the same. An operation started past
   the deadline is not sent; one that runs past it is abandoned by the driver. Either way the answer is a 503.
3. **Work for a client that left is cancelled.** When the client (or nginx) closes the connection, Tornado
   calls ``on_connection_close``: a database operation then awaited is cancelled, and any later one raises at
   once instead of being sent. Only store operations are interrupted (app.store.guard), never arbitrary
   awaits: a request always ends through Tornado's own path, so its in-flight accounting stays right.

Every refusal is a `Refused` (a 503 ``HTTPError``; 499 for a client that left); BaseHandler.write_error answers
it through `refusal()`, which sets ``Retry-After`` and counts it by reason in the metrics (``fleet_http_refused``).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import socket
import time

import tornado.web

# Seconds a refused client is asked to wait: long enough for a burst to pass, short enough not to lose it.
RETRY_AFTER = 1
# Never refused, whatever the load: liveness, readiness and the status page (and its assets).
ALWAYS_ADMITTED = frozenset({"/healthz", "/readyz", "/status", "/status.json", "/status.js", "/status.css"})


class Refused(tornado.web.HTTPError):
    """A request the process will not serve now; answered 503 with Retry-After. `reason` labels the metric."""

    def __init__(self, reason: str, message: str, status: int = 503):
        super().__init__(status, message.replace("%", "%%"))
        self.reason = reason
        self.message = message


class InFlightLimit(Refused):
    def __init__(self, limit: int):
        super().__init__("in_flight", f"overloaded: this process already has {limit} requests in progress")


class DeadlineExceeded(Refused):
    def __init__(self):
        super().__init__("deadline", "request deadline exceeded (FLEET_REQUEST_TIMEOUT_MS), try again shortly")


class ClientGone(Refused):
    """The client closed its connection: nobody reads the answer, so no more database work is done for it."""

    def __init__(self):
        # 499, nginx's "client closed request": nobody receives it, and it is not a server error in logs and metrics.
        super().__init__("client_gone", "the client closed the connection", 499)


class QueueFull(Refused):
    def __init__(self, pool: str, limit: int):
        super().__init__("queue_full", f"overloaded: {limit} calls already wait for the {pool} pool")


@dataclasses.dataclass(eq=False)
class RequestScope:
    """What the store guard needs to know about the request it serves (kept in `current_scope`)."""

    deadline: float  # time.monotonic(), the clock PyMongo's timeout uses
    task: asyncio.Task | None
    client_gone: bool = False
    # Store operations being awaited right now: only then does a disconnect cancel the request's task.
    in_store: int = 0

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


current_scope: contextvars.ContextVar[RequestScope | None] = contextvars.ContextVar("fleet_request", default=None)


def admit(handler: tornado.web.RequestHandler) -> None:
    """Called first in BaseHandler.prepare (inside the task Tornado serves the request in): refuse the request if
    the process is full, else give it a deadline that its database operations inherit."""
    settings = handler.settings["app_settings"]
    if handler.request.path in ALWAYS_ADMITTED:
        return
    # The count includes this request (BaseHandler.__init__ counted it).
    if handler.settings["lifecycle"].in_flight > settings.max_in_flight and (
        live_requests(handler.settings["in_flight"]) > settings.max_in_flight
    ):
        raise InFlightLimit(settings.max_in_flight)
    scope = RequestScope(time.monotonic() + settings.request_timeout_ms / 1000, asyncio.current_task())
    handler._fleet_scope = scope
    current_scope.set(scope)


def live_requests(handlers) -> int:
    """Requests in flight whose client is still connected, probes aside: what nginx counts against max_conns.

    A request whose connection closed (nginx gave up on it when its client left, or the stall shedder handed it
    to another process) still finishes here, but nginx already counts its slot as free and sends another request;
    counting it too would refuse that request although the process is within its bound. Measured: right after a
    burst of 512 clients ended, up to 38 live requests were refused behind such leftovers. Tornado notices a
    closed connection only on its next read, so each socket is asked (a non-blocking peek) whether it is at its
    end; a closed one is treated as `client_gone`, which also stops its database work. Only done past the bound,
    so the usual request pays nothing for it."""
    live = 0
    for handler in list(handlers):
        # Probes and the status page are not work the bound is about (nor does nginx send them all): a readiness
        # probe in progress must not make a process refuse the request that fills its last slot.
        if getattr(handler, "_fleet_gone", False) or handler.request.path in ALWAYS_ADMITTED:
            continue
        if connection_closed(handler):
            client_gone(handler)
        else:
            live += 1
    return live


def connection_closed(handler: tornado.web.RequestHandler) -> bool:
    stream = getattr(handler.request.connection, "stream", None)
    sock = getattr(stream, "socket", None)
    if stream is None:
        return False  # not a Tornado HTTP/1 connection: assume it is there
    if sock is None or stream.closed():
        return True
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False  # open, nothing more sent: the client is waiting for its answer
    except OSError:
        return True  # reset


def client_gone(handler: tornado.web.RequestHandler) -> None:
    """BaseHandler.on_connection_close: stop the request's database work."""
    if handler._finished:
        return
    handler._fleet_gone = True
    scope: RequestScope | None = getattr(handler, "_fleet_scope", None)
    if scope is None or scope.client_gone:
        return
    scope.client_gone = True
    if scope.in_store and scope.task is not None and not scope.task.done():
        scope.task.cancel()  # app.store.guard turns this into ClientGone


def refusal(handler: tornado.web.RequestHandler, error: Refused) -> dict:
    """The body of a refusal; sets Retry-After and counts it (called from BaseHandler.write_error)."""
    handler.set_header("Retry-After", str(RETRY_AFTER))
    metrics = handler.settings.get("metrics")
    if metrics is not None:
        metrics.observe_refusal(error.reason)
    return {"error": error.message}
