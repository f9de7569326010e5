"""/api/notes: create, read, update, delete and page through notes."""

from __future__ import annotations

import tornado.web

from app import notes
from app.handlers.base import BaseHandler


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
        fields = notes.validate_note(self.json_body())
        doc = await self.repo.create(fields)
        self.set_header("Location", f"/api/notes/{doc['_id']}")
        self.write_json(notes.to_json(doc), 201)


class NoteHandler(NotesBase):
    async def get(self, raw_id: str) -> None:
        self.query_params()
        doc = await self.repo.get(self.note_id(raw_id))
        if doc is None:
            raise tornado.web.HTTPError(404, "note not found")
        self.write_json(notes.to_json(doc))

    async def patch(self, raw_id: str) -> None:
        self.query_params()
        note_id = self.note_id(raw_id)
        fields = notes.validate_note(self.json_body(), partial=True)
        doc = await self.repo.update(note_id, fields)
        if doc is None:
            raise tornado.web.HTTPError(404, "note not found")
        self.write_json(notes.to_json(doc))

    async def delete(self, raw_id: str) -> None:
        self.query_params()
        if not await self.repo.delete(self.note_id(raw_id)):
            raise tornado.web.HTTPError(404, "note not found")
        self.set_status(204)
        self.finish()
