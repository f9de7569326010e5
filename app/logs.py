"""Structured logs: one JSON object per line, each carrying the process's pid, port and database mode, and the
request id of the request being served (the one nginx sent as X-Request-ID, also in nginx's access log).

    {"time": "2026-01-02T03:04:05.678Z", "level": "WARNING", "logger": "fleet.access", "message": "404 GET /x 0.4ms",
     "pid": 4242, "port": 8001, "mode": "motor", "request_id": "5f0c...", "status": 404, "method": "GET", ...}

The request id lives in a context variable: `BaseHandler.prepare` sets it inside the task Tornado runs the
request in, so every line logged while serving that request (by the app, Tornado or a driver callback on the
loop) carries it, and `BlockingPool` copies it into its worker threads. Extra fields passed with
``log.info(..., extra={...})`` become keys of the object.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

# Set per request by app.handlers.base.BaseHandler; None outside a request.
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonLinesFormatter(logging.Formatter):
    def __init__(self, **static_fields):
        super().__init__()
        self.static_fields = static_fields

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
            **self.static_fields,
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            line["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # default=str: a stray non-JSON value in `extra` must not lose the whole line.
        return json.dumps(line, ensure_ascii=False, default=str)


def setup(level: str, *, port: int, mode: str, stream=None) -> logging.Handler:
    """Send every logger's records to `stream` (stderr: supervisord writes it to var/log/app-PORT.log) as JSON."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLinesFormatter(port=port, mode=mode))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Python's warnings too, so that nothing reaches the log file as a bare line.
    logging.captureWarnings(True)
    # DEBUG is for the app's own lines (every request); the drivers' DEBUG logs every command and heartbeat.
    for noisy in ("pymongo", "motor", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))
    return handler
