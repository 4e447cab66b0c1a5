"""HTML mail bodies as readable plain text.

Only used when a message has no ``text/plain`` body. The HTML is first sanitised by ``nh3``
(the Rust ``ammonia`` sanitiser): everything but a fixed set of structural tags is dropped, no
attribute survives (so no ``onerror=``), and the *content* of ``script``, ``style``, ``title``
and friends is removed, not just their tags. The sanitised, well-formed result is then turned
into lines: paragraphs, headings, lists and tables become blank-line separated blocks, ``br``,
``div``, ``tr`` and list items become line breaks (items prefixed ``- ``), source whitespace is
collapsed as a browser would (except inside ``pre``), and entities are unescaped last, so an
escaped ``&lt;script&gt;`` in the mail stays literal text and is never read as markup.

Images: an inline image (``<img src="cid:…">``) becomes ``[image: logo.png]``, naming the
attachment whose Content-ID it refers to; a remote image is never fetched (nothing here does
I/O) and becomes ``[remote image not loaded: host]``. Only ``src`` and ``alt`` of ``img``
survive sanitising, and only ``cid``, ``http`` and ``https`` URLs.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

import nh3

__all__ = ["html_to_text"]

# Tags that end a paragraph-like block: a blank line around them.
_PARAGRAPH_TAGS = frozenset(
    {
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "pre",
        "ul",
        "ol",
        "dl",
        "table",
        "hr",
        "address",
        "figure",
    }
)
# Tags that only break the line.
_LINE_TAGS = frozenset(
    {
        "br",
        "div",
        "li",
        "tr",
        "dt",
        "dd",
        "section",
        "article",
        "header",
        "footer",
        "aside",
        "nav",
        "center",
        "caption",
        "figcaption",
        "details",
        "summary",
    }
)
_CELL_TAGS = frozenset({"td", "th"})
_KEPT_TAGS = _PARAGRAPH_TAGS | _LINE_TAGS | _CELL_TAGS
_DROPPED_WITH_CONTENT = frozenset(
    {"script", "style", "title", "head", "template", "noscript", "object", "iframe", "svg"}
)

_TOKEN = re.compile(r"<(/?)([a-zA-Z0-9]+)([^>]*)>|([^<]+)")
_ATTRIBUTE = re.compile(r'\s([a-z]+)="([^"]*)"')
_SPACES = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n{3,}")


def html_to_text(html_source: str, images: Mapping[str, str] | None = None) -> str:
    """Return the readable text of an HTML document or fragment; never raises on bad markup.

    ``images`` maps Content-IDs to attachment file names, for ``cid:`` images.
    """
    cleaned = nh3.clean(
        html_source,
        tags={*_KEPT_TAGS, "img"},
        clean_content_tags=set(_DROPPED_WITH_CONTENT),
        attributes={"img": {"src", "alt"}},
        url_schemes={"cid", "http", "https"},
        strip_comments=True,
        link_rel=None,
    )
    out = _Lines()
    pre_depth = 0
    for match in _TOKEN.finditer(cleaned):
        closing, tag, attributes, text = match.groups()
        if text is not None:
            out.text(html.unescape(text), preformatted=pre_depth > 0)
            continue
        tag = tag.lower()
        if tag == "img":
            out.text(_image(attributes, images or {}), preformatted=False)
            continue
        if tag == "pre":
            pre_depth = max(0, pre_depth + (-1 if closing else 1))
        if tag == "br":
            out.newline()
        elif tag in _PARAGRAPH_TAGS:
            out.ensure_newlines(2)
        elif tag == "li" and not closing:
            out.ensure_newlines(1)
            out.text("- ", preformatted=True)
        elif tag in _LINE_TAGS:
            out.ensure_newlines(1)
        elif tag in _CELL_TAGS and closing:
            out.text(" ", preformatted=False)
    return out.result()


def _image(attributes: str, images: Mapping[str, str]) -> str:
    found = {k: html.unescape(v) for k, v in _ATTRIBUTE.findall(attributes)}
    src, alt = found.get("src", ""), " ".join(found.get("alt", "").split())
    if src.casefold().startswith("cid:"):
        name = images.get(unquote(src[4:]).strip("<>"))
        return f" [image: {name or alt or 'inline image'}] "
    host = urlsplit(src).hostname if src.casefold().startswith(("http://", "https://")) else None
    if host:
        return f" [remote image not loaded: {alt + ', ' if alt else ''}{host}] "
    return f" [image: {alt}] " if alt else ""


class _Lines:
    """Builds the text, knowing how many line breaks it currently ends with."""

    __slots__ = ("_parts", "_trailing_newlines")

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._trailing_newlines = -1  # -1: nothing written yet, so no break is needed

    def text(self, text: str, *, preformatted: bool) -> None:
        if not preformatted:
            text = _SPACES.sub(" ", text)
            if self._trailing_newlines != 0 or (self._parts and self._parts[-1].endswith(" ")):
                text = text.lstrip(" ")
        if not text:
            return
        self._parts.append(text)
        stripped = text.rstrip("\n")
        if stripped:
            self._trailing_newlines = len(text) - len(stripped)
        elif self._trailing_newlines >= 0:
            self._trailing_newlines += len(text)

    def newline(self) -> None:
        self._parts.append("\n")
        self._trailing_newlines = max(self._trailing_newlines, 0) + 1

    def ensure_newlines(self, count: int) -> None:
        if self._trailing_newlines < 0:
            return
        while self._trailing_newlines < count:
            self.newline()

    def result(self) -> str:
        lines = [line.rstrip() for line in "".join(self._parts).split("\n")]
        return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n")
