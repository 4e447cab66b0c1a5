"""JSON request bodies -> pydantic models, and their refusals -> ``(message, dotted field)``.

Every REST body is one :class:`Body` model (the contact in :mod:`normalizer.api`, the agent
actions in ``gateway``); :func:`load_body` reads the bytes, validates them and turns the first
problem into a :class:`~normalizer.intake.ContactRejectedError` whose ``field`` is the dotted
path of the bad value (``from.email``) and whose message names it (``from.email is not an email
address``). The same models describe the bodies in the OpenAPI document, so each field says what
it is.

The string types say which characters a value may hold (:mod:`normalizer.text` decides):

- :data:`Text` -- multi-line text; NUL and the other C0 controls are removed, tab and newline
  kept, line ends become ``\\n``.
- :data:`Line` -- one line (a subject, a name); line breaks and tabs fold to one space, any
  other control character is refused.
- :data:`Token` -- an identifier (a category, an ``external_id``, a group); no control character
  at all.

Each refuses lone surrogates (``"\\ud800"`` in JSON), which no database can store.

A length limit counts the characters the client sent, as the OpenAPI document's ``maxLength``
says: put ``Field(max_length=N)`` *before* the cleaning step, ``Annotated[StrictStr,
Field(max_length=N), CLEAN_TEXT]`` -- on :data:`Text` itself pydantic would check the cleaned
value, and 2000 NULs would pass a 10-character limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StrictStr,
    ValidationError,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import ErrorDetails, core_schema

from normalizer.intake import ContactRejectedError
from normalizer.text import clean_line, clean_text, has_controls

__all__ = [
    "CLEAN_LINE",
    "CLEAN_TEXT",
    "NON_BLANK_PATTERN",
    "NOT_BLANK",
    "Body",
    "Line",
    "Text",
    "Token",
    "at_most_bytes",
    "load_body",
    "not_blank",
]

B = TypeVar("B", bound="Body")

_MAX_KEY_CHARS = 64  # of an unknown key, as echoed back in the error


class Body(BaseModel):
    """A request body: unknown keys are refused (a typo must not silently drop a value)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _unicode(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid Unicode") from None
    return value


def _text(value: str) -> str:
    return clean_text(_unicode(value))


def _line(value: str) -> str:
    if has_controls(_unicode(value), lines=True):
        raise ValueError("contains control characters")
    return clean_line(value)


def _token(value: str) -> str:
    if has_controls(_unicode(value)):
        raise ValueError("contains control characters")
    return value


def not_blank(value: str) -> str:
    """Refuse an empty or all-blank value (use as ``AfterValidator(not_blank)``)."""
    if not value.strip():
        raise ValueError("must not be empty")
    return value


@dataclass(frozen=True, slots=True)
class NotBlank:
    """``Annotated[..., NOT_BLANK]``: :func:`not_blank`, published in the JSON Schema as the
    pattern ``\\S`` (at least one character that is not blank), so the OpenAPI document says
    what the check refuses."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(not_blank, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler.resolve_ref_schema(handler(schema))
        json_schema["pattern"] = NON_BLANK_PATTERN
        return json_schema


NON_BLANK_PATTERN = r"\S"
NOT_BLANK = NotBlank()


def at_most_bytes(limit: int) -> Callable[[str], str]:
    """A validator refusing a value longer than ``limit`` bytes in UTF-8."""

    def check(value: str) -> str:
        if len(value.encode("utf-8")) > limit:
            raise ValueError(f"is longer than {limit} bytes")
        return value

    return check


CLEAN_TEXT = AfterValidator(_text)
CLEAN_LINE = AfterValidator(_line)
Text = Annotated[StrictStr, CLEAN_TEXT]
Line = Annotated[StrictStr, CLEAN_LINE]
Token = Annotated[StrictStr, AfterValidator(_token)]


def load_body(model: type[B], raw: bytes) -> B:
    """``raw`` parsed as JSON and validated as ``model``; ContactRejectedError when it is not."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, huge ints
        raise ContactRejectedError("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ContactRejectedError("the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise rejection(exc) from None


def rejection(exc: ValidationError) -> ContactRejectedError:
    """The first problem pydantic found, as the contract's ``{"error", "field"}``."""
    error = exc.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(part)[:_MAX_KEY_CHARS] for part in error["loc"]) or None
    return ContactRejectedError(_message(error, field), field=field)


def _message(error: ErrorDetails, field: str | None) -> str:
    kind = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    name = field or "the body"
    if kind == "extra_forbidden":
        return f"unknown field {name}"
    if kind == "missing":
        return f"{name} is required"
    if kind == "string_type":
        return f"{name} must be a string"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{name} must be an object"
    if kind in ("string_too_long", "too_long"):
        return f"{name} is longer than {ctx.get('max_length')} characters"
    if kind == "literal_error":
        return f"{name} must be one of {ctx.get('expected')}"
    if kind == "value_error":
        return f"{name} {ctx.get('error')}"
    return f"{name}: {error['msg']}"
