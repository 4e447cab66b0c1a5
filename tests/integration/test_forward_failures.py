"""How the Zendesk and ServiceNow connectors meet their tools' failures, over real sockets:
429 with ``Retry-After`` and 5xx retried until the record is made once; 401 and 403
dead-lettered with the tool's reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.saas_base import FakeSaaS
from tests.integration.forward_support import MAIL, forwarding_gateway, wait_for_state
from tests.integration.tools import SERVICENOW, ZENDESK, Tool, created, fake_for


@pytest.fixture(params=[ZENDESK, SERVICENOW], ids=lambda t: t.kind)
def tool(request: pytest.FixtureRequest) -> Tool:
    chosen: Tool = request.param
    return chosen


@pytest.fixture
async def fake(tool: Tool) -> AsyncIterator[FakeSaaS]:
    server = fake_for(tool)
    await server.start()
    yield server
    await server.stop()


async def test_429_with_retry_after_and_5xx_are_retried_and_the_record_made_once(
    tmp_path: Path, sqlite_url: str, tool: Tool, fake: FakeSaaS
) -> None:
    fake.script = [(429, {"Retry-After": "1"}), (503, {}), (500, {})]
    async with forwarding_gateway(tmp_path, sqlite_url, tool.config(fake.base_url), tool.env) as gw:
        ref = (await gw.send_mail(MAIL)).queued_as
        record = await wait_for_state(gw, ref, tool.name, "delivered", seconds=30)

    assert len(created(fake)) == 1
    assert record["external_key"]
    assert record["last_error"] is None


async def test_401_is_dead_lettered_with_the_tools_reason(
    tmp_path: Path, sqlite_url: str, tool: Tool, fake: FakeSaaS
) -> None:
    env = {**tool.env, **tool.wrong_secret_env}
    async with forwarding_gateway(tmp_path, sqlite_url, tool.config(fake.base_url), env) as gw:
        ref = (await gw.send_mail(MAIL)).queued_as
        record = await wait_for_state(gw, ref, tool.name, "dead")

    assert "answered 401" in record["last_error"]
    assert ("authenticate" in record["last_error"].lower()) or (
        "Not Authenticated" in record["last_error"]
    )
    assert created(fake) == []


async def test_403_is_dead_lettered_after_the_permanent_attempts(
    tmp_path: Path, sqlite_url: str, tool: Tool, fake: FakeSaaS
) -> None:
    fake.script = [(403, {})] * 3
    async with forwarding_gateway(tmp_path, sqlite_url, tool.config(fake.base_url), tool.env) as gw:
        ref = (await gw.send_mail(MAIL)).queued_as
        record = await wait_for_state(gw, ref, tool.name, "dead")

    assert "answered 403" in record["last_error"]
    assert len(fake.calls) == 3
