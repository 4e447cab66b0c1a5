"""One real contact through every channel, sent the way the outside world sends it.

Email and fax-to-email over SMTP with the stdlib's ``smtplib``; a phone call as Twilio makes it
(each step signed with ``twilio``'s ``RequestValidator`` and posted to the ``action`` URL the
gateway wrote in its last TwiML); an SMS, signed the same way; a Slack DM as an Events API
``event_callback``, signed as Slack signs (``slack_sdk``'s ``SignatureVerifier``); the web form
at ``/report`` with its form token; and ``POST /api/contacts`` with the bearer token.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import secrets
import smtplib
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import aiohttp
from pypdf import PdfWriter
from slack_sdk.signature import SignatureVerifier
from twilio.request_validator import RequestValidator
from yarl import URL

from gateway.demo.fakes import BOT_USER_ID, TEAM_ID

DESK = "servicedesk@example.com"
DESK_NUMBER = "+12025550199"
CALLER = "+14155550123"
TEXTER = "+14155550145"
SLACK_USER, SLACK_DM = "U0DEMOALEX", "D0DEMOALEX"
_FORM_TOKEN = re.compile(r'name="csrf" value="([^"]+)"')
_REF = re.compile(r'<strong id="ref">([A-Z]+-\d+)</strong>')


class DemoStepFailed(Exception):
    """A channel did not answer as it should; the message says which and what came back."""


@dataclass(frozen=True, slots=True)
class Desk:
    """Where the demo gateway listens and the throwaway secrets it was started with."""

    base_url: str
    smtp_port: int
    api_token: str
    twilio_account_sid: str
    twilio_auth_token: str
    slack_signing_secret: str


async def drive_every_channel(desk: Desk) -> list[str]:
    """Send one contact per channel; the names of the channels driven, in order."""
    await asyncio.to_thread(_send_mail, desk, _email())
    await asyncio.to_thread(_send_mail, desk, _fax(), "scanner@fax.demo.example")
    await asyncio.to_thread(_send_mail, desk, _out_of_office())  # kept in the quarantine
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        twilio = _Twilio(desk, http)
        await twilio.call()
        await twilio.sms()
        await _slack_dm(desk, http)
        await _web_form(desk, http)
        await _api(desk, http)
    return ["email", "fax", "phone", "sms", "slack", "web", "api"]


# ---- mail ---------------------------------------------------------------------------------------
def _mail(sender: str, subject: str, text: str, **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = DESK
    message["Subject"] = subject
    message["Message-ID"] = f"<demo-{secrets.token_hex(6)}@{sender.rpartition('@')[2].strip('>')}>"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(text)
    return message


def _email() -> EmailMessage:
    return _mail(
        "Dana Demo <dana@example.org>",
        "Laptop will not charge",
        "Hello, my laptop stopped charging this morning. The light stays off.",
    )


def _fax() -> EmailMessage:
    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    document = io.BytesIO()
    writer.write(document)
    message = _mail(
        "Fax Service <scanner@fax.demo.example>",
        f"Fax from {CALLER}",
        "You have received a 1 page fax.",
    )
    message.add_attachment(
        document.getvalue(), maintype="application", subtype="pdf", filename="fax.pdf"
    )
    return message


def _out_of_office() -> EmailMessage:
    """Automatic mail that answers no ticket of ours: the quarantine keeps it, no ticket opens."""
    return _mail(
        "Lee Away <lee@example.org>",
        "Out of office: back on Monday",
        "I am out of the office until Monday.",
        Auto_Submitted="auto-replied",
    )


def _send_mail(desk: Desk, message: EmailMessage, envelope_from: str | None = None) -> None:
    with smtplib.SMTP("127.0.0.1", desk.smtp_port, timeout=30) as smtp:
        smtp.send_message(message, from_addr=envelope_from)


# ---- Twilio -------------------------------------------------------------------------------------
class _Twilio:
    def __init__(self, desk: Desk, http: aiohttp.ClientSession) -> None:
        self._desk = desk
        self._http = http
        self._validator = RequestValidator(desk.twilio_auth_token)

    async def _post(self, url: str, params: dict[str, str]) -> ET.Element:
        if not url.startswith("http"):
            url = self._desk.base_url + url
        signature = self._validator.compute_signature(url, params)
        headers = {"X-Twilio-Signature": signature}
        async with self._http.post(URL(url, encoded=True), data=params, headers=headers) as r:
            text = await r.text()
            if r.status != 200:
                raise DemoStepFailed(f"Twilio webhook {url} answered {r.status}: {text[:200]}")
        # The gateway's own TwiML, just received from it over loopback.
        return ET.fromstring(text)  # noqa: S314

    def _attribute(self, twiml: ET.Element, tag: str, attribute: str = "action") -> str:
        element = twiml.find(f".//{tag}")
        value = element.get(attribute) if element is not None else None
        if not value:
            raise DemoStepFailed(f"the IVR's TwiML has no <{tag} {attribute}>")
        return value

    async def call(self) -> None:
        """Ring, press 1 (a broken device), speak, hang up; the transcript follows."""
        call_sid = "CA" + secrets.token_hex(16)

        def params(**extra: str) -> dict[str, str]:
            return {
                "AccountSid": self._desk.twilio_account_sid,
                "ApiVersion": "2010-04-01",
                "CallSid": call_sid,
                "CallStatus": "in-progress",
                "Called": DESK_NUMBER,
                "Caller": CALLER,
                "Direction": "inbound",
                "From": CALLER,
                "To": DESK_NUMBER,
                **extra,
            }

        menu = await self._post("/twilio/voice", params(CallStatus="ringing"))
        record = await self._post(self._attribute(menu, "Gather"), params(Digits="1"))
        recording_sid = "RE" + secrets.token_hex(16)
        recording = {
            "RecordingSid": recording_sid,
            "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/"
            f"{self._desk.twilio_account_sid}/Recordings/{recording_sid}",
            "RecordingDuration": "9",
        }
        await self._post(self._attribute(record, "Record"), params(**recording))
        await self._post(
            self._attribute(record, "Record", "transcribeCallback"),
            params(
                TranscriptionSid="TR" + secrets.token_hex(16),
                TranscriptionText="The screen of my laptop is cracked, I dropped it.",
                TranscriptionStatus="completed",
                RecordingSid=recording_sid,
            ),
        )
        await self._post("/twilio/voice/status", params(CallStatus="completed", CallDuration="25"))

    async def sms(self) -> None:
        message_sid = "SM" + secrets.token_hex(16)
        await self._post(
            "/twilio/sms",
            {
                "MessageSid": message_sid,
                "SmsSid": message_sid,
                "AccountSid": self._desk.twilio_account_sid,
                "From": TEXTER,
                "To": DESK_NUMBER,
                "Body": "My account is locked after the password change.",
                "NumMedia": "0",
                "ApiVersion": "2010-04-01",
            },
        )


# ---- Slack, the web form, the API ---------------------------------------------------------------
async def _slack_dm(desk: Desk, http: aiohttp.ClientSession) -> None:
    ts = f"{int(time.time())}.000100"
    body = json.dumps(
        {
            "token": "unused-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": "A0DEMO",
            "type": "event_callback",
            "event_id": "Ev" + secrets.token_hex(8).upper(),
            "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
            "event": {
                "type": "message",
                "channel": SLACK_DM,
                "channel_type": "im",
                "user": SLACK_USER,
                "text": "The VPN drops every ten minutes since this morning.",
                "ts": ts,
                "event_ts": ts,
            },
        }
    ).encode()
    stamp = str(int(time.time()))
    signature = SignatureVerifier(desk.slack_signing_secret).generate_signature(
        timestamp=stamp, body=body
    )
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature or "",
    }
    async with http.post(desk.base_url + "/slack/events", data=body, headers=headers) as r:
        if r.status != 200:
            raise DemoStepFailed(f"/slack/events answered {r.status}: {(await r.text())[:200]}")


async def _web_form(desk: Desk, http: aiohttp.ClientSession) -> None:
    async with http.get(desk.base_url + "/report") as r:
        found = _FORM_TOKEN.search(await r.text())
    if found is None:
        raise DemoStepFailed("the web form at /report has no form token")
    form = {
        "csrf": found.group(1),
        "name": "Robin Demo",
        "email": "robin@example.org",
        "category": "printer",
        "description": "The printer on floor 2 prints only blank pages.",
    }
    async with http.post(desk.base_url + "/report", data=form) as r:
        page = await r.text()
    if r.status != 200 or _REF.search(page) is None:
        raise DemoStepFailed(f"the web form answered {r.status} without a ticket ref")


async def _api(desk: Desk, http: aiohttp.ClientSession) -> None:
    body: dict[str, Any] = {
        "from": {"email": "sam@example.org", "name": "Sam Demo"},
        "subject": "New starter needs an account",
        "text": "Please create an account for our new colleague starting Monday.",
        "category": "access_request",
        "external_id": "demo-" + secrets.token_hex(6),
    }
    headers = {"Authorization": f"Bearer {desk.api_token}"}
    async with http.post(desk.base_url + "/api/contacts", json=body, headers=headers) as r:
        if r.status != 201:
            raise DemoStepFailed(f"/api/contacts answered {r.status}: {(await r.text())[:200]}")
