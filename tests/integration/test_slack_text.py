"""What people wrote in Slack arrives as they wrote it -- and can always be stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.slack_support import dm, slack_desk


@pytest.mark.postgres
async def test_a_dm_with_nul_is_stored_on_postgres_and_answered(
    tmp_path: Path, pg_url: str
) -> None:
    # PostgreSQL refuses NUL in text: unclean, the contact failed (503) on every Slack retry.
    async with slack_desk(tmp_path, pg_url) as (desk, _):
        desk.api.add_user("U0NUL", "nul@example.org", "Nul\x00 Person")
        status, _ = await desk.event(dm("VPN\x00 down\x1b[0m", desk.next_ts(), user="U0NUL"))
        assert status == 200
        [summary] = await desk.slack_tickets()
        ticket = await desk.harness.ticket(summary["ref"])
        assert ticket["subject"] == "VPN down[0m"
        assert ticket["contacts"][0]["text"] == "VPN down[0m"
        assert ticket["requester"]["name"] == "Nul Person"
        [ack] = await desk.api.wait_for("chat.postMessage")
        assert summary["ref"] in ack.args["text"]
