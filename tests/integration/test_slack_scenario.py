"""One person, two front doors: Alice emails the desk, then continues in Slack.

Slack's ``users.info`` gives her email, so the Slack user is the requester her email created;
the agent's reply then goes back on the channel she used last (Slack, in her thread).
"""

from __future__ import annotations

from pathlib import Path

from tests.integration.slack_support import ALICE, ALICE_EMAIL, DM, dm, slack_desk


def mail(subject: str, body: str) -> bytes:
    lines = [
        f"From: Alice Example <{ALICE_EMAIL}>",
        "To: servicedesk@example.com",
        f"Subject: {subject}",
        "Date: Sun, 22 Nov 2026 15:00:00 +0000",
        "Message-ID: <alice-slack-1@mail.example.org>",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


async def test_email_then_slack_is_one_requester_and_replies_follow_her_to_slack(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with slack_desk(tmp_path, sqlite_url) as (desk, _):
        harness = desk.harness
        sent = await harness.send_mail(mail("Laptop broken", "It will not boot."))
        email_ref = sent.queued_as
        email_ticket = await harness.ticket(email_ref)

        ts = desk.next_ts()
        # another problem: the same one would join the email's ticket (router.linking)
        status, _ = await desk.event(dm("Could I get access to the sales shared drive?", ts))
        assert status == 200
        [slack_summary] = await desk.slack_tickets()
        slack_ticket = await harness.ticket(slack_summary["ref"])

        assert slack_ticket["requester"]["id"] == email_ticket["requester"]["id"]
        assert slack_ticket["requester"]["email"] == ALICE_EMAIL
        assert slack_ticket["requester"]["slack_user_id"] == ALICE
        status, mine = await harness.api("GET", "/api/tickets", requester=ALICE_EMAIL)
        assert status == 200
        assert {t["ref"] for t in mine["tickets"]} == {email_ref, slack_summary["ref"]}

        status, _ = await harness.api(
            "POST", f"/api/tickets/{slack_summary['ref']}/reply", {"text": "Ready at desk 4"}
        )
        assert status == 202
        posted = await desk.api.wait_for("chat.postMessage", 2)  # the ack, then the reply
        assert posted[-1].args["channel"] == DM and posted[-1].args["thread_ts"] == ts
        assert posted[-1].args["text"] == "Ready at desk 4"
