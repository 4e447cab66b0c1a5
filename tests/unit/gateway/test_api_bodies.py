"""The REST bodies as pydantic models: what the OpenAPI document will be generated from."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, get_args

import jsonschema_rs
import pytest
from pydantic import BaseModel

from gateway.api_bodies import EscalateBody, ReplyBody, SettableStatus, StatusBody
from normalizer.api import ContactBody, contact_from_api
from normalizer.bodies import load_body
from normalizer.intake import ContactRejectedError
from router.tickets import SETTABLE_STATUSES


def undescribed(schema: dict[str, Any]) -> list[str]:
    missing = []
    for model in [schema, *schema.get("$defs", {}).values()]:
        for name, prop in model.get("properties", {}).items():
            if not prop.get("description"):
                missing.append(f"{model.get('title')}.{name}")
    return missing


@pytest.mark.parametrize("model", [ContactBody, ReplyBody, EscalateBody, StatusBody])
def test_every_field_of_every_body_is_described_for_the_openapi_document(
    model: type[BaseModel],
) -> None:
    schema = model.model_json_schema(by_alias=True)
    assert schema.get("additionalProperties") is False
    assert undescribed(schema) == []


def test_the_contact_body_publishes_its_json_name_from_not_the_python_one() -> None:
    schema = ContactBody.model_json_schema(by_alias=True)
    assert "from" in schema["properties"] and schema["required"] == ["from"]


def test_the_settable_statuses_are_the_ones_the_ticket_service_accepts() -> None:
    assert set(get_args(SettableStatus)) == set(SETTABLE_STATUSES)


SENDER = {"email": "alice@example.org"}


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (StatusBody, {"status": "closed", "note": "x" + "\x00" * 2000}, "note"),
        (EscalateBody, {"reason": "x" + "\x00" * 2000}, "reason"),
        (ContactBody, {"from": SENDER, "subject": "x" + "\r\n" * 500 + "y"}, "subject"),
        (
            ContactBody,
            {"from": {**SENDER, "name": "x" + "\r\n" * 100 + "y"}, "text": "t"},
            "from.name",
        ),
    ],
)
def test_a_length_limit_counts_the_characters_sent_not_what_cleaning_leaves(
    model: type[BaseModel], data: dict[str, Any], field: str
) -> None:
    # The OpenAPI document says maxLength; schemathesis found a note of 2001 characters
    # accepted because NULs were dropped before the limit was checked.
    with pytest.raises(ContactRejectedError) as refused:
        load_body(model, json.dumps(data).encode())
    assert refused.value.field == field
    assert "longer than" in str(refused.value)


def handle(model: type[BaseModel], data: dict[str, Any]) -> object:
    """What the API does with the body: a contact is also checked for a subject or a text."""
    raw = json.dumps(data).encode()
    if model is ContactBody:
        return contact_from_api(raw, received_at=datetime.now(UTC))
    return load_body(model, raw)


@pytest.mark.parametrize(
    ("model", "refused", "accepted"),
    [
        (ReplyBody, {"text": " \n "}, {"text": " x "}),
        (EscalateBody, {"reason": ""}, {"reason": "needs L2"}),
        (ContactBody, {"from": SENDER, "subject": " "}, {"from": SENDER, "subject": "hi"}),
        (ContactBody, {"from": {"name": "Al"}, "text": "x"}, {"from": SENDER, "text": "x"}),
        (ContactBody, {"from": {"email": "a@b"}, "text": "x"}, {"from": SENDER, "text": "x"}),
    ],
)
def test_what_the_api_refuses_for_blankness_or_a_missing_sender_the_schema_refuses_too(
    model: type[BaseModel], refused: dict[str, Any], accepted: dict[str, Any]
) -> None:
    # schemathesis generates from the schema: a check it cannot see fuzzes only 400s.
    schema = model.model_json_schema(by_alias=True)
    with pytest.raises(ContactRejectedError):
        handle(model, refused)
    assert not jsonschema_rs.validator_for(schema).is_valid(refused)
    handle(model, accepted)
    assert jsonschema_rs.validator_for(schema).is_valid(accepted)
