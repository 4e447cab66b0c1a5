"""Twilio, played locally: its REST API as spoc calls it, and its webhooks as Twilio sends them.

:class:`FakeTwilioAPI`
    An aiohttp server on 127.0.0.1 with the two endpoints spoc uses, built from Twilio's
    documented shapes: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (basic auth,
    form ``To``/``From``/``Body`` -> ``201`` JSON with a ``sid``; a bad ``To`` -> ``400`` with
    Twilio's error code 21211) and ``GET …/Recordings/{RecordingSid}.wav`` (basic auth -> the
    audio; ``GET /storage/{RecordingSid}.wav`` serves it without credentials, as a redirect
    target). ``fail_next`` makes the next calls answer ``503``. Every call is recorded. A
    recording in ``redirects`` answers ``302`` to its URL instead; while ``held`` is an unset
    ``asyncio.Event`` recordings are answered only once it is set (storage being slow).

:class:`ConnectionTrap`
    A TCP listener on another loopback address that only counts who connects: where a
    redirect must never lead.

:class:`TwilioPhone`
    Plays Twilio towards a gateway: POSTs the form fields Twilio sends, signed with twilio's own
    ``RequestValidator.compute_signature``, parses every TwiML answer with ``xml.etree`` and
    follows the ``action`` URLs the gateway wrote, like a caller pressing keys would. Like
    Twilio, it gives up on an answer after 15 seconds.
"""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator
from yarl import URL

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "twilio-test-auth-token-0123456789"
DESK_NUMBER = "+12025550199"
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
WAV = b"RIFF$\x00\x00\x00WAVEfmt " + bytes(range(64))


def sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@dataclass
class FakeTwilioAPI:
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    messages: list[dict[str, str]] = field(default_factory=list)
    downloads: list[str] = field(default_factory=list)
    recordings: dict[str, bytes] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)  # recording sid -> Location
    held: asyncio.Event | None = None
    queries: list[str] = field(default_factory=list)  # the query string of each download
    fail_next: int = 0
    base_url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        prefix = "/2010-04-01/Accounts/{account}"
        app.router.add_post(prefix + "/Messages.json", self._message)
        app.router.add_get(prefix + "/Recordings/{recording}.wav", self._recording)
        app.router.add_get("/storage/{recording}.wav", self._storage)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def recording_url(self, recording_sid: str) -> str:
        """The ``RecordingUrl`` Twilio would send (no extension)."""
        return f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Recordings/{recording_sid}"

    def storage_url(self, recording_sid: str) -> str:
        """Where a redirect may send a download: the file, no credentials needed."""
        return f"{self.base_url}/storage/{recording_sid}.wav"

    def _authorized(self, request: web.Request) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return (
            request.match_info["account"] == self.account_sid
            and request.headers.get("Authorization") == f"Basic {expected}"
        )

    async def _message(self, request: web.Request) -> web.Response:
        if self.fail_next:
            self.fail_next -= 1
            return web.json_response({"code": 20500, "message": "Internal error"}, status=503)
        if not self._authorized(request):
            return web.json_response({"code": 20003, "message": "Authenticate"}, status=401)
        form = await request.post()
        message = {k: str(v) for k, v in form.items()}
        if not _E164.match(message.get("To", "")):
            return web.json_response(
                {"code": 21211, "message": "Invalid 'To' Phone Number"}, status=400
            )
        message["sid"] = sid("SM")
        self.messages.append(message)
        return web.json_response(
            {"sid": message["sid"], "status": "queued", "to": message["To"]}, status=201
        )

    async def _recording(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"code": 20003, "message": "Authenticate"}, status=401)
        recording = request.match_info["recording"]
        self.downloads.append(recording)
        self.queries.append(request.query_string)
        if self.held is not None:
            await self.held.wait()
        if recording in self.redirects:
            raise web.HTTPFound(self.redirects[recording])
        data = self.recordings.get(recording)
        if data is None:
            return web.json_response({"code": 20404, "message": "Not found"}, status=404)
        return web.Response(body=data, content_type="audio/x-wav")

    async def _storage(self, request: web.Request) -> web.Response:
        recording = request.match_info["recording"]
        self.downloads.append(recording)
        data = self.recordings.get(recording)
        if data is None or "Authorization" in request.headers:  # credentials must not follow
            return web.json_response({"code": 20404, "message": "Not found"}, status=404)
        return web.Response(body=data, content_type="audio/x-wav")


class ConnectionTrap:
    """Counts the TCP connections made to ``host`` (another loopback address by default)."""

    def __init__(self, host: str = "127.0.0.2") -> None:
        self.host = host
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connected, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def url(self, path: str = "/recording.wav", scheme: str = "https") -> str:
        return f"{scheme}://{self.host}:{self.port}{path}"

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


@dataclass
class TwiML:
    """One answer from the gateway, parsed."""

    status: int
    content_type: str
    text: str

    @property
    def root(self) -> ET.Element:
        assert self.status == 200, (self.status, self.text)
        assert self.content_type == "text/xml", self.content_type
        root = ET.fromstring(self.text)
        assert root.tag == "Response", self.text
        return root

    @property
    def verbs(self) -> list[str]:
        return [child.tag for child in self.root]

    def find(self, tag: str) -> ET.Element:
        element = self.root.find(f".//{tag}")
        assert element is not None, f"no <{tag}> in {self.text}"
        return element

    @property
    def said(self) -> str:
        return " ".join((e.text or "") for e in self.root.iter("Say"))

    def url(self, tag: str, attribute: str = "action") -> str:
        element = self.find(tag)
        if attribute == "text":
            assert element.text, self.text
            return element.text
        value = element.get(attribute)
        assert value, f"<{tag}> has no {attribute}: {self.text}"
        return value


