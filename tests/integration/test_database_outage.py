"""The database goes away under a running gateway, and comes back.

Nothing is acknowledged that isn't committed: during the outage SMTP answers 451 (the sending
MTA keeps the message and retries), the API 503 and /readyz 503. Once the server is back the
retried message is stored exactly once, and the gateway needs no restart.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.migrate import upgrade
from tests.integration.gateway_harness import GatewayHarness, RelaySink
from tests.integration.twilio_support import phone_desk
from tests.support.pgcluster import PostgresCluster, wait_until_ready

pytestmark = pytest.mark.postgres


def mail(n: int) -> bytes:
    return (
        f"From: Alice <alice@example.org>\r\nTo: servicedesk@example.com\r\n"
        f"Subject: VPN broken {n}\r\nMessage-ID: <outage-{n}@example.org>\r\n\r\nHelp.\r\n"
    ).encode()


async def test_mail_during_an_outage_gets_451_and_lands_once_after_recovery(
    own_cluster: PostgresCluster, tmp_path: Path
) -> None:
    url = own_cluster.url(own_cluster.create_database())
    upgrade(url)
    sink = RelaySink()
    await sink.start()
    harness = GatewayHarness(tmp_path, url, sink)
    await harness.start()
    try:
        before = await harness.send_mail(mail(1))
        assert before.accepted

        own_cluster.halt()
        during = await harness.send_mail(mail(2))
        assert during.data is not None and during.data[0] == 451, during
        ready, _ = await harness.api("GET", "/readyz")
        assert ready == 503
        status, body = await harness.api(
            "POST", "/api/contacts", {"from": {"email": "bob@example.org"}, "text": "hi"}
        )
        assert status == 503 and body["error"]

        own_cluster.resume()
        wait_until_ready(own_cluster)
        after = await harness.send_mail(mail(2))
        assert after.accepted and after.queued_as != before.queued_as
        again = await harness.send_mail(mail(2))
        assert again.queued_as == after.queued_as
        ticket = await harness.ticket(after.queued_as)
        assert [c["external_id"] for c in ticket["contacts"]] == ["outage-2@example.org"]
        ready, _ = await harness.api("GET", "/readyz")
        assert ready == 200
    finally:
        await harness.stop()
        await sink.stop()


async def test_a_call_during_an_outage_is_answered_at_every_step_and_leaves_a_call_back_later(
    own_cluster: PostgresCluster, tmp_path: Path
) -> None:
    """The IVR keeps each call's progress in the database; with the database down every step
    still answers TwiML (the progress is skipped, logged), and the caller who hung up before
    the recording is a call-back ticket once the database is back (with the number; the choice
    is what an outage may cost)."""
    url = own_cluster.url(own_cluster.create_database())
    upgrade(url)
    async with phone_desk(tmp_path, url) as desk:
        own_cluster.halt()
        call = desk.phone.call("+12025550100")
        menu = await call.start()
        assert menu.status == 200 and "Gather" in menu.verbs
        record = await call.press(menu, "1")
        assert record.status == 200 and "Record" in record.verbs
        assert (await call.hang_up()).status == 200

        own_cluster.resume()
        wait_until_ready(own_cluster)
        async with asyncio.timeout(30):
            while not (tickets := await desk.tickets()):  # noqa: ASYNC110 - a spool has no event
                await asyncio.sleep(0.2)
        assert [t["subject"] for t in tickets] == ["Call back +12025550100"]
