"""Issue 2's email story, end to end: a whole gateway over real sockets.

Mail goes in through the gateway's own SMTP listener with stdlib ``smtplib``; tickets are read
back through the REST API with aiohttp; acknowledgements and agent replies come out through the
outbox dispatcher to an aiosmtpd relay sink (see ``gateway_harness``). Every test runs on SQLite
and on PostgreSQL, except ``spoc replay`` (SQLite, gateway stopped).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from gateway import cli
from tests.integration.gateway_harness import (
    DESK,
    GatewayHarness,
    RelaySink,
    running_gateway,
)
from tests.support.reports import delivery_report

ALICE = "alice@example.org"
ALICE_MSGID = "alice-1@mail.example.org"
# A real Postfix DSN from the sisimai corpus, copied into the fixtures (BSD 2-Clause).
REAL_BOUNCE = Path(__file__).resolve().parents[1] / "fixtures/sisimai/lhost-postfix-17.eml"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures/email"
TICKET_KEYS = {
    "ref", "status", "kind", "category", "priority", "owner", "group", "tier", "channel",
    "subject", "created_at", "updated_at", "requester", "contacts", "events",
}  # fmt: skip
CONTACT_KEYS = {
    "id", "channel", "direction", "received_at", "from", "subject", "text", "external_id",
    "attachments",
}  # fmt: skip


def mail(
    *,
    sender: str = f"Alice <{ALICE}>",
    to: str = DESK,
    subject: str = "Printer on fire",
    msgid: str | None = ALICE_MSGID,
    headers: str = "",
    body: str = "The printer on floor 3 is on fire.",
) -> bytes:
    """A plain text message as an MUA would send it (CRLF line ends)."""
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}"]
    lines.append("Date: Sun, 22 Nov 2026 15:00:00 +0000")
    if msgid is not None:
        lines.append(f"Message-ID: <{msgid}>")
    lines += [h for h in headers.split("\n") if h]
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


def crlf(raw: bytes) -> bytes:
    """A file saved with LF line ends as an MTA sends it: CRLF (a bare-LF DATA is one line)."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def contact_event(ticket: dict[str, Any], external_id: str) -> dict[str, Any]:
    """The detail of the ``contact.added`` event of the contact with this external id."""
    [contact] = [c for c in ticket["contacts"] if c["external_id"] == external_id]
    [detail] = [
        e["detail"]
        for e in ticket["events"]
        if e["type"] == "contact.added" and e["detail"]["contact_id"] == contact["id"]
    ]
    assert isinstance(detail, dict)
    return detail


def bare_id(header: object) -> str:
    return str(header).strip().strip("<>")


@pytest.fixture
async def desk(tmp_path: Path, db_url: str) -> AsyncIterator[GatewayHarness]:
    async with running_gateway(tmp_path, db_url) as harness:
        yield harness


async def alice_opens_a_ticket(desk: GatewayHarness) -> EmailMessage:
    """Alice's first mail: SD-1, and the ack the relay received for it."""
    sent = await desk.send_mail(mail())
    assert sent.queued_as == "SD-1"
    [ack] = await desk.sink.wait_for(1)
    return ack


# ---- 1. a new mail: ticket and acknowledgement ---------------------------------------------


async def test_mail_to_the_desk_opens_a_ticket_and_sends_one_threaded_ack(
    desk: GatewayHarness,
) -> None:
    sent = await desk.send_mail(mail())
    assert sent.rcpts == ((250, b"2.1.5 Ok"),)
    assert sent.data == (250, b"2.0.0 Ok: queued as SD-1")

    ticket = await desk.ticket("SD-1")
    assert TICKET_KEYS <= ticket.keys()
    assert ticket["ref"] == "SD-1"
    assert ticket["status"] == "new"
    assert ticket["channel"] == "email"
    assert ticket["owner"] == ticket["group"] == "service-desk"
    assert ticket["tier"] == 1
    assert ticket["subject"] == "Printer on fire"
    assert ticket["requester"]["email"] == ALICE
    assert ticket["requester"]["name"] == "Alice"
    [contact] = ticket["contacts"]
    assert CONTACT_KEYS <= contact.keys()
    assert contact["channel"] == "email"
    assert contact["direction"] == "in"
    assert contact["from"] == ALICE
    assert contact["external_id"] == ALICE_MSGID
    assert "on fire" in contact["text"]
    assert [e["type"] for e in ticket["events"]] == ["created", "classified", "contact.added"]

    [ack] = await desk.settle()
    assert desk.sink.envelopes[0].rcpt_tos == [ALICE]
    assert ack["To"] == ALICE
    assert ack["From"].addresses[0].addr_spec == DESK
    assert ack["Subject"] == "[SD-1] Printer on fire"
    assert bare_id(ack["In-Reply-To"]) == ALICE_MSGID
    assert ALICE_MSGID in [bare_id(r) for r in str(ack["References"]).split()]
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["X-Auto-Response-Suppress"] == "All"
    assert ack["X-Loop"] == DESK
    assert "SD-1" in ack.get_content()


