"""The REST bodies as pydantic models: what the OpenAPI document will be generated from."""

from __future__ import annotations

from typing import Any, get_args

import pytest
from pydantic import BaseModel

from gateway.api_bodies import EscalateBody, ReplyBody, SettableStatus, StatusBody
from normalizer.api import ContactBody
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
