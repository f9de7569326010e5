"""Notes: the example JSON resource. Its request and response bodies (pydantic models), and storage written once
on top of the `Store` interface.

Validation is strict by design: a note is exactly {title, body, tags}; anything else (unknown fields, `$`
operators, wrong types) is rejected before it reaches the database, so user input can never become a query
operator. The models say so declaratively (`extra="forbid"`, `strict=True`); `app.validation.validate` turns
pydantic's verdict into the API's JSON 400. The same models are the OpenAPI document's schemas (app/openapi.py).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Annotated, Any

from bson import ObjectId
from bson.errors import InvalidId
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from app.validation import ValidationError, optional

COLLECTION = "notes"
TITLE_MAX = 200
BODY_MAX = 10_000
TAGS_MAX = 20
TAG_MAX = 50
PAGE_DEFAULT = 20
PAGE_MAX = 100


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "must not be blank")
    return value


Title = Annotated[
    str,
    Field(min_length=1, max_length=TITLE_MAX, description="must not be blank (only whitespace)"),
    AfterValidator(_not_blank),
]
Body = Annotated[str, Field(max_length=BODY_MAX)]
Tags = Annotated[list[Annotated[str, Field(min_length=1, max_length=TAG_MAX)]], Field(max_length=TAGS_MAX)]
# Strict: JSON's types only, nothing coerced (5 is not "5"). Lone surrogates ("\ud800" in JSON) are refused by
# pydantic's str itself; BSON strings are UTF-8, so the driver would fail on them.
STRICT = ConfigDict(extra="forbid", strict=True)


class NewNote(BaseModel):
    """POST /api/notes: a note is exactly these fields."""

    model_config = STRICT
    title: Title
    body: Body = ""
    tags: Tags = []


class NoteChanges(BaseModel):
    """PATCH /api/notes/{id}: any of a note's fields, at least one; the others keep their values."""

    model_config = ConfigDict(**STRICT, json_schema_extra={"minProperties": 1})
    title: Title = optional()
    body: Body = optional()
    tags: Tags = optional()

    @model_validator(mode="after")
    def _not_empty(self) -> NoteChanges:
        if not self.model_fields_set:
            raise PydanticCustomError("empty", "nothing to update: give title, body or tags")
        return self


# Responses are built by `to_json` as plain dicts (what a page of 100 notes can afford), not serialised through
# these models; tests/app/test_openapi.py checks that what the API answers validates against them.
class Note(BaseModel):
    """A note as every endpoint returns it."""

    model_config = STRICT
    id: str = Field(pattern="^[0-9a-f]{24}$", description="the note's ObjectId")
    title: str
    body: str
    tags: list[str]
    created_at: datetime.datetime = Field(description="UTC, to the millisecond")
    updated_at: datetime.datetime = Field(description="UTC, to the millisecond")


class NotePage(BaseModel):
    """GET /api/notes: newest first; pass `next_cursor` as `cursor` for the next page (null on the last one)."""

    model_config = STRICT
    notes: list[Note]
    next_cursor: str | None


def parse_id(raw: str) -> ObjectId | None:
    """A note id from a URL, or None when it cannot be one (which is answered as 404, like a missing note)."""
    try:
        return ObjectId(raw)
    except (InvalidId, TypeError):
        return None


def parse_page(limit: str | None, cursor: str | None) -> tuple[int, ObjectId | None]:
    if limit is None:
        size = PAGE_DEFAULT
    else:
        try:
            size = int(limit)
        except ValueError:
            raise ValidationError("limit must be an integer", "limit") from None
        if not 1 <= size <= PAGE_MAX:
            raise ValidationError(f"limit must be between 1 and {PAGE_MAX}", "limit")
    after = None
    if cursor is not None:
        after = parse_id(cursor)
        if after is None:
            raise ValidationError("cursor is not one this API returned", "cursor")
    return size, after


def to_json(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(doc["_id"]),
        "title": doc["title"],
        "body": doc["body"],
        "tags": doc["tags"],
        "created_at": _iso(doc["created_at"]),
        "updated_at": _iso(doc["updated_at"]),
    }


def _iso(moment: datetime.datetime) -> str:
    # BSON dates are UTC milliseconds; drivers return naive datetimes unless tz_aware is set.
    return moment.replace(tzinfo=datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _now() -> datetime.datetime:
    # Truncated to milliseconds so what we return equals what the database stores.
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class Notes:
    """Note storage on any `Store`. Ids are ObjectIds, so "newest first" is `_id` descending (to the second:
    ObjectIds made by different processes in the same second sort by process, not by time), and a page cursor
    is just the last id of the previous page."""

    def __init__(self, store):
        self._store = store

    @staticmethod
    def new(fields: dict[str, Any]) -> dict[str, Any]:
        """A new note's document, not yet stored. `version` counts its changes (its ETag: app/versions.py)."""
        now = _now()
        return {"_id": ObjectId(), **fields, "created_at": now, "updated_at": now, "version": 1}

    async def create(self, fields: dict[str, Any]) -> dict[str, Any]:
        doc = self.new(fields)
        await self._store.insert_one(COLLECTION, doc)
        return doc

    async def get(self, note_id: ObjectId) -> dict[str, Any] | None:
        return await self._store.find_one(COLLECTION, {"_id": note_id})

    async def update(
        self, note_id: ObjectId, fields: dict[str, Any], match: Mapping | None = None
    ) -> dict[str, Any] | None:
        """`match`: more conditions, e.g. the versions an If-Match names (app/versions.py)."""
        return await self._store.find_one_and_update(
            COLLECTION,
            {"_id": note_id, **(match or {})},
            {"$set": {**fields, "updated_at": _now()}, "$inc": {"version": 1}},
        )

    async def delete(self, note_id: ObjectId, match: Mapping | None = None) -> bool:
        return await self._store.delete_one(COLLECTION, {"_id": note_id, **(match or {})}) == 1

    async def page(self, size: int, after: ObjectId | None) -> tuple[list[dict[str, Any]], str | None]:
        query = {"_id": {"$lt": after}} if after is not None else {}
        # One extra document tells whether there is a next page without a second query.
        docs = await self._store.find(COLLECTION, query, sort=[("_id", -1)], limit=size + 1)
        more = len(docs) > size
        docs = docs[:size]
        return docs, (str(docs[-1]["_id"]) if more else None)