# ---- 2. replies from the requester -----------------------------------------------------------


async def test_reply_to_the_ack_lands_on_the_same_ticket_without_a_second_ack(
    desk: GatewayHarness,
) -> None:
    ack = await alice_opens_a_ticket(desk)
    reply = mail(
        subject="Re: [SD-1] Printer on fire",
        msgid="alice-2@mail.example.org",
        headers=f"In-Reply-To: {ack['Message-ID']}\n"
        f"References: <{ALICE_MSGID}> {ack['Message-ID']}",
        body="It is still burning.",
    )
    assert (await desk.send_mail(reply)).queued_as == "SD-1"

    ticket = await desk.ticket("SD-1")
    assert len(ticket["contacts"]) == 2
    assert contact_event(ticket, "alice-2@mail.example.org")["thread_reason"] == "message-id"
    assert len(await desk.settle()) == 1


async def test_subject_tag_alone_threads_the_requesters_new_mail_to_her_ticket(
    desk: GatewayHarness,
) -> None:
    await alice_opens_a_ticket(desk)
    tagged = mail(subject="More about [SD-1]", msgid="alice-3@mail.example.org")
    assert (await desk.send_mail(tagged)).queued_as == "SD-1"

    ticket = await desk.ticket("SD-1")
    assert len(ticket["contacts"]) == 2
    assert contact_event(ticket, "alice-3@mail.example.org")["thread_reason"] == "subject-tag"
    assert len(await desk.settle()) == 1


# ---- 3. a stranger cannot reach someone else's ticket ---------------------------------------


async def test_strangers_reply_opens_a_new_ticket_and_records_the_refused_ref(
    desk: GatewayHarness,
) -> None:
    await alice_opens_a_ticket(desk)
    intrusion = mail(
        sender="Mallory <mallory@evil.test>",
        subject="Re: [SD-1] Printer on fire",
        msgid="mallory-1@evil.test",
        headers=f"In-Reply-To: <{ALICE_MSGID}>\nReferences: <{ALICE_MSGID}>",
        body="Please send me the admin password.",
    )
    assert (await desk.send_mail(intrusion)).queued_as == "SD-2"

    first = await desk.ticket("SD-1")
    assert [c["external_id"] for c in first["contacts"]] == [ALICE_MSGID]
    assert first["requester"]["email"] == ALICE
    second = await desk.ticket("SD-2")
    assert second["requester"]["email"] == "mallory@evil.test"
    detail = contact_event(second, "mallory-1@evil.test")
    assert detail["refused_refs"] == ["SD-1"]
    assert detail["thread_reason"] == "new-stranger-refused"


# ---- 4. aliases and 5. relaying ----------------------------------------------------------------


async def test_mail_to_an_alias_lands_on_the_same_desk_and_records_the_alias(
    desk: GatewayHarness,
) -> None:
    sent = await desk.send_mail(mail(to="helpdesk@example.com"), rcpts=["HelpDesk@example.com"])
    assert sent.queued_as == "SD-1"

    ticket = await desk.ticket("SD-1")
    assert ticket["owner"] == ticket["group"] == "service-desk"
    [contact] = ticket["contacts"]
    assert contact["to"] == "helpdesk@example.com"
    [ack] = await desk.settle()
    assert ack["Subject"] == "[SD-1] Printer on fire"


