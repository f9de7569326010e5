"""Writes safe to retry, over real HTTP against a real app process in every mode (the `app_url` fixture):
Idempotency-Key on POST /api/notes (app/idempotency.py) and ETag / If-Match on notes (app/versions.py).

How many notes exist is read from the database itself (pymongo on the test's embedded server), not through the
API under test."""

from __future__ import annotations

import concurrent.futures
import uuid

import pytest
from pymongo import MongoClient

from tests.client import get, request


@pytest.fixture(scope="module")
def notes_collection(mongo_uri):
    client = MongoClient(mongo_uri)
    try:
        yield client["fleet"]["notes"]
    finally:
        client.close()


def post(app_url, body, key=None):
    headers = {"Idempotency-Key": key} if key is not None else {}
    return request("POST", f"{app_url}/api/notes", body, headers=headers)


def test_a_repeated_create_with_one_key_gives_the_first_answer_and_one_note(app_url, notes_collection):
    key, title = str(uuid.uuid4()), f"idem {uuid.uuid4()}"
    first = post(app_url, {"title": title, "tags": ["a"]}, key)
    again = post(app_url, {"tags": ["a"], "title": title}, key)  # same body, spelled differently
    assert (first.status, again.status) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"]
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert notes_collection.count_documents({"title": title}) == 1
    # Without a key, the same body is a new note each time, as before.
    assert post(app_url, {"title": title}).status == 201
    assert notes_collection.count_documents({"title": title}) == 2


def test_five_simultaneous_creates_with_one_key_make_one_note(app_url, notes_collection):
    key, title = str(uuid.uuid4()), f"race {uuid.uuid4()}"
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _: post(app_url, {"title": title}, key), range(5)))
    assert [a.status for a in answers] == [201] * 5
    assert len({a.json()["id"] for a in answers}) == 1
    assert notes_collection.count_documents({"title": title}) == 1


def test_a_key_reused_with_another_body_is_refused(app_url, notes_collection):
    key, title = str(uuid.uuid4()), f"reuse {uuid.uuid4()}"
    assert post(app_url, {"title": title}, key).status == 201
    other = post(app_url, {"title": title + " changed"}, key)
    assert other.status == 422
    assert "different body" in other.json()["error"]
    assert notes_collection.count_documents({"title": {"$regex": f"^{title}"}}) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "caf\u00e9"])
def test_a_malformed_key_is_a_400(app_url, key):
    answer = request(
        "POST",
        f"{app_url}/api/notes",
        raw=b'{"title": "t"}',
        headers={"Idempotency-Key": key.encode().decode("latin-1")},
    )
    assert answer.status == 400
    assert answer.json()["field"] == "Idempotency-Key"


def test_if_match_applies_a_change_only_to_the_version_read(app_url):
    created = post(app_url, {"title": "v1"})
    url = f"{app_url}/api/notes/{created.json()['id']}"
    etag = get(url).headers["ETag"]
    assert etag == created.headers["ETag"]

    changed = request("PATCH", url, {"title": "v2"}, headers={"If-Match": etag})
    assert changed.status == 200
    assert changed.json()["title"] == "v2"
    assert changed.headers["ETag"] != etag
    assert get(url).headers["ETag"] == changed.headers["ETag"]

    # A second writer still holding the first version loses, visibly, and changes nothing.
    stale = request("PATCH", url, {"title": "lost update"}, headers={"If-Match": etag})
    assert stale.status == 412
    assert "changed" in stale.json()["error"]
    assert get(url).json()["title"] == "v2"
    assert request("DELETE", url, headers={"If-Match": etag}).status == 412
    assert request("DELETE", url, headers={"If-Match": "W/" + changed.headers["ETag"]}).status == 412  # weak: never

    # `*` and a list naming the current version match; then the note is gone: 404, not 412.
    assert request("PATCH", url, {"body": "b"}, headers={"If-Match": "*"}).status == 200
    current = get(url).headers["ETag"]
    assert request("DELETE", url, headers={"If-Match": f'"999", {current}'}).status == 204
    assert request("PATCH", url, {"body": "c"}, headers={"If-Match": current}).status == 404
    assert request("DELETE", url, headers={"If-Match": current}).status == 404


def test_without_if_match_updates_stay_unconditional(app_url):
    created = post(app_url, {"title": "plain"})
    url = f"{app_url}/api/notes/{created.json()['id']}"
    assert request("PATCH", url, {"title": "one"}).status == 200
    assert request("PATCH", url, {"title": "two"}).status == 200
    assert get(url).headers["ETag"] == '"3"'
    assert request("DELETE", url).status == 204
