"""Raw RFC 5322 bytes -> :class:`~normalizer.contact.Contact`, for every mail channel.

SMTP, IMAP, ``spoc replay`` and fax-to-email all hand the message bytes they got to
:func:`contact_from_email`. It is pure (no I/O, no clock unless ``received_at`` is missing) and
never raises on odd input: broken MIME, unknown charsets, 8-bit headers, bare-LF line ends and
undecodable encoded-words all yield a Contact; a message with no usable sender yields one with
``sender.email = None``, which the router refuses.

Speed: the message is parsed with the fast ``compat32`` parser (about 35 us for 4 KB, against
about 470 us for ``policy.default``), and headers (in :mod:`normalizer.headers`), charsets and
parts are decoded only as far as the router needs them.

Idempotency: ``external_id`` is the Message-ID without angle brackets. A message without one
gets ``sha256-<hex>@spoc.invalid``, the hash of its bytes without delivery traces
(:func:`normalizer.delivery.delivery_independent_bytes`: no ``Received``/``Return-Path``/…,
LF line ends), so an MTA resending the same bytes after a lost ``250``, and the same message
arriving again through an IMAP mailbox, are recognised as duplicates.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.message
import email.parser
import hashlib
import logging
import quopri
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from normalizer.authresults import sender_authenticated
from normalizer.autoclass import classify
from normalizer.contact import (
    MESSAGE_TYPE,
    Attachment,
    AutoClass,
    Channel,
    Contact,
    Party,
    Report,
    ThreadHints,
)
from normalizer.delivery import delivery_independent_bytes
from normalizer.filenames import safe_filename
from normalizer.headers import (
    MAX_REFERENCES,
    addresses,
    decode_header,
    decode_text,
    first_message_id,
    message_ids,
    references,
    valid_address,
)
from normalizer.html import html_to_text
from normalizer.mime_spans import MIN_RUN_BYTES, parse_lean, parse_lean_within, span_bytes
from normalizer.refs import subject_refs
from normalizer.reports import read_report
from normalizer.single_part import parse_single_part
from normalizer.text import clean_line, clean_text

__all__ = [
    "ParsedEmail",
    "attachment_bytes",
    "contact_from_email",
    "parse_if_cheap",
    "synthetic_message_id",
]

log = logging.getLogger(__name__)

MAX_SUBJECT_CHARS = 998
MAX_NAME_CHARS = 200
MAX_RECIPIENTS = 200
MAX_PARTS = 1000
MAX_PROBLEMS = 10
SYNTHETIC_ID_DOMAIN = "spoc.invalid"
LEAN_PARSE_BYTES = MIN_RUN_BYTES  # from this size on, base64 bodies stay spans of the raw bytes

_MIME_HEADERS = frozenset({"content-type", "content-disposition"})
_PARAM = re.compile(r';\s*([^\s=;"]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_QUOTED_PAIR = re.compile(r"\\(.)")
_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")


@dataclass(frozen=True, slots=True)
class ParsedEmail:
    """A message already parsed (:func:`parse_if_cheap`), for :func:`contact_from_email`."""

    raw: bytes
    message: email.message.Message


def parse_if_cheap(raw: bytes, max_text_bytes: int) -> ParsedEmail | None:
    """``raw`` parsed, if converting it walks at most ``max_text_bytes`` in Python; None if
    it walks more (then it is not parsed at all if the bytes outside its base64 bodies are
    already too many).

    What a conversion walks in Python is everything but the base64 bodies of attachments:
    headers and MIME structure line by line, text and HTML bodies (HTML sanitised and turned
    into text: the costly part), attached messages (serialised again). An attachment's
    base64 body is decoded and hashed in C, in big steps, whatever its size. So a 100 KB mail
    that is mostly a PDF is cheap, and 40 KB of HTML sent base64 is not.
    """
    if len(raw) <= max_text_bytes:
        return ParsedEmail(raw, _parse(raw))
    try:
        msg = parse_lean_within(raw, max_text_bytes)
    except Exception:  # as _parse: a message its parse fails on is for the slow path
        return None
    if msg is None or len(raw) - _attachment_span_bytes(msg) > max_text_bytes:
        return None
    return ParsedEmail(raw, msg)


def _attachment_span_bytes(msg: email.message.Message) -> int:
    """The bytes of the base64 bodies held as spans that are not text to convert: of parts
    that are not ``text/*`` nor inside an attached message (``message/*``)."""
    total = 0
    stack = [msg]
    while stack:
        part = stack.pop()
        if part.is_multipart():
            if part.get_content_maintype() != "message":
                stack += [p for p in part.get_payload() if isinstance(p, email.message.Message)]
        elif part.get_content_maintype() != "text":
            total += span_bytes(part)
    return total


def contact_from_email(
    raw: bytes | ParsedEmail,
    *,
    recipients: Sequence[str] = (),
    envelope_sender: str | None = None,
    received_at: datetime | None = None,
    our_addresses: Collection[str] = (),
    loop_marker: str | None = None,
    channel: Channel = Channel.EMAIL,
    trusted_authserv_ids: Collection[str] = (),
) -> Contact:
    """Convert one message's raw bytes into a Contact; never raises on malformed mail.

    ``recipients`` are the envelope recipients the desk accepted; ``envelope_sender`` is SMTP
    MAIL FROM (``""`` for the null sender), also the fallback when From is unusable.
    ``our_addresses`` are the desk's own addresses: mail *from* one of them is classed
    ``LOOP``, as is mail carrying ``X-Loop: <loop_marker>``. With ``trusted_authserv_ids``
    (the MX in front of the desk), ``authenticated`` says whether that MX's
    ``Authentication-Results`` passed the sender (:mod:`normalizer.authresults`).
    ``raw`` may be given parsed already (:func:`parse_if_cheap`).
    """
    if isinstance(raw, ParsedEmail):
        msg = raw.message
        raw = raw.raw
    else:
        msg = _parse(raw)
    headers = _first_headers(msg)
    subject = _subject(headers.get("subject", ""))
    message_id = first_message_id(headers.get("message-id", ""))
    sender = _sender(headers.get("from", ""), envelope_sender)
    body = _Body.collect(msg)
    auto = classify(msg, envelope_sender, loop_marker)
    if auto is AutoClass.HUMAN and sender.email is not None:
        if sender.email in {a.strip().casefold() for a in our_addresses}:
            auto = AutoClass.LOOP
    authenticated = None
    if trusted_authserv_ids:
        from_domain = sender.email.rpartition("@")[2] if sender.email else None
        authenticated = sender_authenticated(msg.raw_items(), trusted_authserv_ids, from_domain)
    return Contact(
        channel=channel,
        external_id=message_id or synthetic_message_id(raw),
        sender=sender,
        received_at=received_at or datetime.now(UTC),
        subject=subject,
        text=body.text(),
        recipients=_unique(
            a for a in (valid_address(r.strip().strip("<>")) for r in recipients) if a
        ),
        visible_recipients=_visible_recipients(msg),
        attachments=tuple(body.attachments),
        thread=ThreadHints(
            message_id=message_id,
            in_reply_to=message_ids(headers.get("in-reply-to", ""))[:MAX_REFERENCES],
            references=references(headers.get("references", "")),
            subject_refs=subject_refs(subject),
        ),
        auto=auto,
        envelope_sender=envelope_sender,
        raw=raw,
        raw_type=MESSAGE_TYPE,
        problems=tuple(body.problems)[:MAX_PROBLEMS],
        reply_to=_unique(a for _, a in addresses([headers.get("reply-to", "")]))[:MAX_RECIPIENTS],
        authenticated=authenticated,
        report=read_report(msg) if auto is not AutoClass.HUMAN else Report(),
    )


def synthetic_message_id(raw: bytes) -> str:
    """The external id of a message without a Message-ID: the same message gives the same id,
    whichever MTAs and mailboxes it passed through (their trace fields do not count)."""
    digest = hashlib.sha256(delivery_independent_bytes(raw)).hexdigest()
    return f"sha256-{digest}@{SYNTHETIC_ID_DOMAIN}"


# --- parsing and header fields ---------------------------------------------------------------


def _parse(raw: bytes) -> email.message.Message:
    if len(raw) >= LEAN_PARSE_BYTES:
        try:
            return parse_lean(raw)
        except Exception:  # the plain parse decides: only its failure reads headers only
            log.warning("lean MIME parse failed (%d bytes); parsing it plainly", len(raw))
    try:
        single = parse_single_part(raw)
        return email.message_from_bytes(raw) if single is None else single
    except Exception:  # e.g. RecursionError on absurdly nested multiparts
        log.warning("MIME structure unparseable (%d bytes); reading headers only", len(raw))
        return email.parser.BytesParser().parsebytes(raw, headersonly=True)


def _first_headers(msg: email.message.Message) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in msg.raw_items():
        headers.setdefault(key.lower(), str(value))
    return headers


def _subject(raw: str) -> str:
    return clean_line(decode_header(raw))[:MAX_SUBJECT_CHARS]


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


# --- sender and recipients -------------------------------------------------------------------


def _sender(from_value: str, envelope_sender: str | None) -> Party:
    for name, addr in addresses([from_value] if from_value else []):
        clean = clean_line(decode_header(name)).strip("\"' ")
        return Party(email=addr, name=clean[:MAX_NAME_CHARS] or None)
    fallback = valid_address((envelope_sender or "").strip().strip("<>"))
    return Party(email=fallback)


def _visible_recipients(msg: email.message.Message) -> tuple[str, ...]:
    values = [str(v) for k, v in msg.raw_items() if k.lower() in ("to", "cc")]
    return _unique(addr for _, addr in addresses(values))[:MAX_RECIPIENTS]


# --- body and attachments --------------------------------------------------------------------


@dataclass(slots=True)
class _Body:
    """The text parts and attachments of one message, gathered in one walk."""

    plain: list[str]
    html: list[str]
    attachments: list[Attachment]
    problems: dict[str, None]  # names in the order first seen

    @classmethod
    def collect(cls, msg: email.message.Message) -> _Body:
        body = cls([], [], [], {})
        stack: list[tuple[email.message.Message, str]] = [(msg, "")]
        seen = 0
        while stack and seen < MAX_PARTS:
            part, path = stack.pop()
            seen += 1
            for defect in getattr(part, "defects", ()):
                body.problems.setdefault(type(defect).__name__, None)
            try:
                body._add(part, path, stack)
            except Exception:  # one broken part must not lose the rest of the message
                log.warning("skipped an unreadable MIME part")
                body.problems.setdefault("UnreadablePart", None)
        if stack:
            body.problems.setdefault(f"MoreThan{MAX_PARTS}Parts", None)
        return body

    def _add(
        self,
        part: email.message.Message,
        path: str,
        stack: list[tuple[email.message.Message, str]],
    ) -> None:
        info = _PartInfo.of(part)
        ctype = info.content_type
        if part.is_multipart():
            if ctype.startswith("message/"):
                self._attach(ctype, _part_bytes(part), info.filename, path=path)
            else:
                subparts = _subparts(part)
                stack.extend(reversed([(p, _child(path, i)) for i, p in enumerate(subparts)]))
            return
        if ctype.startswith("multipart/"):
            ctype = "text/plain"  # a multipart without a usable boundary: its text as written
        data = _part_bytes(part)
        is_text_body = ctype in ("text/plain", "text/html") and not info.filename
        if is_text_body and info.disposition != "attachment":
            text = decode_text(data, info.charset)
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            (self.plain if ctype == "text/plain" else self.html).append(text)
        else:
            content_id = first_message_id(str(part.get("content-id", "")))
            self._attach(ctype, data, info.filename, content_id, path)

    def _attach(
        self,
        ctype: str,
        data: bytes,
        filename: str | None,
        content_id: str | None = None,
        path: str | None = None,
    ) -> None:
        name = decode_header(filename) if filename else None
        self.attachments.append(
            Attachment(
                filename=safe_filename(name, ctype),
                content_type=ctype,
                sha256=hashlib.sha256(data).hexdigest(),
                data=data,
                content_id=content_id,
                part=path,
            )
        )

    def text(self) -> str:
        text = "\n\n".join(t.strip("\n") for t in self.plain if t.strip())
        if not text and self.html:
            # Inline images (cid:) name the attachment they are; remote ones are never fetched.
            images = {a.content_id: a.filename for a in self.attachments if a.content_id}
            text = "\n\n".join(filter(None, (html_to_text(h, images) for h in self.html)))
        return clean_text(text)


@dataclass(frozen=True, slots=True)
class _PartInfo:
    """What the body walk needs from one part's MIME headers, read in one pass."""

    content_type: str
    charset: str | None
    filename: str | None
    disposition: str | None

    @classmethod
    def of(cls, part: email.message.Message) -> _PartInfo:
        wanted: dict[str, str] = {}
        for key, value in part.raw_items():
            name = key.lower()
            if name in _MIME_HEADERS and name not in wanted:
                wanted[name] = str(value)
        ctype_header = wanted.get("content-type", "")
        disposition_header = wanted.get("content-disposition", "")
        if "*" in ctype_header or "*" in disposition_header:
            return cls._via_stdlib(part)  # RFC 2231 parameters: let the library do it
        ctype, ctype_params = _split_params(ctype_header)
        disposition, disposition_params = _split_params(disposition_header)
        if "/" not in ctype:
            ctype = part.get_default_type()
        filename = disposition_params.get("filename") or ctype_params.get("name")
        return cls(
            content_type=_checked_type(ctype),
            charset=ctype_params.get("charset"),
            filename=filename or None,
            disposition=disposition or None,
        )

    @classmethod
    def _via_stdlib(cls, part: email.message.Message) -> _PartInfo:
        return cls(
            content_type=_checked_type(part.get_content_type()),
            charset=part.get_content_charset(),
            filename=part.get_filename() or None,
            disposition=part.get_content_disposition(),
        )


def _subparts(part: email.message.Message) -> list[email.message.Message]:
    return [p for p in part.get_payload() if isinstance(p, email.message.Message)]


def _child(path: str, index: int) -> str:
    return f"{path}.{index}" if path else str(index)


def _part_bytes(part: email.message.Message) -> bytes:
    """What an attachment part holds: a leaf's body with its transfer encoding undone, or an
    attached message (``message/*``) as bytes."""
    if part.is_multipart():  # message/rfc822 and the like: the message it carries
        encoding = str(part.get("content-transfer-encoding", "")).strip().casefold()
        return _undo_transfer_encoding(_serialize(_subparts(part)), encoding)
    # compat32 undoes base64/quoted-printable/uuencode leniently and returns 8-bit bytes as sent
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def attachment_bytes(raw: bytes, part: str) -> bytes | None:
    """The bytes of the attachment at ``part`` (an :attr:`Attachment.part` path) of ``raw``,
    decoded as :func:`contact_from_email` decoded them; None if there is no such part."""
    node = _parse(raw)
    for step in part.split(".") if part else ():
        if not (step.isascii() and step.isdigit()) or not node.is_multipart():
            return None
        children = _subparts(node)
        if int(step) >= len(children):
            return None
        node = children[int(step)]
    return _part_bytes(node)


def _split_params(header: str) -> tuple[str, dict[str, str]]:
    """``type/sub; a=1; b="x y"`` -> ("type/sub", {"a": "1", "b": "x y"}), value lower-cased."""
    value, separator, rest = header.partition(";")
    params: dict[str, str] = {}
    for name, raw in _PARAM.findall(separator + rest):
        if raw.startswith('"'):
            raw = _QUOTED_PAIR.sub(r"\1", raw[1:-1])
        params.setdefault(name.lower(), raw.strip())
    return value.strip().lower(), params


def _checked_type(ctype: str) -> str:
    return ctype if _CONTENT_TYPE.fullmatch(ctype) else "application/octet-stream"


def _undo_transfer_encoding(data: bytes, encoding: str) -> bytes:
    """A ``message/rfc822`` part sent base64 or quoted-printable (RFC 2046 says it mustn't be,
    but Python's own email package writes it so): the message as it was, or ``data`` as is."""
    try:
        if encoding == "base64":
            return base64.b64decode(b"".join(data.split()), validate=False)
        if encoding == "quoted-printable":
            return quopri.decodestring(data.lstrip(b"\r\n"))
    except (ValueError, binascii.Error):
        log.info("a message/rfc822 part's %s encoding is broken; kept as sent", encoding)
    return data


def _serialize(messages: list[email.message.Message]) -> bytes:
    out = []
    for sub in messages:
        try:
            out.append(sub.as_bytes())
        except Exception:  # unserialisable nested message (odd charsets): its headers at least
            log.warning("nested message could not be serialised; keeping its headers only")
            out.append(_headers_only(sub))
    return b"".join(out)


def _headers_only(msg: email.message.Message) -> bytes:
    lines = [f"{key}: {value}\n" for key, value in msg.raw_items()]
    return ("".join(lines) + "\n").encode("utf-8", "surrogateescape")
