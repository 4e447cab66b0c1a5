"""Jira, Zendesk and ServiceNow take no idempotency key: when an attempt created the record and
died before spoc stored its key, the next attempt must find that record by our ref and keep it,
never create a second. Each connector against its fake over a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from channels.outbound.forward import ForwardJob, ToolSettings
from channels.outbound.jira import JiraForwarder
from channels.outbound.servicenow import ServiceNowForwarder
from channels.outbound.zendesk import ZendeskForwarder
from tests.fakes import jira_api, servicenow_api, zendesk_api
from tests.fakes.saas_base import FakeSaaS


def _ticket(ref: str) -> dict[str, Any]:
    return {
        "ref": ref,
        "subject": "SAP is down",
        "channel": "email",
        "priority": "P2",
        "category": None,
        "requester": {"name": "Alice", "email": "alice@example.org"},
        "contacts": [{"id": 1, "direction": "in", "text": "Nobody can log in to SAP."}],
    }


def _job(ref: str) -> ForwardJob:
    """The ticket's creating event, as the dispatcher hands it when no key is stored."""
    return ForwardJob(
        event="ticket.created",
        ticket=_ticket(ref),
        contact=None,
        external_key=None,
        external_id=None,
        idempotency_key=f"forward:t:{ref}:created",
    )


def _settings(fake: FakeSaaS, username: str) -> ToolSettings:
    return ToolSettings(
        name="t",
        url=fake.base_url,
        username=username,
        secret=fake.password,
        allow_private_network=True,
        service_desk_id="10",
        request_type_id="25",
    )


Built = tuple[FakeSaaS, Any, Callable[[], int]]


def _jira() -> Built:
    fake = jira_api.FakeJira()
    return (
        fake,
        lambda: JiraForwarder(_settings(fake, jira_api.USERNAME)),
        lambda: len(fake.requests),
    )


def _zendesk() -> Built:
    fake = zendesk_api.FakeZendesk()
    return (
        fake,
        lambda: ZendeskForwarder(_settings(fake, zendesk_api.EMAIL)),
        lambda: len(fake.tickets),
    )


def _servicenow() -> Built:
    fake = servicenow_api.FakeServiceNow()
    build = lambda: ServiceNowForwarder(_settings(fake, servicenow_api.USERNAME))  # noqa: E731
    return fake, build, lambda: len(fake.incidents)


@pytest.fixture(params=[_jira, _zendesk, _servicenow], ids=["jira", "zendesk", "servicenow"])
async def tool(request: pytest.FixtureRequest) -> AsyncIterator[Built]:
    fake, build, count = request.param()
    await fake.start()
    yield fake, build, count
    await fake.stop()


async def test_a_create_whose_key_was_lost_keeps_the_record_the_tool_made(tool: Built) -> None:
    _, build, count = tool
    first = await build().forward(_job("SD-42"))  # the tool made it; spoc never stored the key
    again = await build().forward(_job("SD-42"))  # the retry after a restart
    assert count() == 1
    assert again == first  # the same key, and (Zendesk) our first comment known as ours


async def test_a_record_of_another_ref_is_not_taken_for_ours(tool: Built) -> None:
    _, build, count = tool
    older = await build().forward(_job("SD-42"))
    ours = await build().forward(_job("SD-4"))  # "SD-4" is inside the older "[SD-42] ..."
    assert count() == 2
    assert ours.external_key != older.external_key
    assert (await build().forward(_job("SD-4"))).external_key == ours.external_key
