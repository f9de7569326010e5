"""/openapi.json: a valid OpenAPI 3.1 document (openapi-spec-validator), equal to the committed docs/openapi.json,
and true to the API: what the API answers validates against its schemas, and a body its request schemas refuse is
one the API refuses."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from app import notes, openapi
from app.validation import ValidationError
from app.validation import validate as validate_body
from fleet.config import ROOT
from tests.client import get, request
from tests.fleets import app_processes

COMMITTED = ROOT / "docs" / "openapi.json"


@pytest.fixture(scope="module")
def app_url(mongo_uri, tmp_path_factory):
    """One app process (status page on, as by default) on the shared test database."""
    with app_processes(tmp_path_factory.mktemp("openapi"), MONGODB_URI=mongo_uri) as start:
        yield start(FLEET_DB_MODE="async").url


@pytest.fixture(scope="module")
def served(app_url) -> dict:
    response = get(f"{app_url}/openapi.json")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    return response.json()


def schema_of(document: dict, name: str) -> jsonschema.Draft202012Validator:
    """A validator for one of the document's component schemas (its $refs resolved within the document)."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_the_served_document_is_valid_openapi_3_1(served):
    assert served["openapi"] == "3.1.0"
    validate(served, cls=OpenAPIV31SpecValidator)
    assert set(served["paths"]) == {"/api/notes", "/api/notes/{id}"}
    # The validator does reject a broken document: a schema of a type JSON Schema does not have.
    broken = copy.deepcopy(served)
    broken["components"]["schemas"]["Note"]["type"] = "note"
    with pytest.raises(OpenAPIValidationError):
        validate(broken, cls=OpenAPIV31SpecValidator)


def test_the_committed_copy_is_what_the_app_serves(served):
    committed = json.loads(COMMITTED.read_text())
    assert committed == served, "docs/openapi.json is out of date: .venv/bin/python -m app.openapi > docs/openapi.json"


def test_answers_validate_against_the_documented_schemas(app_url, served):
    note_schema, page_schema, error_schema = (schema_of(served, n) for n in ("Note", "NotePage", "Error"))
    created = request("POST", f"{app_url}/api/notes", {"title": "schema", "tags": ["a"]})
    assert created.status == 201
    note = created.json()
    note_schema.validate(note)
    note_schema.validate(request("PATCH", f"{app_url}/api/notes/{note['id']}", {"body": "b"}).json())
    note_schema.validate(get(f"{app_url}/api/notes/{note['id']}").json())
    page_schema.validate(get(f"{app_url}/api/notes?limit=2").json())
    for response in (
        request("POST", f"{app_url}/api/notes", {"title": "t", "$where": "1"}),
        get(f"{app_url}/api/notes?limit=0"),
        get(f"{app_url}/api/notes/ffffffffffffffffffffffff"),
    ):
        assert response.status in (400, 404)
        error_schema.validate(response.json())
    assert request("DELETE", f"{app_url}/api/notes/{note['id']}").status == 204
    # ...and the schemas are not so loose that anything passes.
    with pytest.raises(jsonschema.ValidationError):
        note_schema.validate({**note, "owner": "me"})
    with pytest.raises(jsonschema.ValidationError):
        note_schema.validate({**note, "created_at": "yesterday"})


# Bodies near the rules' edges: wrong types, operators, dotted keys, lengths around the limits, blank titles.
LIMITS = (notes.TAG_MAX, notes.TITLE_MAX, notes.BODY_MAX)
EDGES = ["", " ", *("x" * n for limit in LIMITS for n in (limit, limit + 1))]
TEXTS = st.text(st.sampled_from("ab $."), min_size=1, max_size=3) | st.sampled_from(EDGES)
TAGS = st.lists(TEXTS, max_size=3) | st.lists(st.just("t"), min_size=notes.TAGS_MAX, max_size=notes.TAGS_MAX + 1)
VALUES = st.none() | st.booleans() | st.integers() | TEXTS | TAGS
VALUES = VALUES | st.dictionaries(st.sampled_from(["$ne", "$gt", "x"]), VALUES, max_size=1)
BODIES = st.fixed_dictionaries({}, optional={"title": TEXTS, "body": TEXTS, "tags": TAGS}) | st.dictionaries(
    st.sampled_from(["title", "body", "tags", "$set", "a.b", "_id"]), VALUES, max_size=4
)


def api_accepts(model, body) -> bool:
    try:
        validate_body(model, body)
    except ValidationError:
        return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES, partial=st.booleans())
def test_the_request_schemas_refuse_exactly_what_the_api_refuses(body, partial):
    """In-process, no HTTP: the document's request schema and the validator the handlers run agree on every
    body. Two rules are beyond JSON Schema: lone surrogates (these bodies have none) and a title of only
    whitespace (its description says so; such a body goes to the API with a title that is not blank)."""
    model = notes.NoteChanges if partial else notes.NewNote
    schema = schema_of(openapi.document(), model.__name__)
    title = body.get("title")
    blank = isinstance(title, str) and title != "" and not title.strip()
    assert schema.is_valid(body) == api_accepts(model, {**body, "title": "t"} if blank else body), (body, partial)
