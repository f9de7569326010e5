"""/api/notes: create, read, update, delete and page through notes."""

from __future__ import annotations

import tornado.web

from app import idempotency, notes, versions
from app.handlers.base import BaseHandler
from app.validation import validate


class NotesBase(BaseHandler):
    @property
    def repo(self) -> notes.Notes:
        return notes.Notes(self.store)

    def note_id(self, raw: str):
        note_id = notes.parse_id(raw)
        if note_id is None:
            raise tornado.web.HTTPError(404, "note not found")
        return note_id


class NotesHandler(NotesBase):
    async def get(self) -> None:
        query = self.query_params("limit", "cursor")
        size, after = notes.parse_page(query.get("limit"), query.get("cursor"))
        docs, cursor = await self.repo.page(size, after)
        self.write_json({"notes": [notes.to_json(d) for d in docs], "next_cursor": cursor})

    async def post(self) -> None:
        self.query_params()
        fields = validate(notes.NewNote, self.json_body()).model_dump()
        key = idempotency.key_from(self.request)  # a create safe to repeat (app/idempotency.py)
        if key is None:
            doc = await self.repo.create(fields)
        else:
            creates = self.settings.setdefault("idempotent_creates", idempotency.IdempotentCreates(self.store))
            doc, repeat = await creates.create(key, fields)
            if repeat:
                self.set_header("Idempotent-Replayed", "true")
        self.set_header("Location", f"/api/notes/{doc['_id']}")
        self.set_header("ETag", versions.etag(doc))
        self.write_json(notes.to_json(doc), 201)


class NoteHandler(NotesBase):
    async def get(self, raw_id: str) -> None:
        self.query_params()
        doc = await self.repo.get(self.note_id(raw_id))
        if doc is None:
            raise tornado.web.HTTPError(404, "note not found")
        self.set_header("ETag", versions.etag(doc))  # what a PATCH or DELETE may name in If-Match
        self.write_json(notes.to_json(doc))

    async def patch(self, raw_id: str) -> None:
        self.query_params()
        note_id = self.note_id(raw_id)
        fields = validate(notes.NoteChanges, self.json_body()).model_dump(exclude_unset=True)
        match = versions.if_match(self.request)  # app/versions.py: 412 if the note changed meanwhile
        doc = await self.repo.update(note_id, fields, match)
        if doc is None:
            raise await versions.missing_or_changed(self.repo, note_id, match)
        self.set_header("ETag", versions.etag(doc))
        self.write_json(notes.to_json(doc))

    async def delete(self, raw_id: str) -> None:
        self.query_params()
        note_id, match = self.note_id(raw_id), versions.if_match(self.request)
        if not await self.repo.delete(note_id, match):
            raise await versions.missing_or_changed(self.repo, note_id, match)
        self.set_status(204)
        self.finish()
