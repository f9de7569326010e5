"""The notes API as an OpenAPI 3.1 document: the schemas are generated from the pydantic models that validate the
bodies (app/notes.py), the paths are written here.

Served at /openapi.json next to the status page, and only when it is on (app/web.py). docs/openapi.json is a copy
(tests/app/test_openapi.py checks it equals what the app serves); after changing a model or a path, regenerate it:
    .venv/bin/python -m app.openapi > docs/openapi.json
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import models_json_schema

from app import notes
from app.validation import optional


class Error(BaseModel):
    """Every error answer, 4xx and 5xx alike: what is wrong, and the field or query parameter at fault if any."""

    model_config = ConfigDict(extra="forbid", strict=True)
    error: str
    field: str = optional()


MODELS: list[type[BaseModel]] = [notes.NewNote, notes.NoteChanges, notes.Note, notes.NotePage, Error]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _header(description: str, **schema: Any) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string", **schema}}


ETAG = _header('the note\'s version as a strong tag, `"3"`: what `If-Match` names')
IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "description": "apply only if the note is still at one of these versions (its `ETag`s), or `*`; else 412",
    "schema": {"type": "string"},
}


def _paths() -> dict[str, Any]:
    def errors(*statuses: int) -> dict[str, Any]:
        said = {
            400: "a body, field, header or query parameter is wrong; `field` names it",
            404: "no note with this id (an id that cannot be one is a 404 too)",
            412: "`If-Match` names none of the note's versions: it changed since it was read",
            422: "this `Idempotency-Key` was used with a different body",
        }
        answers = {str(status): _json(Error, said[status]) for status in statuses}
        unavailable = "the database is unavailable, or the process is overloaded: retry after `Retry-After` s"
        answers["503"] = {**_json(Error, unavailable), "headers": {"Retry-After": _header("seconds")}}
        return answers

    note_id = {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "a note's `id`",
        "schema": {"type": "string"},
    }
    idempotency_key = {
        "name": "Idempotency-Key",
        "in": "header",
        "description": "makes the create safe to repeat: a repeat with the same key and body gets the first "
        "answer (`Idempotent-Replayed: true`) and creates nothing; keys expire after 24 h",
        "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
    }
    return {
        "/api/notes": {
            "get": {
                "operationId": "listNotes",
                "summary": "A page of notes, newest first",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": notes.PAGE_MAX,
                            "default": notes.PAGE_DEFAULT,
                        },
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "description": "`next_cursor` of the previous page",
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {"200": _json(notes.NotePage, "the page"), **errors(400)},
            },
            "post": {
                "operationId": "createNote",
                "summary": "Create a note",
                "parameters": [idempotency_key],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(notes.NewNote)}}},
                "responses": {
                    "201": {
                        **_json(notes.Note, "the note as stored"),
                        "headers": {
                            "Location": _header("the note's URL"),
                            "ETag": ETAG,
                            "Idempotent-Replayed": _header("`true` on a repeat of an earlier create", enum=["true"]),
                        },
                    },
                    **errors(400, 422),
                },
            },
        },
        "/api/notes/{id}": {
            "parameters": [note_id],
            "get": {
                "operationId": "getNote",
                "summary": "One note",
                "responses": {
                    "200": {**_json(notes.Note, "the note"), "headers": {"ETag": ETAG}},
                    **errors(400, 404),
                },
            },
            "patch": {
                "operationId": "updateNote",
                "summary": "Change some of a note's fields",
                "parameters": [IF_MATCH],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(notes.NoteChanges)}},
                },
                "responses": {
                    "200": {**_json(notes.Note, "the note as stored now"), "headers": {"ETag": ETAG}},
                    **errors(400, 404, 412),
                },
            },
            "delete": {
                "operationId": "deleteNote",
                "summary": "Delete a note",
                "parameters": [IF_MATCH],
                "responses": {"204": {"description": "deleted"}, **errors(400, 404, 412)},
            },
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (a new dict each call)."""
    _, schemas = models_json_schema(
        [(model, "validation") for model in MODELS], ref_template="#/components/schemas/{model}"
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tornado Fleet notes API",
            "version": "1",
            "description": "The example JSON resource. Every request body is validated against these schemas; "
            "anything else in it (unknown fields, `$` operators, dotted keys, wrong types) is a 400.",
        },
        "paths": _paths(),
        "components": {"schemas": schemas["$defs"]},
    }


@functools.cache
def rendered() -> bytes:
    """The document as served: built once per process, on the first request for it."""
    return json.dumps(document(), indent=2, ensure_ascii=False).encode() + b"\n"


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="python -m app.openapi",
        description="Print the notes API's OpenAPI 3.1 document (what /openapi.json serves) to stdout.",
    ).parse_args(argv)
    sys.stdout.buffer.write(rendered())
    return 0


if __name__ == "__main__":
    sys.exit(main())
