"""The HTML pages the gateway serves (the web form, the dashboard): their templates and the
CSRF tokens of their forms.

Templates: one Jinja2 environment per package (``templates/`` as package data), autoescaping
everything, undefined names an error rather than an empty string.

Double submit, signed: the browser holds a random key in an HttpOnly, SameSite=Strict cookie;
every rendered form carries a token signed with the server's secret (``itsdangerous``) that
names a digest of that key, a fresh nonce and the time it was issued. A POST is let in only
with a token that verifies, is younger than ``max_age_seconds`` and names the key in the
request's own cookie -- another site can neither read the cookie nor forge the signature.

The nonce is unique per rendered form: the web form uses it as the contact's idempotency key,
so submitting the same page twice (a double click, a reload) opens one ticket, not two.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final

import jinja2
from aiohttp import web
from itsdangerous import BadData, URLSafeTimedSerializer

FORM_COOKIE: Final = "spoc_form"
KEY_BYTES: Final = 32


def html_templates(package: str) -> jinja2.Environment:
    """The autoescaping templates in ``<package>/templates``."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader(package),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


class FormRefused(Exception):
    """The form's token is missing, forged, expired or belongs to another browser."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    cookie: str | None  # a new browser key to set, or None when the request had a good one


def set_private_cookie(
    response: web.StreamResponse, name: str, value: str, *, secure: bool, max_age: int | None
) -> None:
    """A cookie scripts cannot read and other sites' requests do not carry."""
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=secure, httponly=True, samesite="Strict"
    )


class FormGuard:
    """Issues and checks the signed form tokens of one kind of form (``salt`` tells them apart)."""

    def __init__(self, secret: bytes, *, salt: str, max_age_seconds: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt=salt)
        self.max_age_seconds = max_age_seconds

    def issue(self, request: web.Request) -> IssuedToken:
        """A token for a form about to be rendered (and the cookie to set if there was none)."""
        key = request.cookies.get(FORM_COOKIE, "")
        new_cookie = None
        if len(key) < KEY_BYTES:
            key = new_cookie = secrets.token_urlsafe(KEY_BYTES)
        token = self._serializer.dumps({"k": _digest(key), "n": secrets.token_urlsafe(16)})
        return IssuedToken(token, new_cookie)

    def check(self, request: web.Request, token: str | None) -> str:
        """The nonce of a valid ``token`` submitted with ``request``; :class:`FormRefused` else."""
        key = request.cookies.get(FORM_COOKIE, "")
        if not token or not key:
            raise FormRefused("the form has no security token: reload the page and try again")
        try:
            data = self._serializer.loads(token, max_age=self.max_age_seconds)
        except BadData:
            raise FormRefused("the form has expired or was altered: reload the page") from None
        if not isinstance(data, dict) or not isinstance(data.get("k"), str):
            raise FormRefused("the form's security token is not one of ours")
        if not hmac.compare_digest(data["k"], _digest(key)):
            raise FormRefused("the form was opened in another browser session: reload the page")
        nonce = data.get("n")
        if not isinstance(nonce, str) or not nonce:
            raise FormRefused("the form's security token is not one of ours")
        return nonce

    def attach(self, response: web.StreamResponse, issued: IssuedToken, *, secure: bool) -> None:
        if issued.cookie is not None:
            set_private_cookie(response, FORM_COOKIE, issued.cookie, secure=secure, max_age=None)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()
