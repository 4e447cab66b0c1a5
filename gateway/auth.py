"""Who may read what the desk holds: the API's bearer tokens, checked in one place.

``SPOC_API_TOKEN`` holds one or more tokens (comma-separated). A request is let in when its
``Authorization: Bearer <token>`` matches one of them; every token is compared in constant time,
every time, so the answer's timing tells nothing about how close a guess was. With no token
configured nothing is let in: the API and the dashboard never fail open.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Final

from aiohttp import web

BEARER_CHALLENGE: Final = {"WWW-Authenticate": 'Bearer realm="spoc"'}


def encode_tokens(tokens: Sequence[str]) -> tuple[bytes, ...]:
    """The configured tokens as bytes for :func:`has_valid_bearer_token`; empty ones dropped."""
    return tuple(t.encode("utf-8") for t in tokens if t)


def has_valid_bearer_token(request: web.Request, tokens: Sequence[bytes]) -> bool:
    """Whether the request carries ``Authorization: Bearer`` with one of ``tokens``."""
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    return is_token(credential.strip(), tokens) and scheme.lower() == "bearer"


def is_token(given: str, tokens: Sequence[bytes]) -> bool:
    """Whether ``given`` is one of ``tokens`` (the dashboard's login takes them too)."""
    if not tokens:
        return False
    raw = given.encode("utf-8", "replace")
    matched = False
    for token in tokens:  # no early exit: every token is compared every time
        matched |= hmac.compare_digest(raw, token)
    return matched
