"""Outbox rows queued by a version that worded in the router (``subject`` and ``text`` finished,
no ``event``) are still delivered by a running gateway after the upgrade, as they were worded,
on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Connection

from router.outbox import enqueue
from tests.integration.gateway_harness import DESK, GatewayHarness, running_gateway


@pytest.fixture
async def desk(tmp_path: Path, db_url: str) -> AsyncIterator[GatewayHarness]:
    async with running_gateway(tmp_path, db_url) as harness:
        yield harness


def worded(kind: str, **kw: Any) -> dict[str, Any]:
    """A payload exactly as the router wrote it before the transports worded."""
    return {
        "to": "alice@example.org",
        "from_address": DESK,
        "from_name": "IT Service Desk",
        "message_id": f"spoc.7.{kind}@example.com",
        "in_reply_to": "orig@mail.example.org",
        "references": ["orig@mail.example.org"],
        "ticket_ref": "SD-7",
    } | kw


async def test_rows_worded_before_the_upgrade_are_delivered_as_worded(
    desk: GatewayHarness,
) -> None:
    ack = worded(
        "ack",
        subject="[SD-7] Printer on fire",
        text="Hello Alice,\n\nThank you for contacting us (worded by the old router).\n",
        auto_submitted="auto-replied",
    )
    reply = worded(
        "reply", subject="Re: [SD-7] Printer on fire", text="Unplug it.", auto_submitted=None
    )

    def queue(conn: Connection) -> None:
        now = datetime.now(UTC)
        enqueue(conn, "email.ack", ack, key="ack:7:alice@example.org", now=now)
        enqueue(conn, "email.reply", reply, key="reply:old-7", now=now)

    assert desk.gw.store is not None
    await desk.gw.store.write(queue)
    sent = {str(m["Message-ID"]): m for m in await desk.sink.wait_for(2)}
    await desk.settle()

    old_ack = sent["<spoc.7.ack@example.com>"]
    assert old_ack["Subject"] == "[SD-7] Printer on fire"
    assert old_ack["Auto-Submitted"] == "auto-replied"
    assert "worded by the old router" in old_ack.get_content()
    old_reply = sent["<spoc.7.reply@example.com>"]
    assert old_reply["Subject"] == "Re: [SD-7] Printer on fire"  # not "Re: Re:", not re-tagged
    assert old_reply.get_content().strip() == "Unplug it."
