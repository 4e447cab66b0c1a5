"""Edits and deletions of a stored chat message: events on its ticket; nothing else moves."""

from __future__ import annotations

from normalizer.contact import Channel
from normalizer.revision import ContactRevision, RevisionKind
from router.revisions import ContactRevisions
from router.tickets import TicketQuery
from tests.unit.router.conftest import Desk
from tests.unit.router.test_slack_acks import queued, slack

KEY = "D0ALICE:1700000000.000100"


def edit(text: str, at: str = "1700000100.000000", key: str = KEY) -> ContactRevision:
    return ContactRevision(Channel.SLACK, (key, f"shortcut:{key}"), RevisionKind.EDITED, at, text)


async def test_an_edit_is_an_event_and_the_contact_keeps_its_first_text(desk: Desk) -> None:
    opened = await desk.router.submit(slack("VPN down", KEY))
    revisions = ContactRevisions(desk.store, "SD", desk.clock)
    desk.clock.advance(minutes=5)
    result = await revisions.revise(edit("VPN down since 9"))
    assert result is not None and result.ticket_ref == opened.ticket_ref and not result.duplicate
    ticket = await desk.tickets.get(opened.ticket_ref)
    assert [c["text"] for c in ticket["contacts"]] == ["VPN down"]
    [edited] = [e for e in ticket["events"] if e["type"] == "contact.edited"]
    assert edited["detail"] == {
        "contact_id": opened.contact_id,
        "text": "VPN down since 9",
        "edited_ts": "1700000100.000000",
    }
    assert ticket["updated_at"] > ticket["created_at"]


async def test_the_same_edit_twice_is_recorded_once_and_a_later_one_again(desk: Desk) -> None:
    opened = await desk.router.submit(slack("VPN down", KEY))
    revisions = ContactRevisions(desk.store, "SD", desk.clock)
    await revisions.revise(edit("v2"))
    again = await revisions.revise(edit("v2"))
    await revisions.revise(edit("v3", at="1700000200.000000"))
    assert again is not None and again.duplicate
    ticket = await desk.tickets.get(opened.ticket_ref)
    assert [e["detail"]["text"] for e in ticket["events"] if e["type"] == "contact.edited"] == [
        "v2",
        "v3",
    ]


async def test_a_deletion_is_recorded_and_nothing_is_removed_or_sent(desk: Desk) -> None:
    opened = await desk.router.submit(slack("VPN down", KEY))
    before = queued(desk)
    revisions = ContactRevisions(desk.store, "SD", desk.clock)
    deleted = ContactRevision(Channel.SLACK, (KEY,), RevisionKind.DELETED, "1700000300.000000")
    assert await revisions.revise(deleted) is not None
    ticket = await desk.tickets.get(opened.ticket_ref)
    assert len(ticket["contacts"]) == 1 and ticket["contacts"][0]["text"] == "VPN down"
    [event] = [e for e in ticket["events"] if e["type"] == "contact.deleted"]
    assert event["detail"] == {"contact_id": opened.contact_id, "deleted_ts": "1700000300.000000"}
    assert queued(desk) == before  # no acknowledgement, no message to anyone


async def test_a_revision_of_a_message_the_desk_never_stored_is_not_recorded(desk: Desk) -> None:
    revisions = ContactRevisions(desk.store, "SD", desk.clock)
    assert await revisions.revise(edit("chatter", key="C0GEN:1700000000.000900")) is None
    assert (await desk.tickets.list(TicketQuery())).items == []
