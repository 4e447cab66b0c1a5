"""``POST /api/contacts`` body -> :class:`Contact`. Pure: no I/O, no clock, no framework.

The body is the contract's shape, validated by :class:`ContactBody`::

    {"from": {"email": "...", "phone": "...", "name": "..."},
     "subject": "...", "text": "...", "category": "...", "external_id": "..."}

Rules (every refusal is a :class:`ContactRejectedError` naming the dotted field):

- ``from`` is an object with an ``email`` or a ``phone`` (or both). ``email`` must be one
  address (:mod:`normalizer.addresses`) and is case-folded; ``phone`` is converted to E.164
  (``+15550100``) with US as the default region.
- ``subject`` (at most 998 characters, one line) and ``text`` (at most 1 MiB as UTF-8) are
  optional but not both empty. Line breaks in the subject and name fold to spaces; other control
  characters there are refused. NUL and the other C0 controls are removed from the text (tab
  and newline stay).
- ``category`` (at most 100 characters) and ``external_id`` (at most 200) are optional. With an
  ``external_id``, a retry of the same body is a duplicate of the first contact; without one
  every call is a new contact (its id is ``api-<uuid4>``). Whether a retry is "the same" is
  :func:`content_digest` of the two bodies.
- Every value present must be a string (``null`` counts as absent). Unknown keys are refused so
  that a typo such as ``extrenal_id`` cannot silently turn off idempotency.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, StrictStr, model_validator

from normalizer.addresses import EMAIL_ADDRESS, MAX_ADDRESS_CHARS, is_email_address
from normalizer.bodies import (
    CLEAN_LINE,
    NON_BLANK_PATTERN,
    NOT_BLANK,
    Body,
    Text,
    Token,
    at_most_bytes,
    load_body,
)
from normalizer.contact import Channel, Contact, Hints, Party
from normalizer.intake import ContactRejectedError
from normalizer.phone import to_e164

__all__ = ["ContactBody", "Sender", "contact_from_api", "content_digest"]

MAX_SUBJECT_CHARS = 998
MAX_TEXT_BYTES = 1024 * 1024
MAX_NAME_CHARS = 200
MAX_EMAIL_CHARS = MAX_ADDRESS_CHARS
MAX_PHONE_CHARS = 64
MAX_CATEGORY_CHARS = 100
MAX_EXTERNAL_ID_CHARS = 200


def _email(value: str) -> str | None:
    if not value.strip():
        return None
    email = value.strip().casefold()
    if not is_email_address(email):
        raise ValueError("is not an email address")
    return email


def _phone(value: str) -> str | None:
    if not value.strip():
        return None
    phone = to_e164(value.strip())
    if phone is None:
        raise ValueError("is not a phone number")
    return phone


def _blank_is_none(value: str) -> str | None:
    return value.strip() or None


def _one_given(*names: str, pattern: str) -> dict[str, Any]:
    """JSON Schema for "at least one of ``names`` is a string matching ``pattern``"."""
    return {
        "anyOf": [
            {"required": [name], "properties": {name: {"type": "string", "pattern": pattern}}}
            for name in names
        ]
    }


class Sender(Body):
    """Who the contact is from: an email, a phone, or both, and optionally a name."""

    model_config = ConfigDict(
        json_schema_extra=_one_given("email", "phone", pattern=NON_BLANK_PATTERN)
    )

    email: Annotated[Token, Field(max_length=MAX_EMAIL_CHARS), AfterValidator(_email)] | None = (
        Field(
            default=None,
            description="The requester's email address; acknowledgements and replies go here.",
            examples=["alice@example.org"],
            json_schema_extra={"pattern": rf"^ *{EMAIL_ADDRESS.pattern} *$"},
        )
    )
    phone: Annotated[Token, Field(max_length=MAX_PHONE_CHARS), AfterValidator(_phone)] | None = (
        Field(
            default=None,
            description="The requester's phone number, E.164 or national (US by default).",
            examples=["+14155550100"],
        )
    )
    name: (
        Annotated[
            StrictStr, Field(max_length=MAX_NAME_CHARS), CLEAN_LINE, AfterValidator(_blank_is_none)
        ]
        | None
    ) = Field(default=None, description="The requester's name as they gave it.")

    @model_validator(mode="after")
    def _reachable(self) -> Sender:
        if self.email is None and self.phone is None:
            raise ValueError("needs an email or a phone")
        return self


class ContactBody(Body):
    """``POST /api/contacts``: one contact from a web form or another tool."""

    model_config = ConfigDict(
        json_schema_extra=_one_given("subject", "text", pattern=NON_BLANK_PATTERN)
    )

    sender: Sender = Field(alias="from", description="Who the contact is from.")
    subject: Annotated[StrictStr, Field(max_length=MAX_SUBJECT_CHARS), CLEAN_LINE] | None = Field(
        default=None, description="A one-line summary; line breaks fold to spaces."
    )
    text: Annotated[Text, AfterValidator(at_most_bytes(MAX_TEXT_BYTES))] | None = Field(
        default=None,
        description="What the requester wrote; at most 1 MiB. A subject or a text is required.",
    )
    category: (
        Annotated[Token, Field(max_length=MAX_CATEGORY_CHARS), AfterValidator(_blank_is_none)]
        | None
    ) = Field(default=None, description="A category name from the desk's [[categories]].")
    external_id: Annotated[Token, Field(max_length=MAX_EXTERNAL_ID_CHARS), NOT_BLANK] | None = (
        Field(
            default=None,
            description=(
                "The caller's idempotency key: a retry with the same key and the same content "
                "answers 200 with the first ticket; the same key with other content is refused "
                "(409)."
            ),
        )
    )


def contact_from_api(raw: bytes, *, received_at: datetime) -> Contact:
    """Validate an API body and build the :class:`Contact` it describes.

    ``raw`` is the request body as received (kept as the contact's raw form). Raises
    :class:`ContactRejectedError` with ``field`` set for anything the contract does not allow.
    """
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    body = load_body(ContactBody, raw)
    subject, text = body.subject or "", body.text or ""
    if not subject and not text.strip():
        raise ContactRejectedError("a contact needs a subject or a text", field="text")
    sender = body.sender
    return Contact(
        channel=Channel.API,
        external_id=body.external_id or f"api-{uuid.uuid4()}",
        sender=Party(email=sender.email, phone=sender.phone, name=sender.name),
        received_at=received_at,
        subject=subject,
        text=text,
        hints=Hints(category=body.category),
        raw=raw,
        raw_type="application/json",
    )


def content_digest(raw: bytes | None) -> str | None:
    """A digest of what an API body says (sender, subject, text, category), or None when
    ``raw`` is not a valid body. Two bodies that differ only in key order, spacing, letter case
    of the email or how the phone is written have the same digest."""
    try:
        body = load_body(ContactBody, raw or b"")
    except ContactRejectedError:
        return None
    sender = body.sender
    said = [sender.email, sender.phone, sender.name, body.subject, body.text, body.category]
    return hashlib.sha256(json.dumps(said, ensure_ascii=False).encode("utf-8")).hexdigest()
