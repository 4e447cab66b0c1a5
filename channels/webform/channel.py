"""``WebFormChannel``: the ``/report`` routes, the form's limits and its answers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from aiohttp import BodyPartReader, hdrs, web

from channels.base import WebhookChannel
from channels.forms import FormGuard, FormRefused, html_templates
from channels.http_bodies import add_body_route
from channels.rate_limits import MemoryRateLimiter
from normalizer.intake import ContactRejectedError, Intake, TemporaryIntakeError
from normalizer.rate_limits import RateLimiter
from normalizer.webform import UploadedFile, contact_from_webform

log = logging.getLogger(__name__)

HONEYPOT: Final = "website"  # hidden from people by CSS; bots fill in every field
VALUE_FIELDS: Final = ("name", "email", "category", "description")
TEXT_FIELDS: Final = (*VALUE_FIELDS, "csrf", HONEYPOT)
MAX_FIELD_BYTES: Final = 1024 * 1024 + 4096  # the description may hold 1 MiB of text
# What a report sent from the form holds beyond its files: the description at its limit, the
# short fields and the multipart framing (the HTTP body budget must take one such report).
REPORT_OVERHEAD_BYTES: Final = MAX_FIELD_BYTES + 64 * 1024
FORM_MAX_AGE_SECONDS: Final = 4 * 3600
_CHUNK: Final = 64 * 1024
HOUR: Final = 3600.0


@dataclass(frozen=True, slots=True)
class WebFormSettings:
    secret: bytes = field(repr=False)
    desk_address: str
    title: str = "Report a problem"
    categories: tuple[tuple[str, str], ...] = ()  # (name, label)
    max_attachments: int = 5
    max_attachment_bytes: int = 10 * 1024 * 1024
    max_reports_per_hour: int = 5
    secure_cookies: bool = False  # public_base_url is https


class _Refused(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


@dataclass(slots=True)
class _Submission:
    fields: dict[str, str] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)


class WebFormChannel(WebhookChannel):
    name = "web"

    def __init__(
        self,
        settings: WebFormSettings,
        intake: Intake,
        clock: Callable[[], datetime] | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        """``limiter`` counts reports per client and per email address; the gateway passes the
        database's (shared by every instance), without one they are counted in this process."""
        self.settings = settings
        self.intake = intake
        self._now = clock or (lambda: datetime.now(UTC))
        self._guard = FormGuard(
            settings.secret, salt="spoc.webform", max_age_seconds=FORM_MAX_AGE_SECONDS
        )
        # Counts kept in this process are the channel's own, dropped when it stops; the
        # database's belong to every instance and stay.
        self._own_counts: MemoryRateLimiter | None = None
        if limiter is None:
            limiter = self._own_counts = MemoryRateLimiter()
        self._limiter = limiter
        self._templates = html_templates("channels.webform")

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/report", self.show)
        limit = max_report_bytes(self.settings.max_attachment_bytes)
        add_body_route(app, "/report", self.submit, max_body_bytes=limit, too_large=self._too_large)
        app.router.add_static("/report/static", str(Path(__file__).parent / "static"))

    # ---- handlers ---------------------------------------------------------------------------
    async def show(self, request: web.Request) -> web.Response:
        return self._form(request, {}, error=None, status=200)

    async def submit(self, request: web.Request) -> web.Response:
        try:
            form = await self._read(request)
            form_id = self._guard.check(request, form.fields.get("csrf"))
        except FormRefused as exc:
            return self._form(request, {}, error=(str(exc), None), status=403)
        except _Refused as exc:
            return self._refusal(request, exc)
        values = {k: v for k, v in form.fields.items() if k in VALUE_FIELDS}
        if form.fields.get(HONEYPOT, "").strip():
            log.info("web form: the hidden field was filled in (a bot?): refused, not stored")
            message = "This form was not accepted: a field that must stay empty was filled in."
            return self._form(request, values, error=(message, HONEYPOT), status=400)
        try:
            contact = contact_from_webform(
                values,
                form.files,
                form_id=form_id,
                received_at=self._now(),
                desk_address=self.settings.desk_address,
                categories=[name for name, _ in self.settings.categories],
            )
            # Only a report that would be stored counts: a typo must not use up the hour.
            if retry := await self._over_limit(request, contact.sender.email or ""):
                message = "Too many reports from you in the last hour: please try later."
                response = self._form(request, values, error=(message, None), status=429)
                response.headers["Retry-After"] = str(retry)
                return response
            result = await self.intake.submit(contact)
        except ContactRejectedError as exc:
            return self._form(request, values, error=(str(exc), exc.field), status=400)
        except TemporaryIntakeError:
            log.warning("web form: the contact could not be stored now; the user is told to retry")
            message = "We could not save your report just now. Nothing was lost: send it again."
            return self._form(request, values, error=(message, None), status=503)
        log.info("web form: %s (%s)", result.ticket_ref, "duplicate" if result.duplicate else "new")
        body = self._render("done.html", ref=result.ticket_ref, email=contact.sender.email)
        return web.Response(text=body, content_type="text/html")

    def _too_large(self, request: web.Request) -> web.Response:
        """The body budget's answer to a report declared larger than one can be (the
        ``http_bodies.TooLarge`` of ``POST /report``): the form again, as for files over the
        limit, never the API's JSON. Nothing of the body is read."""
        log.info("web form: a report of %s bytes declared, over the limit", request.content_length)
        return self._refusal(request, self._files_over_limit())

    # ---- pieces -----------------------------------------------------------------------------
    def _files_over_limit(self) -> _Refused:
        mib = self.settings.max_attachment_bytes / 1024 / 1024
        return _Refused(413, f"attachments may be {mib:g} MiB in all", "attachments")

    def _refusal(self, request: web.Request, refused: _Refused) -> web.Response:
        """The form again, empty, saying why ``refused`` (what was sent is not kept)."""
        return self._form(request, {}, error=(str(refused), refused.field), status=refused.status)

    def _form(
        self,
        request: web.Request,
        values: Mapping[str, str],
        *,
        error: tuple[str, str | None] | None,
        status: int,
    ) -> web.Response:
        issued = self._guard.issue(request)
        body = self._render(
            "report.html",
            values=values,
            error=error[0] if error else None,
            error_field=error[1] if error else None,
            csrf=issued.token,
            honeypot=HONEYPOT,
        )
        response = web.Response(text=body, status=status, content_type="text/html")
        self._guard.attach(response, issued, secure=self.settings.secure_cookies)
        return response

    def _render(self, template: str, **context: Any) -> str:
        return self._templates.get_template(template).render(settings=self.settings, **context)

    async def _over_limit(self, request: web.Request, email: str) -> int | None:
        """Seconds to wait when this client or this address sent too many reports, else None."""
        keys = [("client", request.remote or "unknown")]
        if email.strip():
            keys.append(("email", email.strip().casefold()))
        limit = self.settings.max_reports_per_hour
        for kind, value in keys:
            retry = await self._limiter.hit(f"webform.{kind}", value, limit, HOUR)
            if retry is not None:
                log.info("web form: rate limit for one %s reached", kind)
                return max(1, int(retry) + 1)
        return None

    async def _read(self, request: web.Request) -> _Submission:
        """The submitted fields and files, within the form's limits (``_Refused`` otherwise)."""
        form = _Submission()
        if request.content_type == "application/x-www-form-urlencoded":
            for key, value in (await request.post()).items():
                if key in TEXT_FIELDS and isinstance(value, str):
                    form.fields[key] = value
            return form
        if request.content_type != "multipart/form-data":
            raise _Refused(415, "send the form as multipart/form-data")
        if request.content_length is None:
            # The HTTP body budget reserves a Content-Length; a chunked upload would be charged
            # less than the files this reader may hold. Browsers always send one.
            raise _Refused(411, "send the form with a Content-Length")
        if hdrs.CONTENT_ENCODING in request.headers:
            # aiohttp inflates a compressed body as it is read: the files this reader may hold
            # would outgrow what its Content-Length reserved. Browsers never compress a form.
            raise _Refused(415, "send the form uncompressed (no Content-Encoding)")
        try:
            reader = await request.multipart()
            total = 0
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    raise _Refused(400, "nested multipart bodies are not a form")
                if part.filename is not None:
                    data = await _read_part(part, self.settings.max_attachment_bytes - total + 1)
                    if not data and not part.filename:
                        continue  # a file input left empty
                    total += len(data)
                    if total > self.settings.max_attachment_bytes:
                        raise self._files_over_limit()
                    form.files.append(UploadedFile(part.filename, data))
                    if len(form.files) > self.settings.max_attachments:
                        raise _Refused(
                            413,
                            f"at most {self.settings.max_attachments} attachments",
                            "attachments",
                        )
                elif part.name in TEXT_FIELDS:
                    raw = await _read_part(part, MAX_FIELD_BYTES)
                    if len(raw) > MAX_FIELD_BYTES:
                        raise _Refused(413, f"{part.name} is too long", part.name)
                    try:
                        form.fields[part.name] = raw.decode("utf-8")
                    except UnicodeDecodeError:
                        raise _Refused(400, f"{part.name} is not UTF-8 text", part.name) from None
        except ValueError as exc:  # aiohttp: a malformed multipart body
            raise _Refused(400, f"the form could not be read: {exc}") from None
        return form

    async def stop(self, grace_seconds: float) -> None:
        if self._own_counts is not None:
            self._own_counts.reset()


def max_report_bytes(max_attachment_bytes: int) -> int:
    """The largest body a report sent from the form can be: its files at their limit, the
    description at its, the short fields and the multipart framing."""
    return max_attachment_bytes + REPORT_OVERHEAD_BYTES


async def _read_part(part: BodyPartReader, limit: int) -> bytes:
    """At most ``limit`` bytes of a part (a longer part comes back ``limit`` bytes long)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit and (chunk := await part.read_chunk(_CHUNK)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)[:limit]