class TwilioPhone:
    """Signs and sends webhook requests the way Twilio does."""

    def __init__(self, base_url: str, auth_token: str = AUTH_TOKEN) -> None:
        self.base_url = base_url.rstrip("/")
        self.validator = RequestValidator(auth_token)
        # Twilio waits 15 s for a webhook's answer, then gives up (error 11200).
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))

    async def close(self) -> None:
        await self.session.close()

    def sign(self, url: str, params: dict[str, str]) -> str:
        signature: str = self.validator.compute_signature(url, params)
        return signature

    async def post(
        self, url: str, params: dict[str, str], *, signature: str | None = None, sign: bool = True
    ) -> TwiML:
        if not url.startswith("http"):
            url = self.base_url + url
        headers = {}
        if sign:
            headers["X-Twilio-Signature"] = signature or self.sign(url, params)
        async with self.session.post(URL(url, encoded=True), data=params, headers=headers) as r:
            return TwiML(r.status, r.content_type, await r.text())

    def call(self, caller: str = "+12025550100", call_sid: str | None = None) -> Call:
        return Call(self, caller, call_sid or sid("CA"))

    async def sms(self, sender: str, body: str, message_sid: str | None = None) -> TwiML:
        params = {
            "MessageSid": message_sid or sid("SM"),
            "SmsSid": message_sid or sid("SM"),
            "AccountSid": ACCOUNT_SID,
            "From": sender,
            "To": DESK_NUMBER,
            "Body": body,
            "NumMedia": "0",
            "ApiVersion": "2010-04-01",
        }
        return await self.post("/twilio/sms", params)


@dataclass
class Call:
    """One call: each method is what Twilio does next, given the TwiML it got last."""

    phone: TwilioPhone
    caller: str
    call_sid: str
    last_record: TwiML | None = None

    def params(self, **extra: str) -> dict[str, str]:
        return {
            "AccountSid": ACCOUNT_SID,
            "ApiVersion": "2010-04-01",
            "CallSid": self.call_sid,
            "CallStatus": "in-progress",
            "Called": DESK_NUMBER,
            "Caller": self.caller,
            "Direction": "inbound",
            "From": self.caller,
            "To": DESK_NUMBER,
            **extra,
        }

    async def _follow(self, url: str, **extra: str) -> TwiML:
        answer = await self.phone.post(url, self.params(**extra))
        if answer.status == 200 and "<Record" in answer.text:
            self.last_record = answer
        return answer

    async def start(self) -> TwiML:
        return await self._follow("/twilio/voice", CallStatus="ringing")

    async def press(self, twiml: TwiML, digits: str) -> TwiML:
        return await self._follow(twiml.url("Gather"), Digits=digits)

    async def say(self, twiml: TwiML, speech: str) -> TwiML:
        return await self._follow(twiml.url("Gather"), SpeechResult=speech, Confidence="0.9")

    async def stay_silent(self, twiml: TwiML) -> TwiML:
        """No input: Twilio goes on to the <Redirect> after the <Gather>."""
        return await self._follow(twiml.url("Redirect", "text"))

    async def dial_ended(self, twiml: TwiML, status: str) -> TwiML:
        return await self._follow(twiml.url("Dial"), DialCallStatus=status)

    def _recording(self, recording_sid: str, url: str, seconds: int) -> dict[str, str]:
        return {
            "RecordingSid": recording_sid,
            "RecordingUrl": url,
            "RecordingDuration": str(seconds),
        }

    async def record(
        self, twiml: TwiML, recording_sid: str, url: str = "", seconds: int = 12
    ) -> TwiML:
        """The caller spoke and hung up or pressed #: Twilio requests <Record action>."""
        url = (
            url
            or f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{recording_sid}"
        )
        return await self._follow(
            twiml.url("Record"), **self._recording(recording_sid, url, seconds)
        )

    async def recording_ready(
        self, twiml: TwiML, recording_sid: str, url: str = "", seconds: int = 12
    ) -> TwiML:
        url = (
            url
            or f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{recording_sid}"
        )
        return await self._follow(
            twiml.url("Record", "recordingStatusCallback"),
            RecordingStatus="completed",
            **self._recording(recording_sid, url, seconds),
        )

    async def transcribed(
        self, twiml: TwiML, transcription_sid: str, recording_sid: str, text: str
    ) -> TwiML:
        return await self._follow(
            twiml.url("Record", "transcribeCallback"),
            TranscriptionSid=transcription_sid,
            TranscriptionText=text,
            TranscriptionStatus="completed",
            RecordingSid=recording_sid,
        )

    async def hang_up(self, duration: int = 20) -> TwiML:
        """The call-status callback configured on the number: the call is over."""
        return await self._follow(
            "/twilio/voice/status", CallStatus="completed", CallDuration=str(duration)
        )


def attributes(element: ET.Element) -> dict[str, Any]:
    return dict(element.attrib)
