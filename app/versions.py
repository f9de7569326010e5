"""Note versions as ETags, and If-Match: two concurrent updates can no longer silently lose one.

Every note carries `version` (1 when created, +1 on every change, app/notes.py). Its ETag is the strong tag
``"<version>"``. A PATCH or DELETE with ``If-Match`` applies only to a note still at one of the versions it names;
the check and the change are one database operation (the versions are part of the update's filter), so no other
write can slip in between. A note that exists but no longer matches is a 412, one that does not exist a 404.
``If-Match: *`` matches any existing note. Weak tags (``W/"3"``) never match: RFC 9110 requires the strong
comparison for If-Match. Notes stored before versions existed count as version 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tornado.web


def etag(doc: Mapping[str, Any]) -> str:
    return f'"{doc.get("version", 0)}"'


def if_match(request) -> dict | None:
    """The filter condition an If-Match header asks for; None without the header (or with ``*``)."""
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    versions: list[int | None] = []
    for raw in header.split(","):
        tag = raw.strip()
        if len(tag) > 2 and tag[0] == tag[-1] == '"' and tag[1:-1].isdigit():
            versions.append(int(tag[1:-1]))
    if 0 in versions:
        versions.append(None)  # a note from before versions: no `version` field, which null matches
    # No tag this API could have sent: nothing matches, so an existing note answers 412.
    return {"version": {"$in": versions}}


async def missing_or_changed(repo, note_id, match: dict | None) -> tornado.web.HTTPError:
    """Why an update or delete under `match` found nothing: 404 if the note is gone, else 412."""
    if match is not None and await repo.get(note_id) is not None:
        return tornado.web.HTTPError(412, "the note changed since you read it (If-Match): read it again")
    return tornado.web.HTTPError(404, "note not found")
