"""Attachment file names that are safe to show, to store and to hand to someone's desktop.

A sender picks the file name, so it is untrusted input: ``../../etc/passwd``, ``..\\boot.ini``,
``CON.txt``, a right-to-left override that turns ``gpj.exe`` into ``exe.jpg`` on screen, a NUL,
or 4 KB of name. :func:`safe_filename` keeps only the last path component, drops control and
format characters, replaces characters Windows forbids, strips leading dots, defuses reserved
device names and cuts the result to 255 UTF-8 bytes while keeping the extension. It never
returns an empty string: a part with no usable name becomes ``attachment`` plus an extension
guessed from its content type (``.bin`` when nothing fits).
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata

__all__ = ["MAX_FILENAME_BYTES", "safe_filename"]

MAX_FILENAME_BYTES = 255
_DEFAULT_STEM = "attachment"
_MAX_EXTENSION_CHARS = 16

# Characters Windows refuses in a name (":" also opens an NTFS alternate data stream).
_FORBIDDEN = re.compile(r'[<>:"|?*]')
_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", "conin$", "conout$"}
    | {f"com{i}" for i in "123456789¹²³"}
    | {f"lpt{i}" for i in "123456789¹²³"}
)
# Extensions mimetypes knows for a type, preferred over its (platform-dependent) first guess.
_PREFERRED_EXTENSIONS = {
    "text/plain": ".txt",
    "image/jpeg": ".jpg",
    "message/rfc822": ".eml",
    "application/octet-stream": ".bin",
}


def safe_filename(name: str | None, content_type: str) -> str:
    """Return a harmless file name for an attachment called ``name`` of ``content_type``."""
    cleaned = _clean(name or "")
    if not cleaned:
        return _DEFAULT_STEM + _extension_for(content_type)
    stem, ext = _split_extension(cleaned)
    if stem.casefold().split(".", 1)[0].rstrip(" ") in _RESERVED:
        stem = "_" + stem
    return _fit(stem, ext)


def _clean(name: str) -> str:
    name = unicodedata.normalize("NFC", name)
    # Only the last path component counts, whichever separator the sender's system uses.
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    # Control (Cc: NUL, CR, LF, ESC...) and format (Cf: bidi overrides, zero-width) characters.
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf"))
    name = _FORBIDDEN.sub("_", name)
    name = " ".join(name.split())
    # No hidden files, no "." / "..", and Windows drops trailing dots and spaces silently.
    return name.lstrip(". ").rstrip(". ")


def _split_extension(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > _MAX_EXTENSION_CHARS or " " in ext:
        return name, ""
    return stem, "." + ext


def _fit(stem: str, ext: str) -> str:
    """Cut ``stem`` so that ``stem + ext`` fits in MAX_FILENAME_BYTES of UTF-8."""
    ext_bytes = ext.encode("utf-8")
    budget = MAX_FILENAME_BYTES - len(ext_bytes)
    stem_bytes = stem.encode("utf-8")
    if len(stem_bytes) > budget:
        stem = stem_bytes[:budget].decode("utf-8", errors="ignore").rstrip(". ")
    return (stem or _DEFAULT_STEM) + ext


def _extension_for(content_type: str) -> str:
    ctype = content_type.split(";", 1)[0].strip().lower()
    ext = _PREFERRED_EXTENSIONS.get(ctype) or mimetypes.guess_extension(ctype, strict=False)
    return ext or ".bin"
