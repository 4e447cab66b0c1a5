"""Fax-to-email: a step after :func:`normalizer.email.contact_from_email`, not a channel of its own.

A fax-to-email service (eFax, RingCentral, an MFP's gateway …) mails each fax it receives: the
caller's fax number in the subject ("Fax from +1 415 555 0100") or the cover text, the pages as
a PDF or TIFF attachment. :class:`FaxStep` turns such a mail into a ``fax`` contact:

- only mail whose From (or envelope sender) matches one of ``[fax] senders`` -- shell-style
  patterns such as ``*@fax.example.net`` -- is a fax; a mail that merely says "Fax from" in its
  subject, from anybody else, stays email;
- the caller's number, read with ``[fax] subject_pattern`` (its ``number`` group) from the
  subject, else the cover text, becomes the requester's phone (E.164); a fax without a
  readable number gets an undeliverable identity of its own, as a withheld caller does;
- these machine senders are exempt from the auto-generated filter (their mail often says
  ``Auto-Submitted`` or comes from ``noreply@``): a fax is a person's request;
- the PDF/TIFF stays an attachment and its page count is written on the contact;
- no acknowledgement is ever mailed back to the service (the router acknowledges email only).

Pure: no I/O. Page counting reads only the documents' structure (pypdf, Pillow), never renders.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from normalizer.contact import Attachment, AutoClass, Channel, Contact, Party
from normalizer.phone import find_number

__all__ = ["FaxRules", "FaxStep", "page_count"]

log = logging.getLogger(__name__)

DEFAULT_SUBJECT_PATTERN = r"(?i)fax from (?P<number>[+0-9][0-9 ()-]{5,})"
_DOCUMENT_TYPES = ("application/pdf", "image/tiff", "image/tif")


@dataclass(frozen=True, slots=True)
class FaxRules:
    """``[fax]``: who sends faxes, and where the caller's number is written."""

    senders: tuple[str, ...] = ()
    subject_pattern: re.Pattern[str] = field(
        default_factory=lambda: re.compile(DEFAULT_SUBJECT_PATTERN)
    )
    default_region: str = "US"

    def is_fax_sender(self, *addresses: str | None) -> bool:
        for address in addresses:
            folded = (address or "").strip().strip("<>").casefold()
            if folded and any(fnmatch.fnmatchcase(folded, p.casefold()) for p in self.senders):
                return True
        return False


class FaxStep:
    """``contact -> contact``: a mail from a fax service becomes a ``fax`` contact."""

    off_loop = True  # counts the pages of the fax's PDF (pypdf: ~20 ms for 40 pages)

    def __init__(self, rules: FaxRules) -> None:
        self.rules = rules

    def __call__(self, contact: Contact) -> Contact:
        if contact.channel is not Channel.EMAIL or not self.rules.is_fax_sender(
            contact.sender.email, contact.envelope_sender
        ):
            return contact
        number = self._number(contact.subject) or self._number(contact.text)
        sender = Party(phone=number, name=f"Fax {number}" if number else "Fax, number unknown")
        if number is None:
            sender = replace(sender, email=_unknown_number_address(contact.external_id))
        return replace(
            contact,
            channel=Channel.FAX,
            sender=sender,
            auto=AutoClass.HUMAN,
            text=_with_pages(contact.text, contact.attachments),
        )

    def _number(self, text: str) -> str | None:
        for match in self.rules.subject_pattern.finditer(text):
            try:
                raw = match.group("number")
            except IndexError:
                raw = match.group(0)
            number = find_number(raw, self.rules.default_region)
            if number is not None:
                return number
        return None


def page_count(attachment: Attachment) -> int | None:
    """Pages of a PDF or TIFF; None for other types or a document that can't be read."""
    kind = attachment.content_type.casefold()
    name = attachment.filename.casefold()
    try:
        if kind == "application/pdf" or name.endswith(".pdf"):
            from pypdf import PdfReader

            return len(PdfReader(io.BytesIO(attachment.data)).pages)
        if kind in ("image/tiff", "image/tif") or name.endswith((".tif", ".tiff")):
            from PIL import Image

            with Image.open(io.BytesIO(attachment.data)) as image:
                return int(getattr(image, "n_frames", 1))
    except Exception as exc:  # a broken document is still kept; only its count is unknown
        log.info("fax: cannot count the pages of %s: %s", attachment.filename, exc)
    return None


def _with_pages(text: str, attachments: Sequence[Attachment]) -> str:
    lines = []
    for attachment in attachments:
        if not _is_document(attachment):
            continue
        pages = page_count(attachment)
        count = "pages unknown" if pages is None else f"{pages} page{'s' if pages != 1 else ''}"
        lines.append(f"Fax document: {attachment.filename} ({count})")
    if not lines:
        lines.append("Fax document: none attached")
    return "\n\n".join(part for part in (text.strip(), "\n".join(lines)) if part)


def _is_document(attachment: Attachment) -> bool:
    name = attachment.filename.casefold()
    return attachment.content_type.casefold() in _DOCUMENT_TYPES or name.endswith(
        (".pdf", ".tif", ".tiff")
    )


def _unknown_number_address(external_id: str) -> str:
    digest = hashlib.sha256(external_id.encode("utf-8", "replace")).hexdigest()[:16]
    return f"fax.{digest}@fax.invalid"
