"""Replies go back on the channel the requester used last; chat windows (SMS) end."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from normalizer.contact import Channel, Contact, Party, ThreadHints
from normalizer.intake import ContactRejectedError
from router.replies import ReplyNotPossible
from router.schema import outbox
from tests.unit.router.conftest import Desk, email, make_settings

ALL = frozenset({"email", "sms", "slack"})


def sms(text: str, sid: str, phone: str = "+14155552671") -> Contact:
    return Contact(
        channel=Channel.SMS,
        external_id=sid,
        sender=Party(phone=phone),
        received_at=datetime(2026, 11, 22, tzinfo=UTC),
        text=text,
        thread=ThreadHints(chat_thread=f"sms:{phone}", chat_window_seconds=3600),
    )


def slack(text: str, event_id: str, thread: str = "C42:1700000000.000100") -> Contact:
    return Contact(
        channel=Channel.SLACK,
        external_id=event_id,
        sender=Party(slack_user_id="U1"),
        received_at=datetime(2026, 11, 22, tzinfo=UTC),
        text=text,
        thread=ThreadHints(chat_thread=thread),
    )


def queued(desk: Desk) -> list[tuple[str, dict[str, object]]]:
    return desk.store.run_sync(
        lambda c: [
            (r.kind, r.payload)
            for r in c.execute(sa.select(outbox.c.kind, outbox.c.payload).order_by(outbox.c.id))
        ]
    )


async def test_sms_within_the_window_continues_the_open_ticket(desk: Desk) -> None:
    first = await desk.router.submit(sms("printer broken", "SM1"))
    desk.clock.advance(minutes=30)
    again = await desk.router.submit(sms("still broken", "SM2"))
    assert again.ticket_ref == first.ticket_ref and again.thread_reason == "chat-thread"


async def test_sms_after_the_window_opens_a_new_ticket_and_continues_that(desk: Desk) -> None:
    first = await desk.router.submit(sms("printer broken", "SM1"))
    desk.clock.advance(hours=2)
    later = await desk.router.submit(sms("vpn down", "SM2"))
    desk.clock.advance(minutes=5)
    follow = await desk.router.submit(sms("any news?", "SM3"))
    assert later.created and later.ticket_ref != first.ticket_ref
    assert follow.ticket_ref == later.ticket_ref


async def test_slack_thread_continues_its_ticket_without_a_window(desk: Desk) -> None:
    first = await desk.router.submit(slack("laptop dead", "Ev1"))
    desk.clock.advance(days=3)
    assert (await desk.router.submit(slack("any news?", "Ev2"))).ticket_ref == first.ticket_ref


async def test_reply_to_sms_ticket_is_texted_back(desk: Desk) -> None:
    desk.tickets.settings = make_settings(outbound_transports=ALL)
    ticket = await desk.router.submit(sms("printer broken", "SM1"))
    await desk.tickets.reply(ticket.ticket_ref, "On our way")
    assert queued(desk)[-1] == (
        "sms.reply",
        {
            "event": "reply",
            "to": "+14155552671",
            "text": "On our way",
            "ticket_ref": ticket.ticket_ref,
        },
    )
    shown = await desk.tickets.get(ticket.ticket_ref)
    assert shown["status"] == "open" and shown["contacts"][-1]["direction"] == "out"


async def test_reply_to_slack_ticket_goes_to_its_thread(desk: Desk) -> None:
    desk.tickets.settings = make_settings(outbound_transports=ALL)
    ticket = await desk.router.submit(slack("laptop dead", "Ev1"))
    await desk.tickets.reply(ticket.ticket_ref, "Bring it to desk 4")
    kind, payload = queued(desk)[-1]
    assert kind == "slack.reply"
    assert payload == {
        "event": "reply",
        "channel": "C42",
        "thread_ts": "1700000000.000100",
        "text": "Bring it to desk 4",
        "ticket_ref": ticket.ticket_ref,
    }


async def test_escalating_a_slack_ticket_announces_it_in_the_thread(desk: Desk) -> None:
    ticket = await desk.router.submit(slack("laptop dead", "Ev1"))
    await desk.tickets.escalate(ticket.ticket_ref, "needs a new board")
    kind, payload = queued(desk)[-1]
    assert kind == "slack.status"
    assert (payload["event"], payload["group"]) == ("escalated", "customer-support")
    assert payload["text"] == "needs a new board"  # the reason as written; Slack words it


async def test_escalating_an_email_ticket_sends_the_requester_nothing(desk: Desk) -> None:
    ticket = await desk.router.submit(email())
    before = len(queued(desk))
    await desk.tickets.escalate(ticket.ticket_ref, "needs l2")
    assert len(queued(desk)) == before


async def test_reply_on_a_transport_that_is_not_enabled_is_refused(desk: Desk) -> None:
    ticket = await desk.router.submit(sms("printer broken", "SM1"))
    with pytest.raises(ReplyNotPossible) as err:
        await desk.tickets.reply(ticket.ticket_ref, "On our way")
    assert err.value.field == "channel" and "sms" in str(err.value)


async def test_a_stranger_in_a_tickets_slack_thread_does_not_take_the_thread_over(
    desk: Desk,
) -> None:
    alice = await desk.router.submit(slack("laptop dead", "C42:1"))
    mallory = Contact(
        channel=Channel.SLACK,
        external_id="C42:2",
        sender=Party(slack_user_id="U666"),
        received_at=datetime(2026, 11, 22, tzinfo=UTC),
        text="me too",
        thread=ThreadHints(chat_thread="C42:1700000000.000100"),
    )
    stranger = await desk.router.submit(mallory)
    assert stranger.created and stranger.ticket_ref != alice.ticket_ref
    later = await desk.router.submit(slack("any news?", "C42:3"))
    assert later.ticket_ref == alice.ticket_ref


async def test_resolving_a_slack_ticket_announces_it_and_starts_the_reopen_window(
    desk: Desk,
) -> None:
    ticket = await desk.router.submit(slack("laptop dead", "Ev1"))
    shown = await desk.tickets.set_status(ticket.ticket_ref, "resolved", "new board fitted")
    assert shown["status"] == "resolved"
    assert shown["events"][-1]["type"] == "status.changed"
    assert shown["events"][-1]["detail"] == {
        "from": "new",
        "to": "resolved",
        "note": "new board fitted",
    }
    kind, payload = queued(desk)[-1]
    assert kind == "slack.status"
    assert (payload["event"], payload["status"]) == ("status", "resolved")
    assert payload["text"] == "new board fitted"
    desk.clock.advance(days=1)
    again = await desk.router.submit(slack("it died again", "Ev2"))
    assert again.ticket_ref == ticket.ticket_ref
    assert (await desk.tickets.get(ticket.ticket_ref))["status"] == "open"


async def test_setting_the_status_a_ticket_has_changes_nothing(desk: Desk) -> None:
    ticket = await desk.router.submit(email())
    await desk.tickets.set_status(ticket.ticket_ref, "pending")
    shown = await desk.tickets.set_status(ticket.ticket_ref, "pending")
    assert [e["type"] for e in shown["events"]].count("status.changed") == 1


async def test_a_status_a_ticket_cannot_be_set_to_is_refused(desk: Desk) -> None:
    ticket = await desk.router.submit(email())
    with pytest.raises(ContactRejectedError) as err:
        await desk.tickets.set_status(ticket.ticket_ref, "new")
    assert err.value.field == "status"


async def test_reply_references_keep_the_threads_root_first_however_long_the_thread(
    desk: Desk,
) -> None:
    # The root's id sorts after every later one: sorted by text and capped, it fell off.
    root = await desk.router.submit(email(message_id="zz-root@mail.example.org"))
    previous = "zz-root@mail.example.org"
    for n in range(25):
        mid = f"a{n:02d}@mail.example.org"
        await desk.router.submit(email(message_id=mid, in_reply_to=(previous,)))
        previous = mid

    await desk.tickets.reply(root.ticket_ref, "Looking into it.")

    payload = desk.store.run_sync(
        lambda c: c.execute(
            sa.select(outbox.c.payload).where(outbox.c.kind == "email.reply")
        ).scalar_one()
    )
    refs = payload["references"]
    assert refs[0] == "zz-root@mail.example.org"
    assert refs[-1] == payload["in_reply_to"] == "a24@mail.example.org"
    assert refs[-2] == "a23@mail.example.org"  # in thread order
    assert len(refs) <= 21
