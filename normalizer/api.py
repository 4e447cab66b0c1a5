"""``POST /api/contacts`` body -> :class:`Contact`. Pure: no I/O, no clock, no framework.

The body is the contract's shape::

    {"from": {"email": "...", "phone": "...", "name": "..."},
     "subject": "...", "text": "...", "category": "...", "external_id": "..."}

Rules (every refusal is a :class:`ContactRejectedError` naming the dotted field):

- ``from`` is an object with an ``email`` or a ``phone`` (or both). ``email`` is checked loosely
  (one ``@``, a dotted domain, nothing that could break a mail header) and case-folded; ``phone``
  is converted to E.164 (``+15550100``) with US as the default region.
- ``subject`` (at most 998 characters, one line) and ``text`` (at most 1 MiB as UTF-8) are
  optional but not both empty. Line breaks in the subject are folded to spaces.
- ``category`` (at most 100 characters) and ``external_id`` (at most 200) are optional. With an
  ``external_id``, a retry of the same body is a duplicate of the first contact; without one
  every call is a new contact (its id is ``api-<uuid4>``).
- Every value present must be a string (``null`` counts as absent). Unknown keys are refused so
  that a typo such as ``extrenal_id`` cannot silently turn off idempotency.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime

from normalizer.contact import Channel, Contact, Hints, Party
from normalizer.intake import ContactRejectedError
from normalizer.phone import to_e164

MAX_SUBJECT_CHARS = 998
MAX_TEXT_BYTES = 1024 * 1024
MAX_NAME_CHARS = 200
MAX_EMAIL_CHARS = 320
MAX_PHONE_CHARS = 64
MAX_CATEGORY_CHARS = 100
MAX_EXTERNAL_ID_CHARS = 200

_TOP_KEYS = frozenset({"from", "subject", "text", "category", "external_id"})
_FROM_KEYS = frozenset({"email", "phone", "name"})

# Loose on purpose: real validation is "a mail to it arrives". What matters here is that the
# value is one address and cannot smuggle a second one or a header into an outbound mail.
_LOCAL_PART = r"[^\s@<>()\[\],;:\\\"]{1,64}"
_DOMAIN_LABEL = r"[^\s@<>()\[\],;:\\\".]{1,63}"
_EMAIL_RE = re.compile(rf"{_LOCAL_PART}@(?:{_DOMAIN_LABEL}\.)+{_DOMAIN_LABEL}")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")
_CONTROLS_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # tab, CR, LF allowed
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x85]+")


def contact_from_api(body: Mapping[str, object], *, received_at: datetime, raw: bytes) -> Contact:
    """Validate an API body and build the :class:`Contact` it describes.

    ``raw`` is the request body as received (kept as the contact's raw form). Raises
    :class:`ContactRejectedError` with ``field`` set for anything the contract does not allow.
    """
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    _refuse_unknown_keys(body, _TOP_KEYS, prefix="")
    sender = _party(body.get("from"))
    subject = _optional_string(body, "subject", max_chars=MAX_SUBJECT_CHARS, lines=True)
    subject = _LINE_BREAKS.sub(" ", subject or "").strip()
    text = _optional_string(body, "text", lines=True) or ""
    if len(text.encode("utf-8")) > MAX_TEXT_BYTES:
        raise ContactRejectedError(f"text is longer than {MAX_TEXT_BYTES} bytes", field="text")
    if not subject and not text.strip():
        raise ContactRejectedError("a contact needs a subject or a text", field="text")
    category = _optional_string(body, "category", max_chars=MAX_CATEGORY_CHARS)
    category = category.strip() if category else None
    external_id = _optional_string(body, "external_id", max_chars=MAX_EXTERNAL_ID_CHARS)
    if external_id is not None and not external_id.strip():
        raise ContactRejectedError("external_id must not be empty", field="external_id")
    return Contact(
        channel=Channel.API,
        external_id=external_id if external_id is not None else f"api-{uuid.uuid4()}",
        sender=sender,
        received_at=received_at,
        subject=subject,
        text=text,
        hints=Hints(category=category or None),
        raw=raw,
        raw_type="application/json",
    )


def _party(value: object) -> Party:
    if not isinstance(value, Mapping):
        raise ContactRejectedError("from must be an object with an email or a phone", field="from")
    _refuse_unknown_keys(value, _FROM_KEYS, prefix="from.")
    email_raw = _optional_string(value, "email", max_chars=MAX_EMAIL_CHARS, prefix="from.")
    phone_raw = _optional_string(value, "phone", max_chars=MAX_PHONE_CHARS, prefix="from.")
    name = _optional_string(value, "name", max_chars=MAX_NAME_CHARS, lines=True, prefix="from.")
    email = None
    if email_raw is not None and email_raw.strip():
        email = email_raw.strip().casefold()
        if not _EMAIL_RE.fullmatch(email):
            raise ContactRejectedError("from.email is not an email address", field="from.email")
    phone = None
    if phone_raw is not None and phone_raw.strip():
        phone = to_e164(phone_raw.strip())
        if phone is None:
            raise ContactRejectedError("from.phone is not a phone number", field="from.phone")
    if email is None and phone is None:
        raise ContactRejectedError("from needs an email or a phone", field="from")
    name = _LINE_BREAKS.sub(" ", name).strip() if name else None
    return Party(email=email, phone=phone, name=name or None)


def _refuse_unknown_keys(value: Mapping[str, object], allowed: frozenset[str], prefix: str) -> None:
    for key in value:
        if key not in allowed:
            field = f"{prefix}{str(key)[:64]}"
            raise ContactRejectedError(f"unknown field {field}", field=field)


def _optional_string(
    value: Mapping[str, object],
    key: str,
    *,
    max_chars: int | None = None,
    lines: bool = False,
    prefix: str = "",
) -> str | None:
    """``value[key]`` as a clean string, or None when absent or null."""
    field = f"{prefix}{key}"
    item = value.get(key)
    if item is None:
        return None
    if not isinstance(item, str):
        raise ContactRejectedError(f"{field} must be a string", field=field)
    if max_chars is not None and len(item) > max_chars:
        raise ContactRejectedError(f"{field} is longer than {max_chars} characters", field=field)
    try:
        item.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from "\ud800" escapes in JSON
        raise ContactRejectedError(f"{field} is not valid Unicode", field=field) from None
    if (_CONTROLS_BUT_LINES if lines else _CONTROLS).search(item):
        raise ContactRejectedError(f"{field} contains control characters", field=field)
    return item
