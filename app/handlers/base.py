"""BaseHandler: JSON errors, in-flight accounting for the drain, request ids and metrics, and small properties for
dependencies."""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import socket
import time
from typing import Any

import orjson
import tornado
import tornado.web
from tornado import httputil

from app import admission, validation
from app.logs import request_id_var
from app.store import DATABASE_UNAVAILABLE
from app.validation import ValidationError

# A request on a process's own unix socket comes from this host (app/addresses.py).
LOCAL_PEER = "127.0.0.1"
log = logging.getLogger("fleet.http")

SERVER = f"TornadoServer/{tornado.version}"
_date_cache = [0, ""]


def http_date() -> str:
    """The Date header's value for now; formatted at most once a second (its resolution)."""
    now = int(time.time())
    if now != _date_cache[0]:
        _date_cache[:] = now, httputil.format_timestamp(now)
    return _date_cache[1]


# An incoming X-Request-ID is kept only if it looks like this (nginx's map in deploy/nginx.conf uses the same
# rule): no spaces, quotes or control characters, so it cannot forge or break a log line or a header.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}\Z")


class BaseHandler(tornado.web.RequestHandler):
    """What every request pays is kept to what a plain Tornado handler pays, or less (README "Performance"): its
    start and end are one set insertion and one call of `app.web.log_request`, the one per-request hook for the
    drain's accounting, metrics and logs; the Date header is formatted once a second; no ETag is hashed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Requests in flight, for the drain, the status page and the stall shedder; app.web.log_request removes it.
        self.settings["in_flight"].add(self)

    def clear(self) -> None:
        # Tornado's RequestHandler.clear (6.6), but with a Date header formatted once a second rather than per
        # response (a format_timestamp per request showed in the /json profile), and the request id set directly
        # (it is already validated). Tornado calls this again when send_error resets the headers.
        headers = {"Server": SERVER, "Content-Type": "text/html; charset=UTF-8", "Date": http_date()}
        if self.app_settings.request_ids:
            headers["X-Request-Id"] = self.request_id
        self._headers = httputil.HTTPHeaders(headers)
        self.set_default_headers()
        self._write_buffer = []
        self._status_code = 200
        self._reason = "OK"

    def compute_etag(self) -> str | None:
        # Tornado hashes every 200 GET body (SHA-1) to answer If-None-Match; nothing here is cached by clients, so
        # that is pure cost. A handler whose responses are worth revalidating sets its own ETag.
        return None

    @functools.cached_property
    def request_id(self) -> str:
        """nginx's X-Request-ID (a valid incoming one, else its $request_id); a new one if the app is reached
        directly."""
        incoming = self.request.headers.get("X-Request-ID")
        if incoming and REQUEST_ID.match(incoming):
            return incoming
        return os.urandom(16).hex()

    @property
    def client_ip(self) -> str:
        """The client's address: nginx's X-Real-IP (nginx sets it from the connection, never from the client), or,
        for a process reached directly, the peer's address; on its unix socket that is the host itself (only the
        fleet's account and root can connect there), for which Tornado would say 0.0.0.0. `request.remote_ip` is
        nginx's own address."""
        real_ip = self.request.headers.get("X-Real-Ip")
        if real_ip:
            return real_ip
        context = getattr(self.request.connection, "context", None)
        return LOCAL_PEER if getattr(context, "address_family", None) == socket.AF_UNIX else self.request.remote_ip

    def prepare(self) -> None:
        # Every line logged while this request is served carries its id (app.logs); prepare runs inside the task
        # Tornado serves the request in, so the value stays with this request.
        if self.app_settings.request_ids:
            request_id_var.set(self.request_id)
        admission.admit(self)  # in-progress bound (503 + Retry-After), the request's deadline (app/admission.py)
        if self.lifecycle.draining:
            # nginx must not send another request on this connection: the process is about to exit.
            self.set_header("Connection", "close")

    def on_connection_close(self) -> None:
        admission.client_gone(self)  # the client left: cancel the request's database work
        super().on_connection_close()

    # Dependencies live in the Application's settings (no globals), read through these properties.
    @property
    def store(self):
        return self.settings["store"]

    @property
    def lifecycle(self):
        return self.settings["lifecycle"]

    @property
    def process(self):
        return self.settings["process"]

    @property
    def blocking(self):
        return self.settings["blocking"]

    @property
    def app_settings(self):
        """This process's app.settings.Settings (its FLEET_ variables; `self.settings` is Tornado's own)."""
        return self.settings["app_settings"]

    @property
    def watchdog(self):
        return self.settings["watchdog"]

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self._headers["Content-Type"] = "application/json"
        # orjson: UTF-8 (like json.dumps with ensure_ascii=False) and compact, at a fraction of json.dumps's cost.
        self.finish(orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS))

    def json_body(self) -> Any:
        return validation.parse_json(self.request.body)

    def query_params(self, *allowed: str) -> dict[str, str]:
        """The query parameters present among `allowed`; any other parameter, or one given twice, is a 400."""
        return validation.query_params(self.request.query_arguments, allowed, self.get_query_argument)

    def log_exception(self, typ, value, tb) -> None:
        if isinstance(value, (ValidationError, admission.Refused)):  # refusals are counted, not logged one by one
            return
        # A client error: log_request (app/web.py) already logs it once, with its request id.
        if isinstance(value, tornado.web.HTTPError) and value.status_code < 500:
            return
        if isinstance(value, DATABASE_UNAVAILABLE):
            log.warning("database unavailable: %s %s: %s", self.request.method, self.request.path, value)
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Every error is JSON and none carries a stack trace, whatever raised it.
        error = kwargs.get("exc_info", (None, None, None))[1]
        body: dict[str, Any]
        if isinstance(error, admission.Refused):
            status_code, body = error.status_code, admission.refusal(self, error)
        elif isinstance(error, ValidationError):
            status_code, body = 400, {"error": error.message}
            if error.field:
                body["field"] = error.field
        elif isinstance(error, DATABASE_UNAVAILABLE):
            status_code, body = 503, {"error": "database unavailable, try again shortly"}
        elif isinstance(error, tornado.web.HTTPError) and error.log_message and status_code < 500:
            body = {"error": error.log_message % error.args if error.args else error.log_message}
        else:
            body = {"error": self._reason.lower()}
        if self.lifecycle.draining:
            self.set_header("Connection", "close")  # send_error cleared it
        self.set_status(status_code)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))


class NotFoundHandler(BaseHandler):
    """Answers every unrouted path with a JSON 404 (and counts it like any other request)."""

    def prepare(self) -> None:
        super().prepare()
        raise tornado.web.HTTPError(404, "no such endpoint: %s", self.request.path)
