"""The receiver's ``Retry-After`` reaches the dispatcher through DeliveryError, from Slack's
``ratelimited`` answer and Twilio's 429; Twilio's 408 is worth a retry, a 404 is not. Slack
is the shared local fake; Twilio's rate limit is a local server answering as Twilio documents
(HTTP 429, error 20429, ``Retry-After``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from channels.outbound import DeliveryError
from channels.outbound.slack import SlackSender, SlackSenderSettings
from channels.outbound.sms import TwilioSMSSender, TwilioSMSSettings
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.twilio_api import ACCOUNT_SID, AUTH_TOKEN, DESK_NUMBER

SMS = {"to": "+12025550100", "text": "Try again now.", "ticket_ref": "SD-42"}


async def test_slack_ratelimited_carries_its_retry_after() -> None:
    api = FakeSlackAPI()
    await api.start()
    try:
        api.failures["chat.postMessage"] = ["ratelimited"]
        sender = SlackSender(SlackSenderSettings("xoxb-test", api_base_url=api.base_url))
        with pytest.raises(DeliveryError) as caught:
            await sender.send(
                {"channel": "C1", "text": "hi", "ticket_ref": "SD-1"}, idempotency_key="k"
            )
    finally:
        await api.stop()
    assert (caught.value.permanent, caught.value.retry_after) == (False, 1.0)


@dataclass
class TwilioAnswers:
    """A Messages endpoint answering each call with the next queued (status, headers)."""

    base_url: str = ""
    queued: list[tuple[int, dict[str, str]]] = field(default_factory=list)

    def sender(self) -> TwilioSMSSender:
        settings = TwilioSMSSettings(
            ACCOUNT_SID, AUTH_TOKEN, DESK_NUMBER, api_base_url=self.base_url
        )
        return TwilioSMSSender(settings)

    async def message(self, request: web.Request) -> web.Response:
        status, headers = self.queued.pop(0)
        code = 20429 if status == 429 else 20000 + status
        return web.json_response(
            {"code": code, "message": "as queued"}, status=status, headers=headers
        )


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioAnswers]:
    answers = TwilioAnswers()
    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", answers.message)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    answers.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield answers
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("status", "headers", "permanent", "retry_after"),
    [
        (429, {"Retry-After": "30"}, False, 30.0),
        (429, {}, False, None),
        (503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, False, 0.0),  # in the past
        (408, {}, False, None),
        (404, {}, True, None),
    ],
)
async def test_twilio_answers_map_to_retry_or_give_up(
    twilio: TwilioAnswers,
    status: int,
    headers: dict[str, str],
    permanent: bool,
    retry_after: float | None,
) -> None:
    twilio.queued.append((status, headers))
    with pytest.raises(DeliveryError) as caught:
        await twilio.sender().send(SMS, idempotency_key="reply:out-1")
    assert (caught.value.permanent, caught.value.retry_after) == (permanent, retry_after)
