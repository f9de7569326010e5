"""Bad input straight at an app process, in every mode: every answer is a JSON 4xx naming what is wrong, never a
500, and nothing reaches the database as an operator. (Through nginx: tests/whole_fleet/test_hardening_fleet.py.)"""

import json

import pytest

from tests import raw_http
from tests.client import get, request


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("cursor[$ne]=x", "cursor[$ne]"),
        ("limit[$gt]=", "limit[$gt]"),
        ("$where=1", "$where"),
        ("limit.x=1", "limit.x"),
        ("title=x", "title"),
    ],
)
def test_query_parameters_that_are_not_ours_are_refused_by_name(app_url, query, field):
    response = get(f"{app_url}/api/notes?{query}")
    assert response.status == 400
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["field"] == field
    assert body["error"].startswith(f"unknown query parameter(s): {field}; this endpoint accepts limit, cursor")


def test_query_parameters_count_and_encoding(app_url):
    twice = get(f"{app_url}/api/notes?limit=1&limit=2")
    assert (twice.status, twice.json()) == (400, {"error": "limit must be given at most once", "field": "limit"})
    blank = get(f"{app_url}/api/notes?limit=")
    assert (blank.status, blank.json()["field"]) == (400, "limit")
    not_utf8 = get(f"{app_url}/api/notes?limit=%ff")
    assert not_utf8.status == 400 and "Invalid unicode" in not_utf8.json()["error"]
    # Endpoints that take no parameters say so.
    create = request("POST", f"{app_url}/api/notes?title=x", {"title": "x"})
    assert create.status == 400 and create.json()["error"].endswith("this endpoint takes none")
    assert get(f"{app_url}/api/notes/ffffffffffffffffffffffff?x=1").status == 400
    assert request("DELETE", f"{app_url}/api/notes/ffffffffffffffffffffffff?x=1").status == 400


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[" * 100_000, "the body is nested too deeply"),
        (b'{"title": ' * 50_000, "the body is nested too deeply"),
        (b"\xff\xfe{", "the body is not valid JSON"),
        (b"", "the body is not valid JSON"),
        (b'{"title": 1e999999}', "title must be a string"),
        (b'{"title": ' + b"9" * 5000 + b"}", "the body is not valid JSON"),
        (b'{"title": "\\ud800"}', "title must be valid Unicode text (no lone surrogates)"),
        (b'{"title": "ok", "tags": ["\\udfff"]}', "tags must be valid Unicode text (no lone surrogates)"),
        (b'{"title": "ok", "title": {"$ne": null}}', "title must be a string"),
        (b'{"title": "ok", "tags": [{"$gt": ""}]}', "tags must be a string"),
        (b'{"title": "ok", "a.b": 1}', "unknown field(s): a.b"),
        (b"null", "the body must be a JSON object"),
    ],
)
def test_malformed_and_hostile_bodies_are_json_400s(app_url, raw, message):
    response = request("POST", f"{app_url}/api/notes", raw=raw)
    assert response.status == 400, response.body[:200]
    assert response.json()["error"].startswith(message)


def test_patch_takes_no_operators_either(app_url):
    note = request("POST", f"{app_url}/api/notes", {"title": "target"}).json()
    for body in ({"$set": {"title": "x"}}, {"title": {"$unset": ""}}, {"tags": {"$push": "x"}}, {"body.x": "y"}):
        response = request("PATCH", f"{app_url}/api/notes/{note['id']}", body)
        assert response.status == 400, body
    assert get(f"{app_url}/api/notes/{note['id']}").json() == note
    # The database is shared by every module: leave no note behind (test_notes_api pages through them all).
    assert request("DELETE", f"{app_url}/api/notes/{note['id']}").status == 204


def test_ids_and_paths_that_cannot_be_ours_are_404s(app_url):
    for path in ("/api/notes/%ff", '/api/notes/{"$ne":1}', "/api/notes/" + "f" * 25, "/api/notes/%24ne"):
        response = get(app_url + path)
        assert response.status in (400, 404), path
        assert "error" in response.json()


TORNADO_EARLY_ERRORS = [
    ("body over max_body_size", b"POST /api/notes HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n{"),
    ("not HTTP", b"NOT HTTP AT ALL\r\n\r\n"),
    ("control character in a header value", b"GET /json HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n"),
    ("Host outside RFC 3986", b'GET /json HTTP/1.1\r\nHost: a"b\r\n\r\n'),
    ("two different Content-Lengths", b"POST /api/notes HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n{"),
]


@pytest.mark.parametrize(("what", "raw"), TORNADO_EARLY_ERRORS, ids=[e[0] for e in TORNADO_EARLY_ERRORS])
def test_tornados_own_early_errors_are_json_too(app_url, what, raw):
    """What Tornado answers before any handler runs: its hard-coded bodyless 400, made JSON by
    app/early_errors.py. nginx refuses most of these itself, but forwards a control character in a header value
    and a Host that Tornado refuses (tests/whole_fleet/test_hardening_fleet.py)."""
    status, headers, body = raw_http.parse(raw_http.exchange(app_url, raw))
    assert (status, headers["content-type"], headers["connection"]) == (400, "application/json", "close"), what
    assert json.loads(body)["error"].startswith("bad request: malformed request line, headers or body framing")
    assert get(f"{app_url}/healthz").status == 200