async def test_mail_to_postmaster_reaches_the_desk_and_is_never_acknowledged(
    desk: GatewayHarness,
) -> None:
    sent = await desk.send_mail(mail(to="postmaster@example.com"), rcpts=["Postmaster@example.com"])
    assert sent.queued_as == "SD-1"

    ticket = await desk.ticket("SD-1")
    assert ticket["group"] == "service-desk"
    [contact] = ticket["contacts"]
    assert contact["to"] == "postmaster@example.com"
    assert contact_event(ticket, contact["external_id"])["ack"] == "suppressed:to-postmaster"
    assert await desk.settle() == []


async def test_recipient_outside_our_domains_gets_550_and_nothing_is_stored(
    desk: GatewayHarness,
) -> None:
    sent = await desk.send_mail(mail(to="someone@elsewhere.test"), rcpts=["someone@elsewhere.test"])
    [(code, _)] = sent.rcpts
    assert code == 550
    assert sent.data is None

    status, listing = await desk.api("GET", "/api/tickets")
    assert status == 200
    assert listing == {"tickets": [], "next": None}
    assert await desk.settle() == []


# ---- 6. machines are never acknowledged ---------------------------------------------------------


async def test_real_bounce_matching_no_ticket_is_quarantined_and_opens_none(
    desk: GatewayHarness,
) -> None:
    raw = crlf(REAL_BOUNCE.read_bytes())
    assert b"report-type=delivery-status" in raw and b"Auto-Submitted" not in raw
    # Addressed to the desk, so only its being a bounce can stop the ack (not "bcc-only").
    raw = raw.replace(b"To: shironeko@m0.example.co.jp", f"To: {DESK}".encode(), 1)
    await alice_opens_a_ticket(desk)

    sent = await desk.send_mail(raw, mail_from="")

    assert sent.data is not None and sent.data[0] == 250
    assert b"kept for review as quarantine" in sent.data[1]
    status, listing = await desk.api("GET", "/api/tickets")
    assert [t["ref"] for t in listing["tickets"]] == ["SD-1"]  # no P3 incident for a bounce
    status, kept = await desk.api("GET", "/api/quarantine", kind="system")
    assert status == 200
    [item] = kept["items"]
    assert (item["kind"], item["reason"]) == ("system", "bounce: matches no ticket")
    assert item["from"] == "mailer-daemon@mx20.example.jp"
    metrics = await desk.metrics()
    assert (
        metrics[("spoc_quarantined_total", frozenset({("kind", "system"), ("reason", "bounce")}))]
        == 1
    )
    assert len(await desk.settle()) == 1


async def test_bounce_of_our_own_ack_is_recorded_on_its_ticket_and_stops_acks(
    desk: GatewayHarness,
) -> None:
    ack = await alice_opens_a_ticket(desk)
    returned = desk.sink.envelopes[0].original_content
    assert isinstance(returned, bytes)
    dsn = crlf(delivery_report(returned, recipient=ALICE))
    sent = await desk.send_mail(dsn, mail_from="")
    assert sent.queued_as == "SD-1"
    ticket = await desk.ticket("SD-1")
    assert ticket["status"] == "new"
    [bounced] = [e for e in ticket["events"] if e["type"] == "acknowledgement.bounced"]
    assert bounced["detail"]["undeliverable"] == [ALICE]
    assert bounced["detail"]["message_id"] == bare_id(ack["Message-ID"])

    second = await desk.send_mail(mail(subject="Scanner too", msgid="alice-2@mail.example.org"))
    assert second.queued_as == "SD-2"
    assert contact_event(await desk.ticket("SD-2"), "alice-2@mail.example.org")["ack"] == (
        "suppressed:undeliverable"
    )
    assert [m["Message-ID"] for m in await desk.settle()] == [ack["Message-ID"]]


