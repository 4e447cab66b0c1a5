"""Forwarding decisions in the router: which events queue which ``forward.<kind>`` rows, the
``forwards`` records in the ticket JSON, and hooks from the tools applied once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from normalizer.contact import AutoClass
from normalizer.hooks import HookEvent
from router.forward_hooks import HookInbox, HookTicketUnknown
from router.forwards import ForwardRecord, ForwardRecords, matches
from router.outbox import Outbox
from router.router import Router
from router.schema import metadata, outbox, tickets
from router.settings import ForwardRule, RouterSettings, RoutingRule
from router.store import Store
from tests.unit.router.conftest import Desk, email, make_settings
from tests.unit.router.test_replies import slack, sms

JIRA = ForwardRule(name="l2-jira", kind="jira", group="l2-apps")
HOOK = ForwardRule(name="all-hook", kind="webhook")
ZEN = ForwardRule(name="cs-zendesk", kind="zendesk", group="customer-support")


@pytest.fixture
def settings() -> RouterSettings:
    return make_settings(
        forwards=(JIRA, HOOK, ZEN),
        routing=(RoutingRule(group="l2-apps", subject_matches=re.compile("SAP")),),
        outbound_transports=frozenset({"email"}),
    )


async def _rows(desk: Desk) -> list[Any]:
    return await desk.store.read(
        lambda c: c.execute(
            sa.select(outbox.c.kind, outbox.c.recipient, outbox.c.idempotency_key, outbox.c.payload)
            .where(outbox.c.kind.like("forward.%"))
            .order_by(outbox.c.id)
        ).all()
    )


async def test_new_ticket_goes_only_to_targets_whose_when_matches(desk: Desk) -> None:
    result = await desk.router.submit(email(subject="SAP is down"))

    rows = await _rows(desk)
    assert [(r.kind, r.recipient) for r in rows] == [
        ("forward.jira", "l2-jira"),
        ("forward.webhook", "all-hook"),
    ]
    assert rows[0].idempotency_key == f"forward:l2-jira:{result.ticket_ref}:created"
    assert rows[0].payload["event"] == "ticket.created"


async def test_a_later_contact_updates_the_targets_holding_the_ticket(desk: Desk) -> None:
    first = await desk.router.submit(email(subject="SAP is down", message_id="a@x"))
    second = await desk.router.submit(email(subject="Re: SAP", in_reply_to=("a@x",)))
    assert second.ticket_ref == first.ticket_ref

    rows = await _rows(desk)
    added = [r for r in rows if r.payload["event"] == "contact.added"]
    assert sorted(r.recipient for r in added) == ["all-hook", "l2-jira"]
    assert added[0].payload["contact_id"] == second.contact_id


async def test_escalation_into_a_targets_group_forwards_it_there(desk: Desk) -> None:
    result = await desk.router.submit(email(subject="Invoice question"))
    assert [r.recipient for r in await _rows(desk)] == ["all-hook"]

    await desk.tickets.escalate(result.ticket_ref, "needs l2", group="l2-apps")

    escalated = [r for r in await _rows(desk) if r.payload["event"] == "ticket.escalated"]
    assert sorted(r.recipient for r in escalated) == ["all-hook", "l2-jira"]


async def test_resolving_a_ticket_tells_its_targets(desk: Desk) -> None:
    result = await desk.router.submit(email(subject="SAP is down"))

    await desk.tickets.set_status(result.ticket_ref, "resolved", note="fixed")

    resolved = [r.recipient for r in await _rows(desk) if r.payload["event"] == "ticket.resolved"]
    assert sorted(resolved) == ["all-hook", "l2-jira"]


async def test_ticket_json_shows_each_forward_with_its_state(desk: Desk) -> None:
    result = await desk.router.submit(email(subject="SAP is down"))
    ticket = await desk.tickets.get(result.ticket_ref)
    assert [(f["target"], f["state"], f["external_key"]) for f in ticket["forwards"]] == [
        ("l2-jira", "pending", None),
        ("all-hook", "pending", None),
    ]

    box = Outbox(desk.store, desk.clock)
    items = {i.target: i for i in await box.claim()}
    await box.done(items["l2-jira"])
    await ForwardRecords(desk.store, desk.clock).delivered(
        result.ticket_id, "l2-jira", ForwardRecord("HELP-7", "10007")
    )
    await box.failed(items["all-hook"], "webhook all-hook answered 401", None)

    ticket = await desk.tickets.get(result.ticket_ref)
    assert ticket["forwards"] == [
        {
            "target": "l2-jira",
            "kind": "jira",
            "external_key": "HELP-7",
            "state": "delivered",
            "last_error": None,
        },
        {
            "target": "all-hook",
            "kind": "webhook",
            "external_key": None,
            "state": "dead",
            "last_error": "webhook all-hook answered 401",
        },
    ]


async def _forwarded_to_jira(desk: Desk) -> Any:
    result = await desk.router.submit(email(subject="SAP is down", message_id="first@mail.x"))
    await ForwardRecords(desk.store, desk.clock).delivered(
        result.ticket_id, "l2-jira", ForwardRecord("HELP-7", "10007"), ("comment:500",)
    )
    return result


async def _replies(desk: Desk) -> list[Any]:
    return await desk.store.read(
        lambda c: (
            c.execute(sa.select(outbox.c.payload).where(outbox.c.kind == "email.reply"))
            .scalars()
            .all()
        )
    )


async def test_public_comment_from_the_tool_is_sent_to_the_requester_once(
    desk: Desk, settings: RouterSettings
) -> None:
    result = await _forwarded_to_jira(desk)
    inbox = HookInbox(desk.store, settings, desk.clock)
    event = HookEvent(
        "delivery:1",
        "comment.public",
        text="Restarted it.",
        external_key="HELP-7",
        also_seen=("comment:501",),
    )

    first = await inbox.apply("l2-jira", event)
    again = await inbox.apply("l2-jira", event)

    assert (first.applied, again.applied) == (True, False)
    sent = await _replies(desk)
    assert len(sent) == 1
    assert sent[0]["to"] == "alice@example.org"
    assert sent[0]["text"] == "Restarted it."
    assert sent[0]["in_reply_to"] == "first@mail.x"
    assert first.ticket_ref == result.ticket_ref


async def test_our_own_comment_coming_back_is_not_relayed(
    desk: Desk, settings: RouterSettings
) -> None:
    await _forwarded_to_jira(desk)
    inbox = HookInbox(desk.store, settings, desk.clock)

    outcome = await inbox.apply(
        "l2-jira",
        HookEvent(
            "delivery:2",
            "comment.public",
            text="x",
            external_key="HELP-7",
            also_seen=("comment:500",),
        ),
    )

    assert not outcome.applied
    assert await _replies(desk) == []


async def test_internal_comment_is_recorded_and_never_sent(
    desk: Desk, settings: RouterSettings
) -> None:
    result = await _forwarded_to_jira(desk)
    inbox = HookInbox(desk.store, settings, desk.clock)

    await inbox.apply(
        "l2-jira",
        HookEvent("d3", "comment.internal", text="root cause: dns", external_key="HELP-7"),
    )

    assert await _replies(desk) == []
    ticket = await desk.tickets.get(result.ticket_ref)
    recorded = [e["detail"] for e in ticket["events"] if e["type"] == "forward.comment"]
    assert recorded[0]["text"] == "root cause: dns"
    assert recorded[0]["public"] is False


async def test_resolution_in_the_tool_resolves_the_ticket_and_tells_others(
    desk: Desk, settings: RouterSettings
) -> None:
    result = await _forwarded_to_jira(desk)
    inbox = HookInbox(desk.store, settings, desk.clock)

    resolution = HookEvent("d4", "ticket.resolved", text="patched", external_key="HELP-7")
    await inbox.apply("l2-jira", resolution)

    ticket = await desk.tickets.get(result.ticket_ref)
    assert ticket["status"] == "resolved"
    [told] = await _replies(desk)  # the requester hears it, as facts the transport words
    assert (told["event"], told["status"], told["text"]) == ("status", "resolved", "patched")
    assert ticket["contacts"][-1]["text"] == "patched"  # the tool's words on the timeline
    resolved = [r.recipient for r in await _rows(desk) if r.payload["event"] == "ticket.resolved"]
    assert resolved == ["all-hook"]  # not back to Jira, where it happened


async def test_hook_for_a_ticket_the_target_does_not_hold_is_refused(
    desk: Desk, settings: RouterSettings
) -> None:
    result = await desk.router.submit(email(subject="Invoice question"))  # not with Jira
    inbox = HookInbox(desk.store, settings, desk.clock)

    with pytest.raises(HookTicketUnknown):
        await inbox.apply("l2-jira", HookEvent("d5", "comment.public", ref=result.ticket_ref))
    assert await _replies(desk) == []


@pytest.mark.parametrize(
    ("rule", "wanted"),
    [
        (ForwardRule("t", "webhook"), True),
        (ForwardRule("t", "webhook", group="l2-apps"), True),
        (ForwardRule("t", "webhook", group="service-desk"), False),
        (ForwardRule("t", "webhook", channel="email"), True),
        (ForwardRule("t", "webhook", channel="slack"), False),
        (ForwardRule("t", "webhook", category="software"), True),
        (ForwardRule("t", "webhook", category="network"), False),
        (ForwardRule("t", "webhook", ticket_kind="incident"), True),
        (ForwardRule("t", "webhook", ticket_kind="service_request"), False),
        (ForwardRule("t", "webhook", priority="P2"), True),
        (ForwardRule("t", "webhook", group="l2-apps", priority="P4"), False),  # all must hold
    ],
)
def test_when_filter_needs_every_condition_it_names(rule: ForwardRule, wanted: bool) -> None:
    @dataclass
    class Ticket:
        group_name: str = "l2-apps"
        channel: str = "email"
        category: str = "software"
        kind: str = "incident"
        priority: str = "P2"

    assert matches(rule, Ticket()) is wanted


@pytest.mark.parametrize("channel", ["slack", "sms"])
async def test_public_comment_reaches_a_chat_requester_in_their_conversation(
    tmp_path: Any, channel: str
) -> None:
    settings = make_settings(
        forwards=(HOOK,), outbound_transports=frozenset({"email", "slack", "sms"})
    )
    store = Store.from_url(f"sqlite:///{tmp_path}/spoc.db")
    store.run_sync(lambda conn: metadata.create_all(conn))
    await store.start()
    try:
        contact = slack("VPN broken", "Ev1") if channel == "slack" else sms("VPN broken", "SM1")
        result = await Router(store, settings).submit(contact)
        await HookInbox(store, settings).apply(
            "all-hook",
            HookEvent("d1", "comment.public", text="Try now.", ref=result.ticket_ref),
        )
        sent = await store.read(
            lambda c: c.execute(
                sa.select(outbox.c.kind, outbox.c.payload).where(outbox.c.kind.like("%.reply"))
            ).all()
        )
    finally:
        await store.close()

    ((kind, payload),) = sent
    if channel == "slack":
        assert kind == "slack.reply"
        assert (payload["channel"], payload["thread_ts"]) == ("C42", "1700000000.000100")
    else:
        assert (kind, payload["to"]) == ("sms.reply", "+14155552671")
    assert payload["text"] == "Try now."


VENDOR = ForwardRule(name="vendor-acme", kind="email", address="support@acme-vendor.example")


@pytest.mark.parametrize("auto", [AutoClass.HUMAN, AutoClass.BULK, AutoClass.LIST])
async def test_a_vendors_mail_is_relayed_to_a_slack_requester_in_their_thread(
    tmp_path: Any, auto: AutoClass
) -> None:
    """The vendor's mail is the tool's voice: it does not make the ticket an email ticket, so
    its answer goes to the requester's Slack thread, and nothing goes back to the vendor."""
    settings = make_settings(forwards=(VENDOR,), outbound_transports=frozenset({"email", "slack"}))
    store = Store.from_url(f"sqlite:///{tmp_path}/spoc.db")
    store.run_sync(lambda conn: metadata.create_all(conn))
    await store.start()
    try:
        router = Router(store, settings)
        result = await router.submit(slack("VPN broken", "Ev1"))
        answer = email(
            sender=VENDOR.address or "",
            subject=f"RE: [{result.ticket_ref}] VPN broken",
            subject_refs=(result.ticket_ref,),
            text="Reset your token.\n\nOn Mon, Desk <servicedesk@example.com> wrote:\n> VPN broken",
            auto=auto,
        )
        assert (await router.submit(answer)).ticket_ref == result.ticket_ref
        sent = await store.read(
            lambda c: c.execute(
                sa.select(outbox.c.kind, outbox.c.payload).where(outbox.c.kind.like("%.reply"))
            ).all()
        )
        last_channel = await store.read(
            lambda c: c.execute(sa.select(tickets.c.last_channel)).scalar()
        )
    finally:
        await store.close()

    assert last_channel == "slack"
    if auto is not AutoClass.HUMAN:  # bulk or list mail: recorded, never relayed
        assert sent == []
        return
    ((kind, payload),) = sent
    assert (kind, payload["channel"], payload["text"]) == (
        "slack.reply",
        "C42",
        "Reset your token.",
    )
