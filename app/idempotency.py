"""Idempotent creates: ``POST /api/notes`` with an ``Idempotency-Key`` header is applied at most once.

A client whose POST timed out cannot know whether it was applied; with a key it simply sends the same request
again. The first request with a key stores a record under that key (the key is the record's ``_id``, so the
database's unique index on ``_id`` decides, across every process at once, which request is first) holding a
fingerprint of the body and the complete note it creates, with that note's id. Then:

- a repeat with the same key and the same body gets the first answer: 201, the same note, ``Idempotent-Replayed:
  true``; it never inserts a second note. If the first request has not inserted the note yet (it is still running,
  or its process died in between), the repeat inserts it itself, under the id in the record: whichever insert comes
  second fails on the note's own ``_id``, so there is exactly one note either way;
- the same key with a different body is a 422: the key names one operation, not a slot to reuse;
- records expire after `KEY_TTL` (a TTL index on ``created_at``), so a key may be reused after a day.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import re
from typing import Any

import tornado.web
from pymongo.errors import DuplicateKeyError
from pymongo.operations import UpdateOne

from app import notes
from app.validation import ValidationError

COLLECTION = "idempotency_keys"
HEADER = "Idempotency-Key"
# Visible ASCII, like the keys clients generate (UUIDs, random tokens); the length bounds what we store.
KEY = re.compile(r"[\x21-\x7e]{1,255}\Z")
KEY_TTL = datetime.timedelta(hours=24)


class IdempotentCreates:
    """Creates on a `Store` made safe to repeat. One per process (BaseHandler reads it from the app's settings)."""

    def __init__(self, store):
        self._store = store
        self._indexed = False

    async def create(self, key: str, fields: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """(the note, whether this was a repeat) for a create under `key`."""
        if not self._indexed:
            await self._store.create_index(
                COLLECTION, [("created_at", 1)], expireAfterSeconds=int(KEY_TTL.total_seconds())
            )
            self._indexed = True
        fingerprint = body_fingerprint(fields)
        record = {"_id": key, "fingerprint": fingerprint, "note": notes.Notes.new(fields), "done": False}
        record["created_at"] = record["note"]["created_at"]
        repeat = False
        try:
            await self._store.insert_one(COLLECTION, record)
        except DuplicateKeyError:
            repeat = True
            found = await self._store.find_one(COLLECTION, {"_id": key})
            if found is not None:  # else it expired this instant: ours is the first again, and inserted below
                record = found
            if record["fingerprint"] != fingerprint:
                raise tornado.web.HTTPError(
                    422, "this Idempotency-Key was already used with a different body; use a new key"
                ) from None
        if not record["done"]:
            # A DuplicateKeyError: inserted by the first request, or by a repeat running at the same moment.
            with contextlib.suppress(DuplicateKeyError):
                await self._store.insert_one(notes.COLLECTION, record["note"])
            # Not durable: if this mark is lost, a repeat only tries the insert again and finds the note there.
            await self._store.bulk_update(
                COLLECTION, [UpdateOne({"_id": key}, {"$set": {"done": True}})], durable=False
            )
        return record["note"], repeat


def key_from(request) -> str | None:
    """The request's Idempotency-Key, None without one; a malformed one is a 400."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not KEY.match(key):
        raise ValidationError(f"{HEADER} must be 1 to 255 visible ASCII characters", HEADER)
    return key


def body_fingerprint(fields: dict[str, Any]) -> str:
    """The same for the same note fields, however the JSON was spelled (key order, spacing, escapes)."""
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
