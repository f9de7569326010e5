"""Request validation shared by every resource: the JSON body, query parameters, and text fit for the database.

Everything a client sends is checked here or in the resource's own validator (`app.notes.validate_note`) before
it reaches the database, and every problem is a `ValidationError`, which `BaseHandler` answers as a JSON 400
naming the field. Query parameters are checked by name as well as by value: `?cursor[$ne]=x` is not a cursor
with an operator in it but an unknown parameter, refused like any other, so no spelling of a parameter can turn
into a query operator.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any


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


def text(value: Any, field: str, low: int, high: int) -> str:
    """`value` if it is a string of `low` to `high` characters that the database can store."""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string", field)
    if not low <= len(value) <= high:
        raise ValidationError(f"{field} must be {low} to {high} characters long", field)
    try:
        # JSON may carry lone surrogates ("\ud800"); BSON strings are UTF-8, so the driver would fail on them.
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{field} must be valid Unicode text (no lone surrogates)", field) from None
    return value
