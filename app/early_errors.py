"""Tornado's own early errors, in JSON like every other error.

When a request cannot be parsed (a header value with a control character, a `Host` outside RFC 3986, a body
over `max_body_size`, bytes that are not HTTP), Tornado answers before any handler runs, with a hard-coded
``HTTP/1.1 400 Bad Request`` and no body, and closes the connection. nginx forwards some of these requests (it is
more lenient about header values and `Host`), so a client would see a bodyless 400. Tornado has no hook for this
answer; the server below swaps exactly those bytes for a JSON 400 on each connection's stream.
`tests/app/test_validation.py` and `tests/whole_fleet/test_hardening_fleet.py` fail if a Tornado upgrade changes
the bytes.
"""

from __future__ import annotations

import json

import tornado.iostream

from app.lifecycle import FleetHTTPServer

# What tornado.http1connection.HTTP1Connection writes on an HTTPInputError (Tornado 6.6).
BARE_400 = b"HTTP/1.1 400 Bad Request\r\n\r\n"
MESSAGE = "bad request: malformed request line, headers or body framing, or a body over the size limit"


_BODY = json.dumps({"error": MESSAGE}).encode()
JSON_400 = (
    "HTTP/1.1 400 Bad Request\r\n"
    "Content-Type: application/json\r\n"
    f"Content-Length: {len(_BODY)}\r\n"
    "Connection: close\r\n\r\n"
).encode() + _BODY


class JsonErrorsHTTPServer(FleetHTTPServer):
    """`FleetHTTPServer` whose connections answer Tornado's early 400 in JSON."""

    def handle_stream(self, stream: tornado.iostream.IOStream, address: tuple) -> None:
        write = stream.write

        def write_json_400(data, *args, **kwargs):
            return write(JSON_400 if data == BARE_400 else data, *args, **kwargs)

        stream.write = write_json_400  # type: ignore[method-assign]
        super().handle_stream(stream, address)
