"""Slack's message format and plain text, both ways. Pure: no I/O.

Slack escapes ``&``, ``<`` and ``>`` in what people type and writes mentions, channels and
links in angle brackets of its own. :func:`to_plain` turns a message's ``text`` into what its
author saw; :func:`escape` does the reverse for what we post, so a ``<`` that someone typed
(or an agent's reply) reaches Slack as ``<`` and never as markup.

=============================  =============================================================
Slack                          plain text
=============================  =============================================================
``&amp;`` ``&lt;`` ``&gt;``    ``&`` ``<`` ``>``
``<@U123>``                    ``@Display Name`` (``names``), else ``@U123``
``<#C123|general>``            ``#general`` (``#C123`` without a name)
``<https://x.org|the wiki>``   ``the wiki (https://x.org)``; without a label ``https://x.org``
``<mailto:a@x.org|a@x.org>``   ``a@x.org``
``<!here>`` ``<!channel>``     ``@here`` ``@channel`` (also ``<!everyone>``)
``<!subteam^S1|@oncall>``      ``@oncall``
``<!date^1392734382^…|Feb 18>``  ``Feb 18`` (the fallback text)
=============================  =============================================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# One Slack markup token, or one of the three escapes Slack writes.
_TOKEN = re.compile(r"<([^<>]*)>|&(amp|lt|gt);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}
_USER_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^<>]*)?>")
_BROADCASTS = frozenset({"here", "channel", "everyone"})


def unescape(text: str) -> str:
    """``&amp;`` ``&lt;`` ``&gt;`` as the characters they stand for (in one pass)."""
    return re.sub(r"&(amp|lt|gt);", lambda m: _ENTITIES[m.group(1)], text)


def escape(text: str) -> str:
    """Plain text as Slack message text: ``&``, ``<`` and ``>`` escaped, nothing else."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mentioned_users(text: str) -> tuple[str, ...]:
    """The user ids mentioned in ``text``, each once, in order of appearance."""
    return tuple(dict.fromkeys(_USER_MENTION.findall(text)))


def to_plain(text: str, names: Mapping[str, str] | None = None) -> str:
    """Slack message ``text`` as its author saw it; ``names`` maps user ids to names."""
    known = names or {}

    def replace(match: re.Match[str]) -> str:
        entity = match.group(2)
        if entity is not None:
            return _ENTITIES[entity]
        return _token(match.group(1), known)

    return _TOKEN.sub(replace, text)


def _token(inner: str, names: Mapping[str, str]) -> str:
    target, _, label = inner.partition("|")
    label = unescape(label)
    if target.startswith("@"):
        user = target[1:]
        return "@" + (names.get(user) or label.removeprefix("@") or user)
    if target.startswith("#"):
        return "#" + (label or target[1:])
    if target.startswith("!"):
        command = target[1:]
        if command in _BROADCASTS:
            return "@" + command
        if command.startswith("subteam^"):
            return label or "@" + command.removeprefix("subteam^")
        return label or command
    url = unescape(target)
    shown = url.removeprefix("mailto:")
    if label and label not in (url, shown):
        return f"{label} ({shown})"
    return shown
