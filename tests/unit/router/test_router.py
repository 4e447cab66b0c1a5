"""The router's decisions: dedupe, identity, threading, triage, assignment, acks."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from normalizer.contact import AutoClass, Channel, Contact, Hints, Kind, Party, ThreadHints
from normalizer.intake import ContactRejectedError
from router.blob_write import STREAM_FROM_BYTES
from router.router import Router
from router.schema import blobs, contacts, identities, outbox, requesters
from router.settings import AckSettings, ForwardRule, RoutingRule, TriageSettings
from tests.unit.router.conftest import Desk, attachment, email, make_settings, other


def count(desk: Desk, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    return desk.store.run_sync(
        lambda c: c.execute(
            sa.select(sa.func.count()).select_from(table).where(*where)
        ).scalar_one()
    )


async def test_first_email_opens_a_ticket_owned_by_the_service_desk(desk: Desk) -> None:
    result = await desk.router.submit(email())
    assert result.created and not result.duplicate
    assert result.ticket_ref == "SD-1"
    ticket = await desk.tickets.get("SD-1")
    assert ticket["owner"] == "service-desk" and ticket["group"] == "service-desk"
    assert ticket["tier"] == 1 and ticket["status"] == "new" and ticket["channel"] == "email"
    assert ticket["requester"]["email"] == "alice@example.org"
    assert [e["type"] for e in ticket["events"]] == ["created", "contact.added"]


async def test_same_message_twice_is_a_duplicate_and_adds_nothing(desk: Desk) -> None:
    first = await desk.router.submit(email(message_id="same@x"))
    again = await desk.router.submit(email(message_id="same@x", text="changed"))
    assert again.duplicate and again.ticket_ref == first.ticket_ref
    assert again.contact_id == first.contact_id
    assert count(desk, contacts) == 1


async def test_concurrent_submissions_are_group_committed_and_each_answered(desk: Desk) -> None:
    results = await asyncio.gather(
        *(desk.router.submit(email(sender=f"u{i}@example.org")) for i in range(40))
    )
    assert len({r.ticket_ref for r in results}) == 40
    assert count(desk, contacts) == 40


async def test_one_bad_contact_in_a_batch_fails_alone(desk: Desk) -> None:
    good = [email(sender=f"g{i}@example.org") for i in range(5)]
    bad = email(sender="bad@example.org", subject="x" * 10)
    original = desk.router.ingest

    def ingest(conn, contact, *rest):  # type: ignore[no-untyped-def]
        if contact.sender.email == "bad@example.org":
            original(conn, contact, *rest)  # writes rows, which the savepoint must undo
            raise RuntimeError("boom")
        return original(conn, contact, *rest)

    desk.router.ingest = ingest  # type: ignore[method-assign]
    results = await asyncio.gather(
        *(desk.router.submit(c) for c in [*good[:2], bad, *good[2:]]), return_exceptions=True
    )
    assert isinstance(results[2], RuntimeError)
    assert sum(1 for r in results if not isinstance(r, BaseException)) == 5
    assert count(desk, contacts) == 5
    assert count(desk, identities, identities.c.value == "bad@example.org") == 0


async def test_contact_without_sender_is_rejected(desk: Desk) -> None:
    with pytest.raises(ContactRejectedError) as err:
        await desk.router.submit(email(sender=""))
    assert err.value.field == "from"


async def test_reply_by_message_id_joins_the_ticket(desk: Desk) -> None:
    first = await desk.router.submit(email(message_id="orig@x"))
    reply = await desk.router.submit(email(subject="Re: Printer", in_reply_to=("orig@x",)))
    assert not reply.created and reply.ticket_ref == first.ticket_ref
    assert reply.thread_reason == "message-id"
    ticket = await desk.tickets.get(first.ticket_ref)
    assert ticket["events"][-1]["detail"]["thread_reason"] == "message-id"


async def test_reply_to_our_acknowledgement_threads_by_its_message_id(desk: Desk) -> None:
    first = await desk.router.submit(email())
    ack_id = desk.store.run_sync(lambda c: c.execute(sa.select(outbox.c.payload)).scalar_one())[
        "message_id"
    ]
    reply = await desk.router.submit(email(subject="Re: thanks", references=(ack_id,)))
    assert reply.ticket_ref == first.ticket_ref


async def test_subject_tag_from_participant_joins_the_ticket(desk: Desk) -> None:
    first = await desk.router.submit(email(to=("servicedesk@example.com", "bob@example.org")))
    by_cc = await desk.router.submit(
        email(sender="bob@example.org", subject="[SD-1] more", subject_refs=("SD-1",))
    )
    assert by_cc.ticket_ref == first.ticket_ref and by_cc.thread_reason == "subject-tag"


async def test_reply_from_stranger_opens_new_ticket(desk: Desk) -> None:
    await desk.router.submit(email(message_id="orig@x"))
    tag = await desk.router.submit(
        email(sender="mallory@evil.test", subject="[SD-1] gimme", subject_refs=("SD-1",))
    )
    ref = await desk.router.submit(email(sender="mallory@evil.test", in_reply_to=("orig@x",)))
    assert tag.created and tag.ticket_ref != "SD-1"
    assert tag.thread_reason == "new-stranger-refused"
    assert ref.created and ref.ticket_ref not in ("SD-1", tag.ticket_ref)
    ticket = await desk.tickets.get(tag.ticket_ref)
    assert ticket["events"][-1]["detail"]["refused_refs"] == ["SD-1"]
    assert len((await desk.tickets.get("SD-1"))["contacts"]) == 1


async def test_subject_tag_of_another_desk_prefix_is_ignored(desk: Desk) -> None:
    await desk.router.submit(email())
    other_desk = await desk.router.submit(email(subject="[HR-1] x", subject_refs=("HR-1",)))
    assert other_desk.created


async def test_reply_to_recently_closed_ticket_reopens_it(desk: Desk) -> None:
    await desk.router.submit(email(message_id="orig@x"))
    _close(desk, 1)
    desk.clock.advance(days=3)
    again = await desk.router.submit(email(in_reply_to=("orig@x",)))
    assert again.ticket_ref == "SD-1"
    ticket = await desk.tickets.get("SD-1")
    assert ticket["status"] == "open" and "reopened" in [e["type"] for e in ticket["events"]]


async def test_reply_to_long_closed_ticket_opens_linked_ticket(desk: Desk) -> None:
    await desk.router.submit(email(message_id="orig@x"))
    _close(desk, 1)
    desk.clock.advance(days=30)
    again = await desk.router.submit(email(in_reply_to=("orig@x",)))
    assert again.created and again.ticket_ref == "SD-2"
    new = await desk.tickets.get("SD-2")
    assert new["events"][0]["detail"]["linked_to"] == "SD-1"
    assert "linked" in [e["type"] for e in (await desk.tickets.get("SD-1"))["events"]]


def _close(desk: Desk, ticket_id: int) -> None:
    from router.schema import tickets

    desk.store.run_sync(
        lambda c: c.execute(
            sa.update(tickets)
            .where(tickets.c.id == ticket_id)
            .values(status="closed", closed_at=desk.clock.now)
        )
    )


async def test_same_person_on_phone_and_email_is_one_requester(desk: Desk) -> None:
    # A directory sync vouches for every identifier it sends ([api] link_identities = true).
    desk.router.settings = make_settings(api_links_identities=True)
    await desk.router.submit(
        other(Channel.API, Party(email="alice@example.org", phone="+15550100"), "api-1")
    )
    call = await desk.router.submit(other(Channel.PHONE, Party(phone="+15550100"), "CA1"))
    mail = await desk.router.submit(email())
    t_call, t_mail = (
        await desk.tickets.get(call.ticket_ref),
        await desk.tickets.get(mail.ticket_ref),
    )
    assert t_call["requester"]["id"] == t_mail["requester"]["id"]
    assert t_call["requester"]["phone"] == "+15550100"
    assert count(desk, requesters) == 1


async def test_slack_user_with_a_verified_email_is_the_email_requester(desk: Desk) -> None:
    await desk.router.submit(email())
    chat = await desk.router.submit(
        other(Channel.SLACK, Party(slack_user_id="U1", email="alice@example.org"), "C1:1")
    )
    assert (await desk.tickets.get(chat.ticket_ref))["requester"]["slack_user_id"] == "U1"
    assert count(desk, requesters) == 1


async def test_a_phone_typed_into_a_web_form_is_not_linked_to_anyone(desk: Desk) -> None:
    victim_call = await desk.router.submit(other(Channel.PHONE, Party(phone="+15550199"), "CA1"))
    form = await desk.router.submit(
        other(Channel.API, Party(email="mallory@evil.test", phone="+15550199"), "api-1")
    )
    ticket = await desk.tickets.get(form.ticket_ref)
    assert ticket["requester"]["phone"] is None
    assert ticket["events"][-1]["detail"]["unverified_identities"] == ["phone"]
    tagged = await desk.router.submit(
        other(Channel.API, Party(email="mallory@evil.test", phone="+15550199"), "api-2")
    )
    assert tagged.ticket_ref != victim_call.ticket_ref
    sneaky = Contact(
        channel=Channel.API,
        external_id="api-3",
        sender=Party(email="mallory@evil.test", phone="+15550199"),
        received_at=datetime(2026, 11, 22, 15, 0, tzinfo=UTC),
        text="add me",
        thread=ThreadHints(subject_refs=(victim_call.ticket_ref,)),
    )
    assert (await desk.router.submit(sneaky)).ticket_ref != victim_call.ticket_ref


async def test_identifiers_of_two_people_are_never_merged(desk: Desk) -> None:
    desk.router.settings = make_settings(api_links_identities=True)
    await desk.router.submit(email(sender="alice@example.org"))
    await desk.router.submit(other(Channel.PHONE, Party(phone="+15550199"), "CA2"))
    both = await desk.router.submit(
        other(Channel.API, Party(email="alice@example.org", phone="+15550199"), "api-2")
    )
    assert count(desk, requesters) == 2
    ticket = await desk.tickets.get(both.ticket_ref)
    assert ticket["requester"]["email"] == "alice@example.org"
    assert ticket["events"][-1]["detail"]["identity_conflict"]
    phone_owner = desk.store.run_sync(
        lambda c: c.execute(
            sa.select(identities.c.requester_id).where(identities.c.value == "+15550199")
        ).scalar_one()
    )
    assert phone_owner != ticket["requester"]["id"]


async def test_routing_rule_sends_billing_mail_to_customer_support(tmp_path, desk: Desk) -> None:  # type: ignore[no-untyped-def]
    desk.router.settings = make_settings(
        routing=(RoutingRule(group="customer-support", subject_matches=re.compile("(?i)invoice")),)
    )
    result = await desk.router.submit(email(subject="Invoice 123 is wrong"))
    ticket = await desk.tickets.get(result.ticket_ref)
    assert ticket["group"] == "customer-support" and ticket["tier"] == 1.5
    assert ticket["owner"] == "service-desk"


@pytest.mark.parametrize(
    ("rule", "contact", "hit"),
    [
        (
            RoutingRule(group="l2-apps", channel=Channel.PHONE),
            other(Channel.PHONE, Party(phone="+15550100"), "c"),
            True,
        ),
        (RoutingRule(group="l2-apps", channel=Channel.PHONE), email(), False),
        (
            RoutingRule(group="l2-apps", recipient="cs@example.com"),
            email(recipients=("cs@example.com",)),
            True,
        ),
        (RoutingRule(group="l2-apps", recipient="cs@example.com"), email(), False),
        (RoutingRule(group="l2-apps", sender_domain="Example.ORG"), email(), True),
        (RoutingRule(group="l2-apps", body_matches=re.compile("burning")), email(), True),
        (
            RoutingRule(group="l2-apps", when_category="locked_account"),
            other(
                Channel.PHONE, Party(phone="+15550100"), "c", hints=Hints(category="locked_account")
            ),
            True,
        ),
    ],
)
async def test_routing_rule_conditions(desk: Desk, rule: RoutingRule, contact, hit: bool) -> None:  # type: ignore[no-untyped-def]
    desk.router.settings = make_settings(routing=(rule,))
    ticket = await desk.tickets.get((await desk.router.submit(contact)).ticket_ref)
    assert (ticket["group"] == "l2-apps") is hit


@pytest.mark.parametrize(
    ("subject", "vip", "priority"),
    [
        ("Printer jam", False, "P3"),
        ("URGENT: server down", False, "P2"),
        ("no rush: new mouse", False, "P4"),
        ("URGENT: server down", True, "P1"),
        ("Printer jam", True, "P2"),
        ("Downloading is slow", False, "P3"),  # "down" only as a whole word
    ],
)
async def test_priority_from_impact_and_urgency(
    desk: Desk, subject: str, vip: bool, priority: str
) -> None:
    desk.router.settings = make_settings(
        triage=TriageSettings(vip=("alice@example.org",) if vip else ())
    )
    result = await desk.router.submit(email(subject=subject, text=""))
    assert (await desk.tickets.get(result.ticket_ref))["priority"] == priority


async def test_kind_from_hint_and_words(desk: Desk) -> None:
    req = await desk.router.submit(email(subject="Request: access to the finance share", text=""))
    inc = await desk.router.submit(email(subject="VPN broken", text=""))
    hinted = await desk.router.submit(
        other(
            Channel.PHONE,
            Party(phone="+15550100"),
            "c9",
            hints=Hints(category="locked_account", kind=Kind.SERVICE_REQUEST),
        )
    )
    assert (await desk.tickets.get(req.ticket_ref))["kind"] == "service_request"
    assert (await desk.tickets.get(inc.ticket_ref))["kind"] == "incident"
    t = await desk.tickets.get(hinted.ticket_ref)
    assert t["kind"] == "service_request" and t["category"] == "locked_account"


async def test_attachments_are_stored_once_by_content(desk: Desk) -> None:
    data = b"same bytes"
    await desk.router.submit(email(attachments=(attachment(data, "a.txt"),)))
    await desk.router.submit(email(attachments=(attachment(data, "b.txt"),)))
    assert count(desk, blobs) == 1
    t = await desk.tickets.get("SD-2")
    assert t["contacts"][0]["attachments"][0]["size"] == len(data)


# ---- acknowledgements ---------------------------------------------------------------------


def acks(desk: Desk) -> int:
    return count(desk, outbox, outbox.c.kind == "email.ack")


async def test_new_ticket_gets_one_threaded_acknowledgement_naming_the_ref(desk: Desk) -> None:
    result = await desk.router.submit(email(message_id="orig@x", references=("older@x",)))
    assert result.acknowledged
    payload = desk.store.run_sync(lambda c: c.execute(sa.select(outbox.c.payload)).scalar_one())
    assert payload["to"] == "alice@example.org"
    assert payload["event"] == "ack" and payload["ticket_ref"] == "SD-1"
    assert payload["ticket_subject"] == "Printer on fire"  # the facts: the transport words them
    assert payload["in_reply_to"] == "orig@x" and payload["references"] == ["older@x", "orig@x"]
    assert payload["auto_submitted"] == "auto-replied"
    await desk.router.submit(email(in_reply_to=("orig@x",)))
    assert acks(desk) == 1


def ack_payloads(desk: Desk) -> list[dict[str, Any]]:
    query = sa.select(outbox.c.payload).where(outbox.c.kind == "email.ack").order_by(outbox.c.id)
    return desk.store.run_sync(lambda c: [r.payload for r in c.execute(query)])


def to_alias(subject: str) -> Contact:
    alias = ("helpdesk@example.com",)
    return email(subject=subject, to=alias, recipients=alias)


async def test_mail_to_an_alias_asks_for_the_one_address_notice_once(desk: Desk) -> None:
    await desk.router.submit(to_alias("Printer on fire"))
    await desk.router.submit(to_alias("Second problem"))
    first, second = ack_payloads(desk)
    assert first["single_address_notice"] == {
        "address": "servicedesk@example.com",
        "legacy": "helpdesk@example.com",
    }
    assert second["single_address_notice"] is None  # told once per requester


async def test_with_telling_off_no_notice_is_asked_for_nor_recorded(desk: Desk) -> None:
    desk.router.settings = make_settings(tell_single_address=False)
    await desk.router.submit(to_alias("Printer on fire"))
    desk.router.settings = make_settings()
    await desk.router.submit(to_alias("Second problem"))
    # Not recorded as told while telling was off: the next ack (telling on) still tells.
    assert [p["single_address_notice"] is None for p in ack_payloads(desk)] == [True, False]


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        # bounces, auto-replies and loops never reach a ticket of their own (test_system_mail)
        ({"auto": AutoClass.LIST}, "list"),
        ({"auto": AutoClass.BULK}, "bulk"),
        ({"envelope_sender": ""}, "null-sender"),
        ({"sender": "no-reply@vendor.example"}, "role-address"),
        ({"sender": "mailer-daemon@mx.example"}, "role-address"),
        ({"sender": "helpdesk@example.com"}, "own-address"),
        ({"to": ("team@example.org",)}, "bcc-only"),
    ],
)
async def test_never_acknowledge(desk: Desk, kw: dict[str, object], reason: str) -> None:
    result = await desk.router.submit(email(**kw))  # type: ignore[arg-type]
    assert not result.acknowledged and acks(desk) == 0
    ticket = await desk.tickets.get(result.ticket_ref)
    assert ticket["events"][-1]["detail"]["ack"] == f"suppressed:{reason}"


async def test_at_most_five_acks_per_sender_per_hour(desk: Desk) -> None:
    for _ in range(7):
        await desk.router.submit(email())
    assert acks(desk) == 5
    desk.clock.advance(hours=1, seconds=1)
    await desk.router.submit(email())
    assert acks(desk) == 6


async def test_global_ack_budget_per_minute(desk: Desk) -> None:
    desk.router.settings = make_settings(acks=AckSettings(global_per_minute=3))
    for i in range(5):
        await desk.router.submit(email(sender=f"p{i}@example.org"))
    assert acks(desk) == 3


async def test_router_refuses_contact_without_external_id(desk: Desk) -> None:
    router = Router(desk.store, make_settings())
    with pytest.raises(ContactRejectedError):
        await router.submit(other(Channel.API, Party(email="a@b.c"), ""))


async def test_the_raw_original_is_kept_with_the_contact_for_audit_and_replay(desk: Desk) -> None:
    contact = email()
    result = await desk.router.submit(contact)
    stored = desk.store.run_sync(
        lambda c: c.execute(
            sa.select(contacts.c.raw, contacts.c.raw_type).where(contacts.c.id == result.contact_id)
        ).one()
    )
    assert (stored.raw, stored.raw_type) == (contact.raw, "message/rfc822")


async def test_a_big_raw_message_is_kept_byte_for_byte_in_a_batch_of_small_ones(
    desk: Desk,
) -> None:
    # Past blob_write.STREAM_FROM_BYTES the raw message is streamed into SQLite after the insert.
    big = replace(email(), raw=bytes(range(256)) * (3 * STREAM_FROM_BYTES // 256) + b"end")
    small = email()
    results = await asyncio.gather(desk.router.submit(big), desk.router.submit(small))
    stored = desk.store.run_sync(
        lambda c: dict(
            c.execute(
                sa.select(contacts.c.id, contacts.c.raw).where(
                    contacts.c.id.in_([r.contact_id for r in results])
                )
            ).all()
        )
    )
    assert stored == {results[0].contact_id: big.raw, results[1].contact_id: small.raw}


async def test_a_stolen_message_id_from_someone_else_is_stored_as_their_own(desk: Desk) -> None:
    alice = await desk.router.submit(email(message_id="m@alice"))
    mallory = await desk.router.submit(email(sender="mallory@evil.test", message_id="m@alice"))
    assert not mallory.duplicate and mallory.created
    assert mallory.ticket_ref != alice.ticket_ref
    again = await desk.router.submit(email(sender="mallory@evil.test", message_id="m@alice"))
    assert again.duplicate and again.ticket_ref == mallory.ticket_ref
    assert len((await desk.tickets.get(alice.ticket_ref))["contacts"]) == 1


async def test_an_api_external_id_of_another_sender_is_refused(desk: Desk) -> None:
    await desk.router.submit(other(Channel.API, Party(email="a@example.org"), "form-1"))
    retry = await desk.router.submit(other(Channel.API, Party(email="A@example.org"), "form-1"))
    assert retry.duplicate
    with pytest.raises(ContactRejectedError) as err:
        await desk.router.submit(other(Channel.API, Party(email="b@example.org"), "form-1"))
    assert err.value.field == "external_id"


async def test_a_sender_address_longer_than_the_outbox_key_is_acknowledged(desk: Desk) -> None:
    sender = "a" * 64 + "@" + ".".join(["sub" + "d" * 56] * 4) + ".example.org"
    assert len(f"ack:1:{sender}") > 200
    result = await desk.router.submit(email(sender=sender))
    assert result.acknowledged
    [key] = desk.store.run_sync(
        lambda c: c.execute(sa.select(outbox.c.idempotency_key)).scalars().all()
    )
    assert key.startswith("sha256:") and len(key) <= 200


@pytest.mark.parametrize("cursor", ["dDk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk", "dO-8-A", "eDE", "!!"])
async def test_a_crafted_cursor_is_a_value_error_not_a_crash(desk: Desk, cursor: str) -> None:
    from router.tickets import TicketQuery

    with pytest.raises(ValueError):
        await desk.tickets.list(TicketQuery(cursor=cursor))


async def test_a_result_says_whether_its_contact_queued_anything_to_send(desk: Desk) -> None:
    """``queued`` is what the gateway wakes the dispatcher on: true exactly when the contact's
    transaction added outbox rows (an ack, a forward), also within a group-committed batch."""
    hook = ForwardRule(name="all-hook", kind="webhook")

    async def submitted(*contacts: Contact) -> list[tuple[bool, int]]:
        before = count(desk, outbox)
        results = await asyncio.gather(*(desk.router.submit(c) for c in contacts))
        return [(r.queued, count(desk, outbox) - before) for r in results]

    first = email(sender="ann@example.org")
    assert await submitted(first) == [(True, 1)]  # its ack
    assert await submitted(first) == [(False, 0)]  # a duplicate: nothing new
    assert await submitted(email(sender="no-reply@vendor.example")) == [(False, 0)]  # no ack
    both = await submitted(
        email(sender="no-reply@other.example", message_id="<a@x>"),
        email(sender="bob@example.org", message_id="<b@x>"),
    )
    assert [queued for queued, _ in both] == [False, True] and both[0][1] == 1
    desk.router.settings = make_settings(forwards=(hook,))
    assert await submitted(email(sender="no-reply@third.example")) == [(True, 1)]  # a forward
