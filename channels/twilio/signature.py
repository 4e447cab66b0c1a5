"""Every Twilio webhook goes through :class:`TwilioWebhook`: the signature first, then the step.

``X-Twilio-Signature`` is checked with twilio's ``RequestValidator`` against the URL Twilio
called -- ``server.public_base_url`` + the request's path and query -- and the POST form. A
missing or wrong signature answers ``403`` (text/plain) and the step never runs: nothing is
stored. When Twilio names a signing algorithm (``X-Twilio-Webhooks-Signature-Settings:
algorithm=HMAC_SHA256``) that algorithm is used, still keyed with the auth token.

A step that lacks a field it needs raises :class:`MissingField` (``400``, naming the field); the
intake's :class:`ContactRejectedError` becomes ``400`` too. Nothing here answers ``500``.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from multidict import MultiDict
from twilio.request_validator import RequestValidator, get_signature_algorithm

from normalizer.intake import ContactRejectedError

log = logging.getLogger(__name__)

Form = Mapping[str, str]
Step = Callable[[web.Request, Form], Awaitable[web.Response]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class MissingField(Exception):
    """A form field the step needs is absent or malformed."""

    def __init__(self, field: str, why: str = "is missing") -> None:
        super().__init__(f"{field} {why}")
        self.field = field


def required(form: Form, field: str) -> str:
    value = form.get(field, "").strip()
    if not value:
        raise MissingField(field)
    return value


def _plain(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", content_type="text/plain")


class TwilioWebhook:
    """Signature check and error mapping around each step handler."""

    def __init__(self, auth_token: str, public_base_url: str) -> None:
        if not auth_token:
            raise ValueError("a Twilio auth token is required")
        self._validator = RequestValidator(auth_token)
        self.base_url = public_base_url.rstrip("/")

    def url_of(self, request: web.Request) -> str:
        """The URL Twilio signed: our public base URL + the path and query it called."""
        return self.base_url + request.rel_url.raw_path_qs

    def is_valid(self, request: web.Request, params: MultiDict[str]) -> bool:
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature:
            return False
        settings = request.headers.get("X-Twilio-Webhooks-Signature-Settings")
        algorithm = get_signature_algorithm(settings)
        url = self.url_of(request)
        # The URL exactly as Twilio called it matches almost always: one HMAC. Otherwise let
        # the validator also try the URL with and without the default port, as Twilio advises.
        expected = self._validator.compute_signature(url, params, algorithm)
        if hmac.compare_digest(expected.encode(), signature.encode()):
            return True
        return bool(self._validator.validate(url, params, signature, algorithm))

    def wrap(self, step: Step) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            # Twilio signs url-encoded form fields; a body that isn't one (unparseable, or with
            # file parts) cannot carry a valid signature, so it is refused like a forged one.
            try:
                posted = await request.post()
            except ValueError:
                log.warning("refused %s: the body is not a form Twilio signed", request.path)
                return _plain(403, "invalid Twilio signature: the body is not a signed form")
            params: MultiDict[str] = MultiDict()
            for key, value in posted.items():
                if not isinstance(value, str):
                    log.warning("refused %s: a file part cannot be signed by Twilio", request.path)
                    return _plain(403, f"invalid Twilio signature: {key[:64]} is not a text field")
                params.add(key, value)
            if not self.is_valid(request, params):
                log.warning("refused %s: missing or invalid X-Twilio-Signature", request.path)
                return _plain(403, "invalid Twilio signature")
            form = {key: params[key] for key in params}
            try:
                return await step(request, form)
            except MissingField as exc:
                return _plain(400, str(exc))
            except ContactRejectedError as exc:
                log.info("refused %s: %s", request.path, exc)
                return _plain(400, f"refused: {exc}")

        return handle
