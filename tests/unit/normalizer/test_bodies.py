"""load_body: JSON bytes -> a pydantic body model; the first problem -> (message, dotted field)."""

from __future__ import annotations

import json
from typing import Annotated

import pytest
from pydantic import AfterValidator, Field

from normalizer.bodies import Body, Line, Text, Token, load_body, not_blank
from normalizer.intake import ContactRejectedError


class Inner(Body):
    code: Token


class Outer(Body):
    inner: Inner
    title: Annotated[Line, Field(max_length=10)] | None = None
    text: Text = ""
    key: Annotated[Token, AfterValidator(not_blank)] | None = None


def refusal(raw: bytes) -> tuple[str, str | None]:
    with pytest.raises(ContactRejectedError) as info:
        load_body(Outer, raw)
    return str(info.value), info.value.field


def body(**values: object) -> bytes:
    return json.dumps({"inner": {"code": "x"}, **values}).encode()


@pytest.mark.parametrize(
    ("raw", "message", "field"),
    [
        (b"{nope", "the body is not valid JSON", None),
        (b"[1]", "the body must be a JSON object", None),
        (b"{}", "inner is required", "inner"),
        (b'{"inner": 3}', "inner must be an object", "inner"),
        (b'{"inner": {"code": 3}}', "inner.code must be a string", "inner.code"),
        (b'{"inner": {"code": "x", "cod": 1}}', "unknown field inner.cod", "inner.cod"),
        (body(title="x" * 11), "title is longer than 10 characters", "title"),
        (body(title="a\x00b"), "title contains control characters", "title"),
        (body(key="a\nb"), "key contains control characters", "key"),
        (body(key=" "), "key must not be empty", "key"),
        (body(text="\ud800"), "text is not valid Unicode", "text"),
    ],
)
def test_each_problem_names_the_dotted_field_in_the_message_and_the_field(
    raw: bytes, message: str, field: str | None
) -> None:
    assert refusal(raw) == (message, field)


def test_an_unknown_key_is_echoed_back_at_most_64_characters_long() -> None:
    message, field = refusal(body(**{"k" * 500: 1}))
    assert field == "k" * 64 and message == f"unknown field {'k' * 64}"


def test_text_loses_nul_and_c0_controls_but_keeps_tab_and_newline() -> None:
    parsed = load_body(Outer, body(text="a\x00b\x1b[1m\tc\r\nd\re\x7f"))
    assert parsed.text == "ab[1m\tc\nd\ne"


def test_a_line_folds_line_breaks_and_tabs_to_single_spaces() -> None:
    parsed = load_body(Outer, body(title=" a\r\n\tb\u2028c "))
    assert parsed.title == "a b c"
