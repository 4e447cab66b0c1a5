"""What automatic mail does to tickets (router.system_mail) and the acks it stops (router.acks)."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from normalizer.contact import AutoClass, Report
from router.schema import outbox, participants, quarantine, tickets, undeliverable
from tests.unit.router.conftest import Desk, email, make_settings

MAILER_DAEMON = "mailer-daemon@mx.example.org"


def rows(desk: Desk, *columns: Any, where: Any = None) -> list[Any]:
    query = sa.select(*columns)
    if where is not None:
        query = query.where(where)
    return desk.store.run_sync(lambda c: list(c.execute(query).all()))


def ack_payloads(desk: Desk) -> list[dict[str, Any]]:
    return [r.payload for r in rows(desk, outbox.c.payload, where=outbox.c.kind == "email.ack")]


def bounce(original_ids: tuple[str, ...] = (), **kw: Any) -> Any:
    report = Report(
        original_ids=original_ids,
        failed_recipients=kw.pop("failed", ("alice@example.org",)),
        delivery_failed=kw.pop("delivery_failed", True),
    )
    return email(
        sender=MAILER_DAEMON,
        subject="Undelivered Mail Returned to Sender",
        auto=AutoClass.BOUNCE,
        envelope_sender="",
        name="Mail Delivery System",
        report=report,
        **kw,
    )


async def opened_and_acked(desk: Desk) -> str:
    """Alice opens SD-1; returns the Message-ID of the ack spoc queued for her."""
    first = await desk.router.submit(email(message_id="alice-1@mail.example.org"))
    assert first.acknowledged
    return str(ack_payloads(desk)[0]["message_id"])


async def events(desk: Desk, ref: str = "SD-1") -> list[tuple[str, dict[str, Any]]]:
    ticket = await desk.tickets.get(ref)
    return [(e["type"], e["detail"]) for e in ticket["events"]]


async def test_bounce_of_our_ack_is_recorded_on_its_ticket_and_stops_further_acks(
    desk: Desk,
) -> None:
    ack_id = await opened_and_acked(desk)

    result = await desk.router.submit(bounce((ack_id,)))

    assert (result.ticket_ref, result.created, result.quarantine_id) == ("SD-1", False, None)
    kind, detail = (await events(desk))[-1]
    assert kind == "acknowledgement.bounced"
    assert detail["undeliverable"] == ["alice@example.org"] and detail["ack"] == "suppressed:bounce"
    assert [r.status for r in rows(desk, tickets.c.status)] == ["new"]  # one ticket, unchanged
    assert MAILER_DAEMON not in {r.address for r in rows(desk, participants.c.address)}
    assert [r.address for r in rows(desk, undeliverable.c.address)] == ["alice@example.org"]

    again = await desk.router.submit(email(subject="Another problem"))
    assert again.created and not again.acknowledged
    assert (await events(desk, again.ticket_ref))[-1][1]["ack"] == "suppressed:undeliverable"


async def test_an_address_is_acknowledged_again_once_the_bounce_is_old(desk: Desk) -> None:
    ack_id = await opened_and_acked(desk)
    await desk.router.submit(bounce((ack_id,)))
    desk.clock.advance(days=31)
    assert (await desk.router.submit(email(subject="Another problem"))).acknowledged


async def test_a_delay_notice_is_recorded_but_marks_nothing_undeliverable(desk: Desk) -> None:
    ack_id = await opened_and_acked(desk)
    await desk.router.submit(bounce((ack_id,), delivery_failed=False))
    assert (await events(desk))[-1][0] == "delivery.delayed"
    assert rows(desk, undeliverable.c.address) == []


async def test_bounce_that_matches_no_ticket_is_quarantined_and_opens_none(desk: Desk) -> None:
    first = await desk.router.submit(bounce(("somebody-else@mail.example.net",), raw=b"dsn"))

    assert first.quarantine_id is not None and first.ticket_ref == "" and not first.created
    assert rows(desk, tickets.c.id) == [] and ack_payloads(desk) == []
    kept = rows(desk, quarantine.c.kind, quarantine.c.reason, quarantine.c.envelope_sender)
    assert [tuple(r) for r in kept] == [("system", "bounce: matches no ticket", "")]
    again = await desk.router.submit(bounce(("somebody-else@mail.example.net",), raw=b"dsn"))
    assert (again.quarantine_id, again.duplicate) == (first.quarantine_id, True)


async def test_forged_bounce_naming_a_requesters_own_message_marks_nobody(desk: Desk) -> None:
    # alice-1@... is known (alice sent it) but spoc did not write it: anyone could quote it.
    await opened_and_acked(desk)
    result = await desk.router.submit(bounce(("alice-1@mail.example.org",)))
    assert result.quarantine_id is not None
    assert rows(desk, undeliverable.c.address) == []


async def test_out_of_office_from_the_requester_is_recorded_without_changing_state(
    desk: Desk,
) -> None:
    await opened_and_acked(desk)
    await desk.tickets.set_status("SD-1", "pending")
    before = await desk.tickets.get("SD-1")

    ooo = email(
        subject="Automatic reply: Printer on fire",
        in_reply_to=("alice-1@mail.example.org",),
        auto=AutoClass.AUTO_REPLY,
    )
    result = await desk.router.submit(ooo)

    after = await desk.tickets.get("SD-1")
    assert result.ticket_ref == "SD-1" and not result.acknowledged
    assert (after["status"], after["updated_at"]) == (before["status"], before["updated_at"])
    assert after["events"][-1]["type"] == "auto_reply.received"
    assert len(ack_payloads(desk)) == 1


async def test_automatic_reply_to_our_ack_from_another_address_is_recorded(desk: Desk) -> None:
    ack_id = await opened_and_acked(desk)
    forwarder = email(
        sender="robot@forwarder.example.net",
        subject="Auto: thanks",
        in_reply_to=(ack_id,),
        auto=AutoClass.AUTO_REPLY,
    )
    result = await desk.router.submit(forwarder)
    assert result.ticket_ref == "SD-1"
    assert (await events(desk))[-1][1]["thread_reason"] == "our-message-id"


async def test_auto_reply_from_a_stranger_naming_a_ticket_tag_is_quarantined(desk: Desk) -> None:
    await opened_and_acked(desk)
    stranger = email(
        sender="mallory@evil.example",
        subject="Automatic reply: [SD-1]",
        subject_refs=("SD-1",),
        auto=AutoClass.AUTO_REPLY,
    )
    result = await desk.router.submit(stranger)
    assert result.quarantine_id is not None
    assert len((await desk.tickets.get("SD-1"))["contacts"]) == 1


async def test_a_bounce_returning_our_tagged_message_finds_its_ticket(desk: Desk) -> None:
    await opened_and_acked(desk)
    returned = email(
        sender=MAILER_DAEMON,
        auto=AutoClass.BOUNCE,
        report=Report(
            original_senders=("servicedesk@example.com",), original_subject_refs=("SD-1",)
        ),
    )
    result = await desk.router.submit(returned)
    assert result.ticket_ref == "SD-1"
    assert (await events(desk))[-1][0] == "delivery.bounced"
    assert rows(desk, undeliverable.c.address) == []  # a From line anyone can write marks nobody


# ---- Reply-To and the authentication of first-time senders (router.acks) ----------------


async def test_ack_goes_to_a_reply_to_in_the_senders_own_domain(desk: Desk) -> None:
    await desk.router.submit(email(reply_to=("it-team@example.org",)))
    assert ack_payloads(desk)[0]["to"] == "it-team@example.org"


async def test_ack_never_goes_to_a_reply_to_in_a_third_domain(desk: Desk) -> None:
    await desk.router.submit(email(reply_to=("victim@elsewhere.example",)))
    assert ack_payloads(desk)[0]["to"] == "alice@example.org"


async def test_ack_never_echoes_the_body(desk: Desk) -> None:
    await desk.router.submit(email(text="BUY CHEAP PILLS AT pills.example"))
    assert "PILLS" not in json.dumps(ack_payloads(desk)[0])


async def test_trusted_mx_unauthenticated_first_time_sender_gets_no_ack(desk: Desk) -> None:
    desk.router.settings = make_settings(trusted_authserv_ids=("mx.example.com",))
    result = await desk.router.submit(email(authenticated=False))
    assert result.created and not result.acknowledged
    assert (await events(desk))[-1][1]["ack"] == "suppressed:unauthenticated"


async def test_trusted_mx_authenticated_first_time_sender_is_acknowledged(desk: Desk) -> None:
    desk.router.settings = make_settings(trusted_authserv_ids=("mx.example.com",))
    assert (await desk.router.submit(email(authenticated=True))).acknowledged


async def test_trusted_mx_known_requester_is_acknowledged_without_a_pass(desk: Desk) -> None:
    await desk.router.submit(email(authenticated=True, subject="first"))
    desk.router.settings = make_settings(trusted_authserv_ids=("mx.example.com",))
    assert (await desk.router.submit(email(authenticated=None, subject="second"))).acknowledged


async def test_without_trusted_mx_unauthenticated_senders_are_acknowledged_as_before(
    desk: Desk,
) -> None:
    assert (await desk.router.submit(email(authenticated=False))).acknowledged


async def test_a_copy_of_our_own_ack_coming_back_is_recorded_on_its_ticket(desk: Desk) -> None:
    ack_id = await opened_and_acked(desk)
    echoed = email(
        sender="servicedesk@example.com",
        message_id=ack_id,
        in_reply_to=("alice-1@mail.example.org",),
        auto=AutoClass.LOOP,
    )
    result = await desk.router.submit(echoed)
    assert result.ticket_ref == "SD-1" and result.quarantine_id is None
    assert (await events(desk))[-1][0] == "loop.received"


async def test_a_spam_complaint_about_our_ack_stops_further_acks_to_that_address(
    desk: Desk,
) -> None:
    ack_id = await opened_and_acked(desk)
    complaint = email(
        sender="feedback@arf.mail.example.net",
        auto=AutoClass.FEEDBACK,
        report=Report(original_ids=(ack_id,)),
    )
    assert (await desk.router.submit(complaint)).ticket_ref == "SD-1"
    kind, detail = (await events(desk))[-1]
    assert (kind, detail["undeliverable"]) == ("acknowledgement.complained", ["alice@example.org"])
    assert not (await desk.router.submit(email(subject="Another problem"))).acknowledged


async def test_the_result_names_why_no_ack_went_out_as_the_event_does(desk: Desk) -> None:
    # The gateway counts spoc_acks_suppressed_total from IntakeResult, never from events.
    ack_id = await opened_and_acked(desk)
    recorded = await desk.router.submit(bounce((ack_id,)))
    assert recorded.ack_suppressed == "bounce"
    again = await desk.router.submit(email(subject="Another problem"))
    assert again.ack_suppressed == "undeliverable"
