"""/api/notes over real HTTP against a real app process, in every mode (the `app_url` fixture)."""

import pytest

from tests.client import get, request


def create(app_url, **fields):
    response = request("POST", f"{app_url}/api/notes", {"title": "a title", **fields})
    assert response.status == 201, response.body
    return response.json()


def test_create_read_update_delete(app_url):
    note = create(app_url, body="text", tags=["x", "y"])
    assert set(note) == {"id", "title", "body", "tags", "created_at", "updated_at"}
    assert (note["title"], note["body"], note["tags"]) == ("a title", "text", ["x", "y"])
    assert note["created_at"] == note["updated_at"]

    assert get(f"{app_url}/api/notes/{note['id']}").json() == note

    patched = request("PATCH", f"{app_url}/api/notes/{note['id']}", {"body": "new"})
    assert patched.status == 200
    assert patched.json()["body"] == "new" and patched.json()["title"] == "a title"
    assert patched.json()["updated_at"] >= note["updated_at"]
    assert get(f"{app_url}/api/notes/{note['id']}").json()["body"] == "new"

    assert request("DELETE", f"{app_url}/api/notes/{note['id']}").status == 204
    gone = get(f"{app_url}/api/notes/{note['id']}")
    assert gone.status == 404 and gone.json() == {"error": "note not found"}
    assert request("DELETE", f"{app_url}/api/notes/{note['id']}").status == 404


def test_defaults_for_optional_fields(app_url):
    note = create(app_url)
    assert (note["body"], note["tags"]) == ("", [])


def test_list_is_newest_first_and_pages_with_a_cursor(app_url):
    ids = [create(app_url, title=f"page {i}")["id"] for i in range(5)]
    # Other tests write notes to the same database, so walk every page (bounded), not just the first few.
    seen, cursor = [], None
    for _ in range(10_000):
        url = f"{app_url}/api/notes?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = get(url).json()
        assert len(page["notes"]) <= 2
        seen += [n["id"] for n in page["notes"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert cursor is None
    assert len(seen) == len(set(seen))  # no note twice
    mine = [i for i in seen if i in ids]
    assert mine == list(reversed(ids))  # newest first


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "title", "title is required"),
        ({"title": ""}, "title", "title must be 1 to 200 characters long"),
        ({"title": "   "}, "title", "title must not be blank"),
        ({"title": "x" * 201}, "title", "title must be 1 to 200 characters long"),
        ({"title": 5}, "title", "title must be a string"),
        ({"title": {"$ne": None}}, "title", "title must be a string"),
        ({"title": "t", "body": "x" * 10_001}, "body", "body must be 0 to 10000 characters long"),
        ({"title": "t", "tags": "a"}, "tags", "tags must be a list of at most 20 strings"),
        ({"title": "t", "tags": [1]}, "tags", "tags must be a string"),
        ({"title": "t", "owner": "me"}, "owner", "unknown field(s): owner"),
        ({"title": "t", "$where": "1"}, "$where", "unknown field(s): $where"),
        ([1, 2], None, "the body must be a JSON object"),
    ],
)
def test_invalid_notes_are_rejected_with_a_json_error(app_url, body, field, message):
    response = request("POST", f"{app_url}/api/notes", body)
    assert response.status == 400
    assert response.headers["Content-Type"] == "application/json"
    expected = {"error": message} | ({"field": field} if field else {})
    assert response.json() == expected


def test_malformed_json_is_a_400(app_url):
    response = request("POST", f"{app_url}/api/notes", raw=b'{"title": ')
    assert response.status == 400
    assert response.json()["error"].startswith("the body is not valid JSON")


def test_bad_ids_and_paging_parameters(app_url):
    assert get(f"{app_url}/api/notes/not-an-id").status == 404
    assert request("PATCH", f"{app_url}/api/notes/ffffffffffffffffffffffff", {"title": "x"}).status == 404
    assert get(f"{app_url}/api/notes?limit=0").json() == {"error": "limit must be between 1 and 100", "field": "limit"}
    assert get(f"{app_url}/api/notes?limit=x").status == 400
    assert get(f"{app_url}/api/notes?cursor=zzz").json()["field"] == "cursor"
    note = create(app_url)
    assert request("PATCH", f"{app_url}/api/notes/{note['id']}", {}).status == 400


def test_unknown_paths_and_methods_answer_json(app_url):
    missing = get(f"{app_url}/nope")
    assert missing.status == 404 and missing.json() == {"error": "no such endpoint: /nope"}
    wrong = request("PUT", f"{app_url}/api/notes")
    assert wrong.status == 405 and wrong.json() == {"error": "method not allowed"}


def test_probes(app_url):
    assert get(f"{app_url}/healthz").json() == {"status": "ok"}
    assert request("HEAD", f"{app_url}/healthz").status == 200
    ready = get(f"{app_url}/readyz").json()
    assert ready["status"] == "ready" and ready["port"] == int(app_url.rsplit(":", 1)[1])
    assert ready["db_mode"] in ("motor", "threads", "async")
