"""Request validation shared by every resource: the JSON body, query parameters, and pydantic models' verdicts.

Everything a client sends is checked here before it reaches the database: a body against the resource's pydantic
model (`app.notes.NewNote`, `app.notes.NoteChanges`) through `validate`, query parameters by `query_params`. Every
problem is a `ValidationError`, which `BaseHandler` answers as a JSON 400 naming the field. Query parameters are
checked by name as well as by value: `?cursor[$ne]=x` is not a cursor with an operator in it but an unknown
parameter, refused like any other, so no spelling of a parameter can turn into a query operator.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import pydantic

Model = TypeVar("Model", bound=pydantic.BaseModel)


class ValidationError(ValueError):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


def parse_json(body: bytes) -> Any:
    """The request body as JSON, or ValidationError saying why it is not."""
    try:
        return json.loads(body)
    except RecursionError:
        # json.loads recurses once per nesting level: a 256 KB body of "[" would otherwise be a 500.
        raise ValidationError("the body is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValidationError(f"the body is not valid JSON: {exc}") from None


def query_params(
    arguments: Mapping[str, list[bytes]], allowed: tuple[str, ...], get: Callable[[str], str]
) -> dict[str, str]:
    """The allowed query parameters present, each given at most once; anything else is a ValidationError.

    `arguments` is Tornado's `request.query_arguments`; `get` reads one value the way Tornado's
    `get_query_argument` does (UTF-8 checked, control characters removed), which is what the handler would see.
    """
    unknown = sorted(name for name in arguments if name not in allowed)
    if unknown:
        listed = ", ".join(unknown)
        accepted = f"; this endpoint accepts {', '.join(allowed)}" if allowed else "; this endpoint takes none"
        raise ValidationError(f"unknown query parameter(s): {listed}{accepted}", unknown[0])
    for name, values in arguments.items():
        if len(values) > 1:
            raise ValidationError(f"{name} must be given at most once", name)
    return {name: get(name) for name in arguments}


def validate(model: type[Model], data: Any) -> Model:
    """`data` (a parsed JSON body) as an instance of `model`, or ValidationError naming the first thing wrong.

    Models are declared strict with `extra="forbid"`, so a wrong type is never coerced and an unknown field (a `$`
    operator, a dotted path) is refused. The first thing wrong is, in this order: unknown fields (all of them
    named), a required field missing, then the fields in their declared order.
    """
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise _first_problem(model, data, exc.errors(include_url=False, include_input=False)) from None


def optional() -> Any:
    """A field a body may leave out, and that is never null when given: its None default is not validated, not
    stored (`model_dump(exclude_unset=True)`) and not in the schema, so an explicit null is still "must be a
    string"."""
    return pydantic.Field(default=None, json_schema_extra=lambda schema: schema.pop("default", None))


def _first_problem(model: type[pydantic.BaseModel], data: Any, errors: list[Any]) -> ValidationError:
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
    if errors[0]["type"] == "string_unicode" and errors[0]["loc"] == ():
        # A key with a lone surrogate: pydantic stops at it, before it compares the keys with the fields.
        unknown = sorted(key for key in data if key not in model.model_fields)
    if unknown:
        return ValidationError(f"unknown field(s): {', '.join(unknown)}", unknown[0])
    missing = [e for e in errors if e["type"] == "missing"]
    error = missing[0] if missing else errors[0]
    loc = error["loc"]
    if not loc:
        if error["type"] in ("model_type", "model_attributes_type", "dict_type"):
            return ValidationError("the body must be a JSON object")
        return ValidationError(error["msg"])  # a model validator's own message (PydanticCustomError)
    field = str(loc[0])
    return ValidationError(f"{field} {_describe(error, model)}", field)


def _describe(error: Any, model: type[pydantic.BaseModel]) -> str:
    """What `error` (one of pydantic's) says about the value at its location, in this API's words."""
    kind = error["type"]
    if kind == "missing":
        return "is required"
    if kind == "string_type":
        return "must be a string"
    if kind in ("string_too_short", "string_too_long"):
        schema = _schema_at(model, error["loc"])
        return f"must be {schema.get('minLength', 0)} to {schema['maxLength']} characters long"
    if kind == "string_unicode":
        # JSON may carry lone surrogates ("\ud800"); BSON strings are UTF-8, so the driver would fail on them.
        return "must be valid Unicode text (no lone surrogates)"
    if kind in ("list_type", "too_long"):
        schema = _schema_at(model, error["loc"])
        return f"must be a list of at most {schema['maxItems']} {schema['items']['type']}s"
    return error["msg"]  # a field validator's own message (PydanticCustomError), e.g. "must not be blank"


@functools.cache
def _schema(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def _schema_at(model: type[pydantic.BaseModel], loc: tuple[str | int, ...]) -> dict[str, Any]:
    """The JSON schema of the value at `loc` (a field name, then list indexes): its declared limits, for messages
    that give both bounds where pydantic's error carries only the one that was crossed."""
    schema = _schema(model)
    for step in loc:
        schema = schema["items"] if isinstance(step, int) else schema["properties"][step]
    return schema
