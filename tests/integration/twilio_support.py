"""A gateway with Twilio enabled, the fake Twilio REST API, and a phone that plays Twilio."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fakes.twilio_api import AUTH_TOKEN, DESK_NUMBER, FakeTwilioAPI, TwilioPhone
from tests.integration.gateway_harness import GatewayHarness, RelaySink

IVR = """
[ivr]
greeting = "Welcome to the IT service desk."
max_retries = 2
gather_timeout_seconds = 4
max_recording_seconds = 90
[[ivr.options]]
digit = "1"
label = "a broken device"
category = "broken_device"
kind = "incident"
[[ivr.options]]
digit = "2"
label = "a locked account"
category = "locked_account"
kind = "service_request"
[[ivr.options]]
digit = "3"
label = "something else"
category = "other"
prompt = "Other requests."
[[ivr.options.options]]
digit = "1"
label = "talking to someone now"
category = "live_call"
action = "dial"
number = "+12025550123"
[[ivr.options.options]]
digit = "2"
label = "a new laptop"
category = "new_hardware"
kind = "service_request"
[[categories]]
name = "broken_device"
description = "Hardware that is broken."
[[categories]]
name = "locked_account"
description = "Cannot sign in."
[[categories]]
name = "other"
description = "Anything else."
[[categories]]
name = "live_call"
description = "Talk to a person now."
[[categories]]
name = "new_hardware"
description = "A new laptop or phone."
"""


def twilio_config(
    api: FakeTwilioAPI,
    spool: Path,
    *,
    download: bool = False,
    ivr_keys: str = "",
    ivr_extra: str = "",
) -> str:
    """``[twilio]`` and ``[ivr]``: ``ivr_keys`` go into ``[ivr]`` itself (``default_digit =
    "2"``), ``ivr_extra`` after the options (more tables, e.g. ``[ivr.hours]``)."""
    ivr = IVR.replace("[ivr]\n", f"[ivr]\n{ivr_keys.strip()}\n", 1) if ivr_keys else IVR
    return f"""
[twilio]
enabled = true
account_sid = "{api.account_sid}"
phone_number = "{DESK_NUMBER}"
api_base_url = "{api.base_url}"
spool_dir = "{spool}"
download_recordings = {"true" if download else "false"}
{ivr}{ivr_extra}"""


@dataclass
class PhoneDesk:
    harness: GatewayHarness
    phone: TwilioPhone
    api: FakeTwilioAPI

    async def tickets(self, **filters: str) -> list[dict[str, Any]]:
        status, body = await self.harness.api("GET", "/api/tickets", **filters)
        assert status == 200, body
        items: list[dict[str, Any]] = body["tickets"]
        return items

    async def ticket(self, ref: str) -> dict[str, Any]:
        return await self.harness.ticket(ref)


@contextlib.asynccontextmanager
async def phone_desk(
    directory: Path,
    db_url: str,
    *,
    download: bool = False,
    ivr_keys: str = "",
    ivr_extra: str = "",
    token: str | None = AUTH_TOKEN,
) -> AsyncIterator[PhoneDesk]:
    api = FakeTwilioAPI()
    await api.start()
    sink = RelaySink()
    await sink.start()
    extra = twilio_config(
        api, directory / "spool", download=download, ivr_keys=ivr_keys, ivr_extra=ivr_extra
    )
    harness = GatewayHarness(directory, db_url, sink, extra)
    if token is not None:
        harness.environ["SPOC_TWILIO_AUTH_TOKEN"] = token
    phone: TwilioPhone | None = None
    try:
        await harness.start()
        phone = TwilioPhone(harness.base_url)
        yield PhoneDesk(harness, phone, api)
    finally:
        if phone is not None:
            await phone.close()
        await harness.stop()
        await sink.stop()
        await api.stop()
