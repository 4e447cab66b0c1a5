"""The SMS sender against the fake Twilio Messages API: what is delivered, what is retried."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from channels.outbound import DeliveryError
from channels.outbound.sms import MAX_BODY_CHARS, TwilioSMSSender, TwilioSMSSettings
from tests.fakes.twilio_api import ACCOUNT_SID, AUTH_TOKEN, DESK_NUMBER, FakeTwilioAPI
from tests.integration.gateway_harness import free_port

ALICE = "+12025550100"


@pytest.fixture
async def api() -> AsyncIterator[FakeTwilioAPI]:
    fake = FakeTwilioAPI()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def sender(base_url: str, token: str = AUTH_TOKEN) -> TwilioSMSSender:
    return TwilioSMSSender(
        TwilioSMSSettings(ACCOUNT_SID, token, DESK_NUMBER, api_base_url=base_url, timeout_seconds=5)
    )


async def test_a_reply_is_posted_with_basic_auth_and_the_ref_first(api: FakeTwilioAPI) -> None:
    message_sid = await sender(api.base_url).send(
        {"to": ALICE, "text": "Try again now.", "ticket_ref": "SD-42"}
    )
    assert api.messages == [
        {"To": ALICE, "From": DESK_NUMBER, "Body": "SD-42: Try again now.", "sid": message_sid}
    ]


async def test_a_long_reply_is_cut_to_twilios_limit(api: FakeTwilioAPI) -> None:
    await sender(api.base_url).send({"to": ALICE, "text": "x" * 5000, "ticket_ref": "SD-1"})
    assert len(api.messages[0]["Body"]) == MAX_BODY_CHARS


async def test_a_server_error_is_temporary(api: FakeTwilioAPI) -> None:
    api.fail_next = 1
    with pytest.raises(DeliveryError) as caught:
        await sender(api.base_url).send({"to": ALICE, "text": "x", "ticket_ref": "SD-1"})
    assert not caught.value.permanent
    assert "503" in str(caught.value)


async def test_a_refused_number_is_permanent(api: FakeTwilioAPI) -> None:
    with pytest.raises(DeliveryError) as caught:
        await sender(api.base_url).send({"to": "+", "text": "x", "ticket_ref": "SD-1"})
    assert caught.value.permanent
    assert "21211" in str(caught.value)


async def test_an_unreachable_api_is_temporary() -> None:
    with pytest.raises(DeliveryError) as caught:
        await sender(f"http://127.0.0.1:{free_port()}").send(
            {"to": ALICE, "text": "x", "ticket_ref": "SD-1"}
        )
    assert not caught.value.permanent


@pytest.mark.parametrize("payload", [{}, {"to": "alice@example.org", "text": "x"}, {"to": ALICE}])
async def test_a_malformed_payload_is_permanent(
    api: FakeTwilioAPI, payload: dict[str, str]
) -> None:
    with pytest.raises(DeliveryError) as caught:
        await sender(api.base_url).send(payload)
    assert caught.value.permanent
    assert api.messages == []
