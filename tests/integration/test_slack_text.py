"""What people wrote in Slack arrives as they wrote it -- and can always be stored.

Slack escapes ``&``, ``<`` and ``>``, writes mentions and links as markup and shares files by
private URL; the ticket must show the words, the names and the files, and what spoc posts back
must show a ``<`` as a ``<``. Edits and deletions are recorded on the ticket, never lost.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.slack_api import BOT_USER_ID
from tests.integration.slack_support import (
    ALICE,
    BOB,
    DM,
    SlackDesk,
    channel_message,
    dm,
    slack_desk,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 2048


@pytest.fixture
async def desk(tmp_path: Path, sqlite_url: str) -> AsyncIterator[SlackDesk]:
    async with slack_desk(tmp_path, sqlite_url) as (desk, _):
        yield desk


async def only_ticket(desk: SlackDesk) -> dict[str, Any]:
    [summary] = await desk.slack_tickets()
    return await desk.harness.ticket(summary["ref"])


@pytest.mark.postgres
async def test_a_dm_with_nul_is_stored_on_postgres_and_answered(
    tmp_path: Path, pg_url: str
) -> None:
    # PostgreSQL refuses NUL in text: unclean, the contact failed (503) on every Slack retry.
    async with slack_desk(tmp_path, pg_url) as (desk, _):
        desk.api.add_user("U0NUL", "nul@example.org", "Nul\x00 Person")
        status, _ = await desk.event(dm("VPN\x00 down\x1b[0m", desk.next_ts(), user="U0NUL"))
        assert status == 200
        ticket = await only_ticket(desk)
        assert ticket["subject"] == "VPN down[0m"
        assert ticket["contacts"][0]["text"] == "VPN down[0m"
        assert ticket["requester"]["name"] == "Nul Person"
        [ack] = await desk.api.wait_for("chat.postMessage")
        assert ticket["ref"] in ack.args["text"]


async def test_escaped_text_is_stored_as_written_and_posted_back_escaped(desk: SlackDesk) -> None:
    # The report: "<img src=x> & more" showed up everywhere as "&lt;img src=x&gt; &amp; more".
    status, _ = await desk.event(dm("&lt;img src=x&gt; &amp; more", desk.next_ts()))
    assert status == 200
    [summary] = await desk.slack_tickets()
    assert summary["subject"] == "<img src=x> & more"
    ticket = await desk.harness.ticket(summary["ref"])
    assert ticket["contacts"][0]["text"] == "<img src=x> & more"
    status, _ = await desk.harness.api(
        "POST", f"/api/tickets/{ticket['ref']}/reply", {"text": "Try <Ctrl> & <Alt> <@U0BOB>"}
    )
    assert status == 202
    ack, reply = await desk.api.wait_for("chat.postMessage", 2)
    assert "<" not in ack.args["text"]
    assert reply.args["text"] == "Try &lt;Ctrl&gt; &amp; &lt;Alt&gt; &lt;@U0BOB&gt;"


async def test_a_mention_with_a_link_and_a_file_is_what_the_agent_sees(desk: SlackDesk) -> None:
    ts = desk.next_ts()
    event = channel_message(
        f"<@{BOT_USER_ID}> printer jams &amp; beeps, <@{BOB}> saw it too: "
        "<https://wiki.example/p|the wiki>",
        ts,
        kind="app_mention",
    )
    event["files"] = [desk.api.add_file("F0SCREEN", "jam.png", PNG, "image/png")]
    status, _ = await desk.event(event)
    assert status == 200
    ticket = await only_ticket(desk)
    [contact] = ticket["contacts"]
    # The example in docs/slack.md, "What an agent sees".
    said = "printer jams & beeps, @Bob Builder saw it too: the wiki (https://wiki.example/p)"
    assert contact["subject"] == said
    assert (
        contact["text"]
        == f"{said}\n\nSlack: https://example.slack.com/archives/C0GENERAL/p{ts.replace('.', '')}"
    )
    assert contact["attachments"] == [
        {
            "filename": "jam.png",
            "content_type": "image/png",
            "size": len(PNG),
            "sha256": hashlib.sha256(PNG).hexdigest(),
        }
    ]
    [download] = desk.api.called("files-pri")
    assert download.token == "xoxb-1234-5678-fake"
    assert {c.args["user"] for c in desk.api.called("users.info")} == {ALICE, BOB}


async def test_files_that_cannot_be_kept_stay_as_links_with_the_reason(desk: SlackDesk) -> None:
    big = desk.api.add_file("F0BIG", "capture.mov", b"x", "video/quicktime", size=26 * 2**20)
    moved = desk.api.add_file("F0MOVED", "log.txt", b"log", "text/plain")
    desk.api.file_redirects["T0001-F0MOVED/download/log.txt"] = "https://evil.example/log.txt"
    foreign = desk.api.add_file("F0FAR", "x.pdf", b"%PDF", "application/pdf")
    foreign["url_private_download"] = "https://files.evil.example/x.pdf"
    drive = {
        "id": "F0DRIVE",
        "name": "Budget",
        "mimetype": "application/vnd.google-apps",
        "mode": "external",
        "is_external": True,
        "url_private": "https://docs.google.com/x",
    }
    event = dm("see attached", desk.next_ts()) | {
        "subtype": "file_share",
        "files": [big, moved, foreign, drive],
    }
    status, _ = await desk.event(event)
    assert status == 200
    [contact] = (await only_ticket(desk))["contacts"]
    assert contact["attachments"] == []
    notes = contact["text"].split("\n\n")[1].splitlines()
    assert notes == [
        f"File not kept: capture.mov ({big['url_private_download']}): over 25 MB",
        f"File not kept: log.txt ({moved['url_private_download']}): redirected to evil.example",
        "File not kept: x.pdf (https://files.evil.example/x.pdf): not fetched from"
        " files.evil.example",
        "File not kept: Budget (https://docs.google.com/x): a link to a file kept outside Slack",
    ]
    # Only the redirected file was asked for: the big one by its size, the others by host.
    assert [c.args["path"] for c in desk.api.called("files-pri")] == [
        "T0001-F0MOVED/download/log.txt"
    ]


def changed(ts: str, text: str, previous: str, edited_ts: str) -> dict[str, Any]:
    return {
        "type": "message",
        "subtype": "message_changed",
        "hidden": True,
        "channel": DM,
        "channel_type": "im",
        "ts": edited_ts,
        "event_ts": edited_ts,
        "message": {
            "type": "message",
            "user": ALICE,
            "text": text,
            "ts": ts,
            "edited": {"user": ALICE, "ts": edited_ts},
        },
        "previous_message": {"type": "message", "user": ALICE, "text": previous, "ts": ts},
    }


async def test_an_edit_and_a_deletion_are_recorded_on_the_ticket_without_a_new_ticket(
    tmp_path: Path, db_url: str
) -> None:
    async with slack_desk(tmp_path, db_url) as (desk, _):
        ts = desk.next_ts()
        await desk.event(dm("VPN down", ts), event_id="Ev1")
        edited_ts = desk.next_ts()
        status, _ = await desk.event(
            changed(ts, "VPN down &amp; <@U0BOB> too", "VPN down", edited_ts), event_id="Ev2"
        )
        assert status == 200
        deleted = {
            "type": "message",
            "subtype": "message_deleted",
            "hidden": True,
            "channel": DM,
            "channel_type": "im",
            "ts": desk.next_ts(),
            "deleted_ts": ts,
            "previous_message": {"type": "message", "user": ALICE, "text": "VPN down", "ts": ts},
        }
        status, _ = await desk.event(deleted, event_id="Ev3")
        assert status == 200
        ticket = await only_ticket(desk)
        assert [c["text"] for c in ticket["contacts"]] == ["VPN down"]  # the first text stays
        events = {e["type"]: e["detail"] for e in ticket["events"]}
        contact_id = ticket["contacts"][0]["id"]
        assert events["contact.edited"] == {
            "contact_id": contact_id,
            "text": "VPN down & @Bob Builder too",
            "edited_ts": edited_ts,
        }
        assert events["contact.deleted"] == {"contact_id": contact_id, "deleted_ts": deleted["ts"]}
        await desk.harness.settle()
        assert len(desk.api.called("chat.postMessage")) == 1  # the first message's ack only


async def test_an_edit_of_a_message_that_is_no_ticket_is_ignored(desk: SlackDesk) -> None:
    ts = desk.next_ts()
    status, _ = await desk.event(changed(ts, "hello all", "hello", desk.next_ts()))
    assert status == 200 and await desk.slack_tickets() == []
