"""The end users' web form (``/report``) -> :class:`Contact`. Pure: no I/O, no clock, no framework.

Fields: ``name`` (optional), ``email`` (required: the ack and every answer go there),
``category`` (one of the configured names, when the form offers any), ``description``
(required; its first line, shortened, becomes the subject) and attachments. The values are
checked by the same rules as an API body (:func:`normalizer.api.contact_from_api`): one address,
no control characters, the same lengths. Every refusal is a :class:`ContactRejectedError` whose
``field`` is the form's own field name.

The contact's ``external_id`` is ``web-<form nonce>``: the nonce is unique per rendered form, so
sending one page twice is a duplicate, not a second ticket. A form is addressed to the desk, so
the desk's address is its (visible) recipient and the requester is acknowledged like a mail.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from normalizer.api import contact_from_api
from normalizer.contact import Attachment, Channel, Contact
from normalizer.filenames import safe_filename
from normalizer.intake import ContactRejectedError

MAX_SUBJECT_CHARS = 120
MAX_NONCE_CHARS = 100
_VALUE_FIELDS = ("name", "email", "category", "description")

# contact_from_api's dotted fields -> the form's field names
_FIELDS = {
    "from.email": "email",
    "from": "email",
    "from.name": "name",
    "text": "description",
    "subject": "description",  # the subject is the description's first line
}


@dataclass(frozen=True, slots=True)
class UploadedFile:
    filename: str
    data: bytes = field(repr=False)


def contact_from_webform(
    fields: Mapping[str, str],
    files: Sequence[UploadedFile],
    *,
    form_id: str,
    received_at: datetime,
    desk_address: str,
    categories: Collection[str] = (),
) -> Contact:
    """Validate one submitted form and build its contact (``ContactRejectedError`` names the
    form field that is wrong)."""
    if not form_id or len(form_id) > MAX_NONCE_CHARS:
        raise ValueError("form_id must be a nonce of 1-100 characters")
    email = fields.get("email", "").strip()
    if not email:
        raise ContactRejectedError("email is required: answers are sent there", field="email")
    description = fields.get("description", "")
    if not description.strip():
        raise ContactRejectedError(
            "description is required: what is the problem?", field="description"
        )
    category = fields.get("category", "").strip() or None
    if categories and category is not None and category not in categories:
        raise ContactRejectedError(f"category {category[:100]!r} is not offered", field="category")
    body = {
        "from": {"email": email, "name": fields.get("name") or None},
        "subject": _subject(description),
        "text": description,
        "category": category,
    }
    try:
        contact = contact_from_api(json.dumps(body).encode("utf-8"), received_at=received_at)
    except ContactRejectedError as exc:
        named = _FIELDS.get(exc.field or "", exc.field)
        raise ContactRejectedError(
            str(exc).replace(exc.field or "\0", named or ""), named
        ) from None
    raw = {k: fields.get(k, "") for k in ("name", "email", "category", "description")}
    raw["attachments"] = [f.filename for f in files]  # type: ignore[assignment]
    return replace(
        contact,
        channel=Channel.WEB,
        external_id=f"web-{form_id}",
        recipients=(desk_address,),
        visible_recipients=(desk_address,),
        attachments=tuple(_attachment(f) for f in files),
        raw=json.dumps(raw, ensure_ascii=False).encode("utf-8"),
        raw_type="application/json",
    )


def _subject(description: str) -> str:
    first = next((line.strip() for line in description.splitlines() if line.strip()), "")
    if len(first) <= MAX_SUBJECT_CHARS:
        return first
    return first[: MAX_SUBJECT_CHARS - 1].rstrip() + "…"


def _attachment(upload: UploadedFile) -> Attachment:
    # The browser's Content-Type is whatever the sender's machine claims: derive it from the
    # (cleaned) name instead, so a file is never shown as something it does not say it is.
    guessed = mimetypes.guess_type(safe_filename(upload.filename, "application/octet-stream"))[0]
    content_type = guessed or "application/octet-stream"
    return Attachment(
        filename=safe_filename(upload.filename, content_type),
        content_type=content_type,
        sha256=hashlib.sha256(upload.data).hexdigest(),
        data=upload.data,
    )
