"""From a call or SMS record to a committed contact, with the spool behind it.

:meth:`TwilioIngest.call` and :meth:`TwilioIngest.sms` convert a record (``normalizer.telephony``)
and submit it. When the intake says "temporary" (the database is down) the record is written to
the spool and ``None`` comes back: the caller still gets a polite answer, and :meth:`replay`
hands the spooled records to the intake once it works again.

Recordings (step ``recording-file``) are downloaded with the account credentials (HTTP basic
auth, account SID and auth token) only from ``api_base_url``, so the credentials never go to any
other host; the file becomes the contact's attachment. One redirect is followed, without the
credentials, and only to ``https`` hosts under ``twilio.com`` or back to ``api_base_url``'s own
host. The download happens inside Twilio's webhook, which Twilio gives up on after 15 s, so it
gets ``download_timeout_seconds`` (10 s). A failed, refused or slow download keeps the URL only;
the contact is submitted either way.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from channels.download import DownloadRefused, fetch, url_allowed
from channels.twilio.spool import Spool
from normalizer.contact import Attachment
from normalizer.filenames import safe_filename
from normalizer.intake import ContactRejectedError, Intake, IntakeResult, TemporaryIntakeError
from normalizer.telephony import CallEvent, SmsMessage, contact_from_call, contact_from_sms

log = logging.getLogger(__name__)

MAX_RECORDING_BYTES = 25 * 1024 * 1024
TWILIO_WEBHOOK_TIMEOUT_SECONDS = 15.0  # Twilio's own: it gives up on our answer after this
DOWNLOAD_TIMEOUT_SECONDS = 10.0
REDIRECT_DOMAIN = "twilio.com"  # where Twilio's recording storage may send us


@dataclass(frozen=True, slots=True)
class IngestSettings:
    spool_dir: Path
    sms_window_seconds: float = 24 * 3600.0
    default_region: str = "US"
    account_sid: str | None = None
    auth_token: str = field(default="", repr=False)
    api_base_url: str = "https://api.twilio.com"
    download_recordings: bool = False
    download_timeout_seconds: float = DOWNLOAD_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if not 0 < self.download_timeout_seconds < TWILIO_WEBHOOK_TIMEOUT_SECONDS:
            raise ValueError(
                "twilio: download_timeout_seconds must be between 0 and "
                f"{TWILIO_WEBHOOK_TIMEOUT_SECONDS:g} (Twilio's webhook timeout), "
                f"not {self.download_timeout_seconds!r}"
            )

    @property
    def can_download(self) -> bool:
        return self.download_recordings and bool(self.account_sid and self.auth_token)


class TwilioIngest:
    def __init__(self, intake: Intake, settings: IngestSettings) -> None:
        self.intake = intake
        self.settings = settings
        self.spool = Spool(settings.spool_dir)
        self._replay_lock = asyncio.Lock()

    async def call(self, event: CallEvent, *, spool: bool = True) -> IntakeResult | None:
        """Submit one call step; ``None`` when it was spooled. Raises ContactRejectedError."""
        recording = None
        if event.step == "recording-file" and event.recording_url:
            recording = await self.download(event.recording_url, event.step_id)
        contact = contact_from_call(
            event, recording=recording, default_region=self.settings.default_region
        )
        try:
            return await self.intake.submit(contact)
        except TemporaryIntakeError:
            if not spool:
                raise
            await asyncio.to_thread(self.spool.put, event)
            return None

    async def sms(self, message: SmsMessage, *, spool: bool = True) -> IntakeResult | None:
        """Submit one text; ``None`` when it was spooled. Raises ContactRejectedError."""
        contact = contact_from_sms(
            message,
            window_seconds=self.settings.sms_window_seconds,
            default_region=self.settings.default_region,
        )
        try:
            return await self.intake.submit(contact)
        except TemporaryIntakeError:
            if not spool:
                raise
            await asyncio.to_thread(self.spool.put, message)
            return None

    async def replay(self) -> int:
        """Submit every spooled record, oldest first; stops at the first temporary failure.

        Returns how many records were committed (duplicates included).
        """
        done = 0
        async with self._replay_lock:
            for path in await asyncio.to_thread(self.spool.pending):
                try:
                    record = await asyncio.to_thread(self.spool.load, path)
                except ValueError as exc:
                    await asyncio.to_thread(self.spool.reject, path, str(exc))
                    continue
                if record is None:  # another worker replayed it meanwhile
                    continue
                try:
                    if isinstance(record, CallEvent):
                        await self.call(record, spool=False)
                    else:
                        await self.sms(record, spool=False)
                except TemporaryIntakeError:
                    break
                except ContactRejectedError as exc:
                    await asyncio.to_thread(self.spool.reject, path, str(exc))
                    continue
                await asyncio.to_thread(self.spool.remove, path)
                done += 1
        if done:
            log.info("replayed %d spooled Twilio records", done)
        return done

    async def download(self, url: str, recording_sid: str) -> Attachment | None:
        """The recording as an attachment, or None (not allowed, or the download failed)."""
        settings = self.settings
        base = settings.api_base_url.rstrip("/") + "/"
        if not settings.can_download or not url.startswith(base):
            if settings.can_download:
                log.warning("not downloading a recording from outside %s", base)
            return None
        assert settings.account_sid is not None
        auth = {
            "Authorization": aiohttp.encode_basic_auth(settings.account_sid, settings.auth_token)
        }
        try:
            fetched = await fetch(
                wav_url(url),
                headers=auth,
                allowed=lambda location: redirect_allowed(location, base),
                max_bytes=MAX_RECORDING_BYTES,
                timeout_seconds=settings.download_timeout_seconds,
                default_type="audio/wav",
            )
        except DownloadRefused as exc:
            log.warning("recording %s: %s: kept as a URL", recording_sid, exc)
            return None
        data, content_type = fetched.data, fetched.content_type
        return Attachment(
            filename=safe_filename(f"{recording_sid}.wav", content_type),
            content_type=content_type,
            sha256=hashlib.sha256(data).hexdigest(),
            data=data,
        )


def wav_url(url: str) -> str:
    """Twilio's ``RecordingUrl`` with ``.wav`` on its path (a query string stays a query)."""
    parts = urlsplit(url)
    if parts.path.endswith(".wav"):
        return url
    return urlunsplit(parts._replace(path=parts.path + ".wav"))


def redirect_allowed(location: str, base_url: str) -> bool:
    """May a recording download follow a redirect to ``location`` (absolute)?

    Back to ``base_url``'s own scheme, host and port, or to ``https`` on ``twilio.com`` and its
    subdomains -- never to an IP address (a private or loopback one least of all) or any other
    host, which a forged or tampered ``RecordingUrl`` answer could point inside our network.
    """
    return url_allowed(
        location,
        base_url,
        lambda host: host == REDIRECT_DOMAIN or host.endswith("." + REDIRECT_DOMAIN),
    )
