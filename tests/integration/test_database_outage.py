"""The database goes away under a running gateway, and comes back.

Nothing is acknowledged that isn't committed: during the outage SMTP answers 451 (the sending
MTA keeps the message and retries), the API 503 and /readyz 503. Once the server is back the
retried message is stored exactly once, and the gateway needs no restart.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.migrate import upgrade
from tests.integration.gateway_harness import GatewayHarness, RelaySink
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
