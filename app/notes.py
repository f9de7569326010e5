"""Notes: the example JSON resource. Validation and storage, written once on top of the `Store` interface.

Validation is strict by design: a note is exactly {title, body, tags}; anything else (unknown fields, `$`
operators, wrong types) is rejected before it reaches the database, so user input can never become a query
operator.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId

from app.validation import ValidationError, text

COLLECTION = "notes"
TITLE_MAX = 200
BODY_MAX = 10_000
TAGS_MAX = 20
TAG_MAX = 50
PAGE_DEFAULT = 20
PAGE_MAX = 100


def validate_note(data: Any, *, partial: bool = False) -> dict[str, Any]:
    """Return the fields to store, or raise ValidationError naming the first thing wrong."""
    if not isinstance(data, dict):
        raise ValidationError("the body must be a JSON object")
    unknown = sorted(set(data) - {"title", "body", "tags"})
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(unknown)}", unknown[0])
    if not partial and "title" not in data:
        raise ValidationError("title is required", "title")
    if partial and not data:
        raise ValidationError("nothing to update: give title, body or tags")
    fields: dict[str, Any] = {}
    if "title" in data:
        fields["title"] = text(data["title"], "title", 1, TITLE_MAX)
        if not fields["title"].strip():
            raise ValidationError("title must not be blank", "title")
    if "body" in data:
        fields["body"] = text(data["body"], "body", 0, BODY_MAX)
    if "tags" in data:
        tags = data["tags"]
        if not isinstance(tags, list) or len(tags) > TAGS_MAX:
            raise ValidationError(f"tags must be a list of at most {TAGS_MAX} strings", "tags")
        fields["tags"] = [text(tag, "tags", 1, TAG_MAX) for tag in tags]
    if not partial:
        fields.setdefault("body", "")
        fields.setdefault("tags", [])
    return fields


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

    async def create(self, fields: dict[str, Any]) -> dict[str, Any]:
        now = _now()
        doc = {"_id": ObjectId(), **fields, "created_at": now, "updated_at": now}
        await self._store.insert_one(COLLECTION, doc)
        return doc

    async def get(self, note_id: ObjectId) -> dict[str, Any] | None:
        return await self._store.find_one(COLLECTION, {"_id": note_id})

    async def update(self, note_id: ObjectId, fields: dict[str, Any]) -> dict[str, Any] | None:
        return await self._store.find_one_and_update(
            COLLECTION, {"_id": note_id}, {"$set": {**fields, "updated_at": _now()}}
        )

    async def delete(self, note_id: ObjectId) -> bool:
        return await self._store.delete_one(COLLECTION, {"_id": note_id}) == 1

    async def page(self, size: int, after: ObjectId | None) -> tuple[list[dict[str, Any]], str | None]:
        query = {"_id": {"$lt": after}} if after is not None else {}
        # One extra document tells whether there is a next page without a second query.
        docs = await self._store.find(COLLECTION, query, sort=[("_id", -1)], limit=size + 1)
        more = len(docs) > size
        docs = docs[:size]
        return docs, (str(docs[-1]["_id"]) if more else None)