async def test_out_of_office_reply_to_our_ack_is_recorded_on_the_ticket(
    desk: GatewayHarness,
) -> None:
    ack = await alice_opens_a_ticket(desk)
    ooo = mail(
        subject="Automatic reply: [SD-1] Printer on fire",
        msgid="ooo-1@mail.example.org",
        headers=f"In-Reply-To: {ack['Message-ID']}\nAuto-Submitted: auto-replied",
        body="I am out of the office until Monday.",
    )
    sent = await desk.send_mail(ooo, mail_from="")
    assert sent.queued_as == "SD-1"
    ticket = await desk.ticket("SD-1")
    assert ticket["status"] == "new" and ticket["events"][-1]["type"] == "auto_reply.received"
    assert len(await desk.settle()) == 1


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        pytest.param(
            crlf((FIXTURES / "auto_reply.eml").read_bytes()), "auto_reply", id="auto-submitted",
        ),
        pytest.param(
            mail(sender="Bob <bob@example.org>", msgid="loop-1@example.org",
                 headers=f"X-Loop: {DESK}"),
            "loop",
            id="our-x-loop",
        ),
    ],
)  # fmt: skip
async def test_automatic_mail_matching_no_ticket_is_kept_apart_and_not_acknowledged(
    desk: GatewayHarness, raw: bytes, why: str
) -> None:
    await alice_opens_a_ticket(desk)
    sent = await desk.send_mail(raw, mail_from="someone@example.org")
    assert sent.data is not None and b"kept for review as quarantine" in sent.data[1]
    status, kept = await desk.api("GET", "/api/quarantine")
    assert status == 200
    assert [i["reason"] for i in kept["items"]] == [f"{why}: matches no ticket"]
    _, listing = await desk.api("GET", "/api/tickets")
    assert len(listing["tickets"]) == 1
    assert len(await desk.settle()) == 1


# ---- 7. rate limit ---------------------------------------------------------------------------


async def test_one_sender_gets_at_most_five_acks_an_hour(desk: GatewayHarness) -> None:
    refs = []
    for n in range(1, 9):
        sent = await desk.send_mail(
            mail(subject=f"Problem number {n}", msgid=f"alice-many-{n}@mail.example.org")
        )
        refs.append(sent.queued_as)
    assert refs == [f"SD-{n}" for n in range(1, 9)]

    acks = await desk.settle()
    # The dispatcher sends concurrently: which five, not in which order.
    assert sorted(a["Subject"] for a in acks) == [
        f"[SD-{n}] Problem number {n}" for n in range(1, 6)
    ]
    last = await desk.ticket("SD-8")
    assert contact_event(last, "alice-many-8@mail.example.org")["ack"] == (
        "suppressed:sender-rate-limit"
    )


# ---- 8. agent reply, 9. escalation --------------------------------------------------------------


async def test_agent_reply_reaches_the_requester_threaded_and_her_answer_lands_on_the_ticket(
    desk: GatewayHarness,
) -> None:
    ack = await alice_opens_a_ticket(desk)
    latest = "alice-2@mail.example.org"
    follow_up = mail(
        subject="Re: [SD-1] Printer on fire",
        msgid=latest,
        headers=f"In-Reply-To: {ack['Message-ID']}",
    )
    assert (await desk.send_mail(follow_up)).queued_as == "SD-1"

    status, body = await desk.api("POST", "/api/tickets/SD-1/reply", {"text": "Unplug it."})
    assert status == 202, body
    ack_again, reply = await desk.sink.wait_for(2)
    assert ack_again["Message-ID"] == ack["Message-ID"]
    assert desk.sink.envelopes[1].rcpt_tos == [ALICE]
    assert reply["To"] == ALICE
    assert reply["Subject"] == "Re: [SD-1] Printer on fire"
    assert bare_id(reply["In-Reply-To"]) == latest
    assert latest in [bare_id(r) for r in str(reply["References"]).split()]
    assert reply["Auto-Submitted"] is None
    assert reply.get_content().strip() == "Unplug it."

    ticket = await desk.ticket("SD-1")
    [outbound] = [c for c in ticket["contacts"] if c["direction"] == "out"]
    assert outbound["external_id"] == bare_id(reply["Message-ID"])
    assert outbound["text"] == "Unplug it."
    assert ticket["events"][-1]["type"] == "replied"

    answer = mail(
        subject="Thanks, that helped",
        msgid="alice-3@mail.example.org",
        headers=f"In-Reply-To: {reply['Message-ID']}",
    )
    assert (await desk.send_mail(answer)).queued_as == "SD-1"
    ticket = await desk.ticket("SD-1")
    assert contact_event(ticket, "alice-3@mail.example.org")["thread_reason"] == "message-id"
    assert len(await desk.settle()) == 2


