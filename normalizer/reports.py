"""What an automatic mail says about the message it answers: :func:`read_report`.

A bounce names the message it could not deliver in many ways: a ``message/rfc822`` or
``text/rfc822-headers`` part (RFC 3464, RFC 6522), the same headers quoted as plain text (qmail,
Exchange, many others), ``message/delivery-status`` fields (``Final-Recipient``, ``Action``)
or ``X-Failed-Recipients``. :func:`read_report` gathers those into a
:class:`~normalizer.contact.Report`: the router looks the Message-IDs up among the ones it
wrote, so a text that merely quotes an id can only ever point at a ticket of ours.

Pure and total like every converter: odd MIME, undecodable parts or absurd sizes yield less,
never an exception. At most ``MAX_PARTS`` parts and ``MAX_SCAN_BYTES`` of each are read.
"""

from __future__ import annotations

import email.message
import logging
import re

from normalizer.contact import Report
from normalizer.headers import addresses, decode_header, first_message_id, valid_address

__all__ = ["read_report"]

log = logging.getLogger(__name__)

MAX_PARTS = 50
MAX_SCAN_BYTES = 256 * 1024
MAX_ITEMS = 20

_SUBJECT_REF = re.compile(r"\[([A-Z][A-Z0-9]{0,9}-\d{1,12})\]", re.IGNORECASE)
# Header lines of a returned message, wherever the bounce put them (quoted with "> " at times).
_QUOTED_HEADER = re.compile(
    r"^[ \t>]*(message-id|from|subject)[ \t]*:[ \t]*(.+)$", re.IGNORECASE | re.MULTILINE
)
_DSN_FIELD = re.compile(
    r"^(final-recipient|original-recipient|action)[ \t]*:[ \t]*(.+)$", re.IGNORECASE | re.MULTILINE
)
_STATUS_PARTS = frozenset({"message/delivery-status", "message/global-delivery-status"})
_FAILED_ACTIONS = frozenset({"failed"})


def read_report(msg: email.message.Message) -> Report:
    """The returned message's ids, senders and ticket tags, and which recipients failed."""
    found = _Found(own_id=first_message_id(str(msg.get("message-id", ""))))
    for value in msg.get_all("x-failed-recipients") or []:
        found.failed += [a for _, a in addresses([str(value)])]
    try:
        parts = list(_parts(msg))
    except Exception:  # a structure too odd to walk: what the headers said is all we know
        parts = []
    for part in parts:
        ctype = part.get_content_type()
        try:
            if ctype in ("message/rfc822", "message/global") and part.is_multipart():
                for inner in part.get_payload():
                    if isinstance(inner, email.message.Message):
                        found.add_headers([(k, str(v)) for k, v in inner.raw_items()])
            elif ctype in _STATUS_PARTS:
                found.add_status(_text(part))
            elif part is not msg or not msg.is_multipart():
                found.add_quoted(_text(part))
        except Exception:  # one unreadable part must not hide what the others say
            log.debug("report: skipped an unreadable %s part", ctype)
    return found.report()


def _parts(msg: email.message.Message) -> list[email.message.Message]:
    out: list[email.message.Message] = []
    for part in msg.walk():
        if len(out) >= MAX_PARTS:
            break
        out.append(part)
    return out


def _text(part: email.message.Message) -> str:
    if part.is_multipart():  # message/delivery-status parses into header blocks
        blocks = [p for p in part.get_payload() if isinstance(p, email.message.Message)]
        return "\n\n".join("\n".join(f"{k}: {v}" for k, v in b.raw_items()) for b in blocks)
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return ""
    return data[:MAX_SCAN_BYTES].decode("utf-8", "replace")


class _Found:
    """What the parts said so far, deduplicated and bounded."""

    def __init__(self, own_id: str | None) -> None:
        self.own_id = own_id
        self.ids: list[str] = []
        self.senders: list[str] = []
        self.refs: list[str] = []
        self.failed: list[str] = []
        self.actions: list[str] = []

    def add_headers(self, items: list[tuple[str, str]]) -> None:
        for key, value in items:
            self._add(key.lower(), value)

    def add_quoted(self, text: str) -> None:
        for key, value in _QUOTED_HEADER.findall(text):
            self._add(key.lower(), value)

    def add_status(self, text: str) -> None:
        for key, value in _DSN_FIELD.findall(text):
            name = key.lower()
            if name == "action":
                self.actions.append(value.strip().split()[0].casefold() if value.strip() else "")
            else:  # "rfc822; alice@example.org"
                address = valid_address(value.rpartition(";")[2].strip().strip("<>"))
                if address:
                    self.failed.append(address)

    def _add(self, name: str, value: str) -> None:
        if name == "message-id":
            mid = first_message_id(value)
            if mid and mid != self.own_id:
                self.ids.append(mid)
        elif name == "from":
            self.senders += [a for _, a in addresses([value])]
        elif name == "subject":
            self.refs += [m.upper() for m in _SUBJECT_REF.findall(decode_header(value))]

    def report(self) -> Report:
        failed = None
        if self.actions:
            failed = any(a in _FAILED_ACTIONS for a in self.actions)
        elif self.failed:
            failed = True
        return Report(
            original_ids=_unique(self.ids),
            original_senders=_unique(self.senders),
            original_subject_refs=_unique(self.refs),
            failed_recipients=_unique(self.failed),
            delivery_failed=failed,
        )


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))[:MAX_ITEMS]
