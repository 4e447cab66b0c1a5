"""A gateway with ``[[forward]]`` targets and their secrets, over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tests.integration.gateway_harness import WAIT_SECONDS, GatewayHarness, running_gateway

MAIL = (
    b"From: Alice <alice@example.org>\r\nTo: servicedesk@example.com\r\n"
    b"Subject: SAP is down\r\nMessage-ID: <first@mail.example.org>\r\n\r\n"
    b"Nobody can log in to SAP since 9:00.\r\n"
)


def forwarding_gateway(
    directory: Path, db_url: str, extra_config: str, environ: Mapping[str, str]
) -> contextlib.AbstractAsyncContextManager[GatewayHarness]:
    return running_gateway(directory, db_url, extra_config=extra_config, environ=environ)


async def wait_until(probe: Callable[[], Any], what: str, seconds: float = WAIT_SECONDS) -> Any:
    """Poll ``probe`` (sync or async) until it returns something truthy."""
    try:
        async with asyncio.timeout(seconds):
            while True:
                value = probe()
                if asyncio.iscoroutine(value):
                    value = await value
                if value:
                    return value
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def forward_state(harness: GatewayHarness, ref: str, target: str) -> dict[str, Any]:
    ticket = await harness.ticket(ref)
    return next(f for f in ticket["forwards"] if f["target"] == target)


async def wait_for_state(
    harness: GatewayHarness, ref: str, target: str, state: str, seconds: float = 20
) -> dict[str, Any]:
    """The ticket's forward record for ``target`` once its state is ``state``."""

    async def reached() -> dict[str, Any] | None:
        record = await forward_state(harness, ref, target)
        return record if record["state"] == state else None

    found: dict[str, Any] = await wait_until(reached, f"{target} to be {state}", seconds)
    return found
