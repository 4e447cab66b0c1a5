"""An email as its sender formatted it: the ``text/html`` body, sanitised for the dashboard.

``nh3`` (Rust's ammonia) keeps a fixed set of harmless tags and attributes: no script, no event
handler, no style, no form, no frame; links only to http(s) and mailto, with
``rel="noopener noreferrer nofollow"``; images only from ``data:`` URLs (the page's
Content-Security-Policy would block remote ones anyway, and they are how mail tracks readers).
Without an HTML body (or one that cannot be read) there is nothing to show: the contact's
text, which the normalizer already extracted, is always shown.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import nh3

_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "q", "s",
    "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead",
    "tr", "u", "ul",
}  # fmt: skip
_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt"}, "td": {"colspan"}, "th": {"colspan"}}
MAX_HTML_CHARS = 500_000


def sanitized_html(raw: bytes) -> str | None:
    """The mail's HTML body, safe to put into the page; None when it has none."""
    try:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        part = message.get_body(preferencelist=("html",))
        if part is None or part.get_content_type() != "text/html":
            return None
        source = part.get_content()
    except Exception:  # a mail the stdlib cannot read is shown as its text, as before
        return None
    if not isinstance(source, str) or not source.strip():
        return None
    cleaned = nh3.clean(
        source[:MAX_HTML_CHARS],
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "data"},
        link_rel="noopener noreferrer nofollow",
        attribute_filter=_only_data_images,
    )
    return cleaned if cleaned.strip() else None


def _only_data_images(tag: str, attribute: str, value: str) -> str | None:
    if tag == "img" and attribute == "src":
        return value if value.startswith("data:image/") else None
    if tag == "a" and attribute == "href" and value.startswith("data:"):
        return None
    return value
