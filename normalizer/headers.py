"""Mail header text -> clean Python values: decoded text, message ids, addresses.

Pure and total: every function takes the header value exactly as the ``compat32`` parser
gives it (8-bit bytes surrogate-escaped) and never raises. Raw 8-bit bytes are read as UTF-8,
else Latin-1; RFC 2047 encoded-words are decoded with adjacent words in one charset joined
(mailers split UTF-8 sequences across them); unknown charsets fall back like bodies do.
Message-id lists tolerate ids without brackets; address lists take a fast path for plain
``Name <a@b>, c@d`` and the stdlib parser only for quoted or commented forms.
"""

from __future__ import annotations

import binascii
import codecs
import email.utils
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from normalizer.addresses import EMAIL_ADDRESS, MAX_ADDRESS_CHARS, valid_address

__all__ = [
    "MAX_ADDRESS_CHARS",
    "MAX_ID_CHARS",
    "MAX_REFERENCES",
    "addresses",
    "decode_header",
    "decode_text",
    "first_message_id",
    "message_ids",
    "references",
    "valid_address",
]

MAX_ID_CHARS = 998
MAX_REFERENCES = 100

_BRACKETED_ID = re.compile(r"<([^<>\s\x00-\x1f\x7f]{1,998})>")
_ID_TOKEN = re.compile(r"[^<>\s\x00-\x1f\x7f,]{1,998}")
_ADDR_SPEC = EMAIL_ADDRESS.pattern
_SIMPLE_MAILBOX = re.compile(rf"\s*(?:([^<>]*?)\s*<\s*({_ADDR_SPEC})\s*>|({_ADDR_SPEC}))\s*")
_NEEDS_FULL_PARSER = re.compile(r"[\"()\\:;]")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_ASCII_CHARSETS = frozenset({"us-ascii", "ascii", "ansi_x3.4-1968", "646", "us"})
_CHARSET_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030", "iso-8859-1": "cp1252"}


# --- text and charsets -----------------------------------------------------------------------


def _unescape_8bit(value: str) -> str:
    """Headers with raw 8-bit bytes (SMTPUTF8, or careless mailers): UTF-8, else Latin-1."""
    if value.isascii():
        return value
    try:
        data = value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:  # real text, perhaps mixed with escaped bytes
        return value.encode("utf-8", "surrogateescape").decode("utf-8", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def decode_header(value: str) -> str:
    """Header text with 8-bit bytes and RFC 2047 encoded-words decoded; never raises.

    Adjacent encoded-words in one charset are joined before decoding (mailers split UTF-8
    sequences across them); a malformed word is kept as written; unknown charsets fall back
    like bodies do.
    """
    value = _unescape_8bit(value)
    if "=?" not in value:
        return value
    out: list[str] = []
    run = _WordRun()
    position = 0
    for match in _ENCODED_WORD.finditer(value):
        data = _encoded_word_bytes(match.group(2), match.group(3))
        if data is None:
            continue  # undecodable: left in place, it becomes part of the literal text
        charset = match.group(1).split("*", 1)[0].lower()  # drop an RFC 2231 language
        between = value[position : match.start()]
        if run.charset is not None and (not between or between.isspace()):
            between = ""  # whitespace between two encoded-words is not text
        if between or charset != run.charset:
            out.append(run.flush())
            out.append(between)
        run.add(charset, data)
        position = match.end()
    out.append(run.flush())
    out.append(value[position:])
    return "".join(out)


@dataclass(slots=True)
class _WordRun:
    """Adjacent encoded-words in one charset, decoded together (mailers split UTF-8 across them)."""

    charset: str | None = None
    data: bytearray = field(default_factory=bytearray)

    def add(self, charset: str, data: bytes) -> None:
        self.charset = charset
        self.data += data

    def flush(self) -> str:
        text = decode_text(bytes(self.data), self.charset) if self.charset else ""
        self.charset, self.data = None, bytearray()
        return text


def _encoded_word_bytes(encoding: str, text: str) -> bytes | None:
    try:
        if encoding in "bB":
            return binascii.a2b_base64((text + "===")[: len(text) + (-len(text) % 4)])
        return binascii.a2b_qp(text.encode("ascii"), header=True)
    except (binascii.Error, UnicodeError, ValueError):
        return None


def decode_text(data: bytes, charset: str | None) -> str:
    """Bytes in a declared charset; undeclared, ASCII or unknown: UTF-8, else Latin-1."""
    name = (charset or "").strip().strip("\"'").lower()
    if name and name not in _ASCII_CHARSETS:
        name = _CHARSET_SUPERSETS.get(name, name)
        try:
            codecs.lookup(name)
            text = data.decode(name, errors="replace")
        except (LookupError, UnicodeError, ValueError, TypeError):
            pass  # unknown or non-text codec ("base64", "x-unknown"): guess below
        else:
            if name in ("utf-8", "utf8", "cp1252"):
                return text
            # Codecs like utf-7 or unicode-escape can yield lone surrogates no database stores.
            return text.encode("utf-8", "replace").decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# --- message ids -----------------------------------------------------------------------------


def message_ids(value: str) -> tuple[str, ...]:
    """Bare message ids from an id-list header; junk without brackets is split on space."""
    value = _unescape_8bit(value)
    found = _BRACKETED_ID.findall(value)
    if not found:
        found = [t for t in _ID_TOKEN.findall(value) if "@" in t]
    return _unique(found)


def first_message_id(value: str) -> str | None:
    """The first id of a Message-ID header, bracketed or not; None if there is no token."""
    ids = message_ids(value)
    if ids:
        return ids[0]
    token = _ID_TOKEN.search(_unescape_8bit(value))  # an id without brackets or "@"
    return token.group(0) if token else None


def references(value: str) -> tuple[str, ...]:
    """The ids of a References header, at most ``MAX_REFERENCES``: the root and the newest."""
    refs = message_ids(value)
    if len(refs) > MAX_REFERENCES:  # keep the thread's root and the newest ones
        refs = refs[:1] + refs[-(MAX_REFERENCES - 1) :]
    return refs


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


# --- addresses -------------------------------------------------------------------------------


def addresses(values: Iterable[str]) -> list[tuple[str, str]]:
    """(display name, address) pairs; plain ``Name <a@b>, c@d`` lists skip the slow parser."""
    out: list[tuple[str, str]] = []
    for value in values:
        value = _unescape_8bit(value)
        pairs = None if _NEEDS_FULL_PARSER.search(value) else _simple_addresses(value)
        if pairs is None:
            try:
                pairs = email.utils.getaddresses([value])
            except Exception:  # older parsers choke on some junk; treat as no address
                pairs = []
        for name, addr in pairs:
            valid = valid_address(addr)
            if valid:
                out.append((name, valid))
    return out


def _simple_addresses(value: str) -> list[tuple[str, str]] | None:
    pairs = []
    for piece in value.split(","):
        if not piece or piece.isspace():
            continue
        match = _SIMPLE_MAILBOX.fullmatch(piece)
        if match is None:
            return None
        name, angle_addr, bare_addr = match.groups()
        pairs.append(((name or "").strip(), angle_addr or bare_addr))
    return pairs