async def test_escalation_moves_the_group_up_a_tier_and_never_the_owner(
    desk: GatewayHarness,
) -> None:
    await alice_opens_a_ticket(desk)
    status, ticket = await desk.api(
        "POST", "/api/tickets/SD-1/escalate", {"reason": "needs the apps team"}
    )
    assert status == 200, ticket
    assert (ticket["owner"], ticket["group"], ticket["tier"]) == (
        "service-desk",
        "customer-support",
        1.5,
    )
    event = ticket["events"][-1]
    assert event["type"] == "escalated"
    assert event["detail"]["from_group"] == "service-desk"
    assert event["detail"]["to_group"] == "customer-support"

    status, ticket = await desk.api(
        "POST", "/api/tickets/SD-1/escalate", {"reason": "apps bug", "group": "l2-apps"}
    )
    assert status == 200, ticket
    assert (ticket["owner"], ticket["group"], ticket["tier"]) == ("service-desk", "l2-apps", 2)
    assert await desk.ticket("SD-1") == ticket


# ---- 10. idempotency -------------------------------------------------------------------------


async def test_mta_resend_of_the_same_message_id_is_one_contact_with_the_same_ref(
    desk: GatewayHarness,
) -> None:
    first = await desk.send_mail(mail())
    again = await desk.send_mail(mail(body="The same message, resent after a lost 250."))
    assert first.data == again.data == (250, b"2.0.0 Ok: queued as SD-1")

    ticket = await desk.ticket("SD-1")
    assert len(ticket["contacts"]) == 1
    assert len(await desk.settle()) == 1


async def test_resend_without_message_id_of_the_same_bytes_is_one_contact(
    desk: GatewayHarness,
) -> None:
    raw = mail(msgid=None)
    first = await desk.send_mail(raw)
    again = await desk.send_mail(raw)
    assert first.queued_as == again.queued_as == "SD-1"

    ticket = await desk.ticket("SD-1")
    [contact] = ticket["contacts"]
    assert contact["external_id"].startswith("sha256-")
    status, listing = await desk.api("GET", "/api/tickets")
    assert status == 200 and len(listing["tickets"]) == 1


# ---- 11. spoc replay ---------------------------------------------------------------------------


async def test_replay_of_a_saved_message_creates_a_ticket_then_reports_a_duplicate(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "alice.eml"
    saved.write_bytes(mail())
    sink = RelaySink()
    await sink.start()
    harness = GatewayHarness(tmp_path, sqlite_url, sink)
    argv = ["--config", str(harness.config_path), "replay", str(saved)]
    try:
        assert await asyncio.to_thread(cli.main, argv) == 0
        assert f"{saved}: SD-1 (created, new)" in capsys.readouterr().out
        assert await asyncio.to_thread(cli.main, argv) == 0
        assert f"{saved}: SD-1 (duplicate, duplicate)" in capsys.readouterr().out

        await harness.start()  # the next `spoc serve` sends the ack the replay queued
        ticket = await harness.ticket("SD-1")
        assert [c["external_id"] for c in ticket["contacts"]] == [ALICE_MSGID]
        [ack] = await harness.settle()
        assert ack["Subject"] == "[SD-1] Printer on fire"
    finally:
        await harness.stop()
        await sink.stop()


# ---- 12. metrics ---------------------------------------------------------------------------


async def test_metrics_count_email_contacts_by_outcome_and_tickets_created(
    desk: GatewayHarness,
) -> None:
    ack = await alice_opens_a_ticket(desk)
    await desk.send_mail(mail())  # a resend: duplicate
    await desk.send_mail(
        mail(msgid="alice-2@mail.example.org", headers=f"In-Reply-To: {ack['Message-ID']}")
    )
    await desk.send_mail(mail(sender="bob@example.org", subject="VPN", msgid="bob-1@example.org"))
    await desk.settle()

    metrics = await desk.metrics()

    def value(name: str, **labels: str) -> float:
        return metrics[(name, frozenset(labels.items()))]

    assert value("spoc_contacts_total", channel="email", outcome="created") == 2
    assert value("spoc_contacts_total", channel="email", outcome="appended") == 1
    assert value("spoc_contacts_total", channel="email", outcome="duplicate") == 1
    assert value("spoc_contacts_total", channel="api", outcome="created") == 0
    assert value("spoc_tickets_created_total", channel="email") == 2
    assert value("spoc_outbox_depth") == 0
