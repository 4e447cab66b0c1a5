"""The newest part of an email reply: what the writer added above the history they quoted.

``newest_reply`` cuts off the quoted history (``On … wrote:``, ``-----Original Message-----``,
Outlook's ``From:``/``Sent:`` block, ``>`` lines), and from a common sign-off (``Best
regards``, ``Sent from my iPhone``) or disclaimer on, with ``mail-parser-reply``, reading
English, German, French and Spanish headers; any other closing line stays. A body the parser
finds nothing in, or fails on, comes back whole -- stripping is a courtesy, never a reason to
lose text.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

log = logging.getLogger(__name__)

REPLY_LANGUAGES = ("en", "de", "fr", "es")


@functools.cache
def _parser() -> Any:
    from mailparser_reply import EmailReplyParser

    return EmailReplyParser(languages=list(REPLY_LANGUAGES))


def newest_reply(body: str) -> str:
    """``body`` without the history it quotes (``body`` itself when there is none)."""
    try:
        replies = _parser().read(text=body).replies
    except Exception:  # a parser failure costs the stripping, never the text
        log.debug("reply parser failed; keeping the whole body", exc_info=True)
        return body
    return replies[0].body if replies and replies[0].body.strip() else body
