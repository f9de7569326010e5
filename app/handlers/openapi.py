"""/openapi.json: the notes API's OpenAPI 3.1 document (app/openapi.py). Registered with the status page."""

from __future__ import annotations

from app import openapi
from app.access import InternalHandler


class OpenApiHandler(InternalHandler):
    def get(self) -> None:
        self.query_params()
        self.set_header("Content-Type", "application/json")
        self.finish(openapi.rendered())
