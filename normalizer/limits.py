"""How much of what arrived is stored as files: a step after conversion.

An attachment over ``[email] max_attachment_bytes`` is kept as metadata only -- its name, type,
size and sha256 on the contact, with the reason -- while its bytes stay in the contact's raw
message, which is always kept whole. The desk sees that the file came and why it is not
attached; nothing is dropped silently.
"""

from __future__ import annotations

from dataclasses import replace

from normalizer.contact import Contact

__all__ = ["AttachmentLimit"]


class AttachmentLimit:
    """``contact -> contact``: attachments over ``max_bytes`` become metadata only."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes!r}")
        self.max_bytes = max_bytes

    def __call__(self, contact: Contact) -> Contact:
        if all(a.size <= self.max_bytes or a.omitted for a in contact.attachments):
            return contact
        reason = f"over {_size(self.max_bytes)}: kept in the raw message only"
        return replace(
            contact,
            attachments=tuple(
                a if a.size <= self.max_bytes or a.omitted else a.without_data(reason)
                for a in contact.attachments
            ),
        )


def _size(count: int) -> str:
    for unit, factor in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= factor:
            return f"{count / factor:g} {unit}"
    return f"{count} bytes"
