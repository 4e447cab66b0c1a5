"""Contacts from the end users' web form (channel ``web``) in the router: acknowledged by email
like a mail, and the form vouches for the email address alone."""

from __future__ import annotations

from datetime import UTC, datetime

from normalizer.contact import Channel, Contact, Party
from normalizer.webform import contact_from_webform
from router.identity import vouched_keys
from router.schema import outbox
from tests.unit.router.conftest import Desk

NOW = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)


def report(form_id: str = "n1", email: str = "bob@example.org") -> Contact:
    return contact_from_webform(
        {"name": "Bob", "email": email, "description": "My laptop does not start"},
        [],
        form_id=form_id,
        received_at=NOW,
        desk_address="servicedesk@example.com",
    )


async def test_a_web_report_is_acknowledged_by_email_naming_its_ref(desk: Desk) -> None:
    result = await desk.router.submit(report())

    assert result.created and result.acknowledged
    rows = desk.store.run_sync(lambda c: c.execute(outbox.select()).all())
    assert [(r.kind, r.recipient) for r in rows] == [("email.ack", "bob@example.org")]
    assert (rows[0].payload["event"], rows[0].payload["ticket_ref"]) == ("ack", "SD-1")
    ticket = await desk.tickets.get("SD-1")
    assert ticket["channel"] == "web" and ticket["requester"]["email"] == "bob@example.org"


async def test_the_same_form_sent_twice_is_one_ticket(desk: Desk) -> None:
    first = await desk.router.submit(report("same"))
    again = await desk.router.submit(report("same"))

    assert again.duplicate and again.ticket_ref == first.ticket_ref


def test_a_web_form_vouches_for_the_email_only_not_a_phone_typed_beside_it() -> None:
    party = Party(email="bob@example.org", phone="+14155550100")

    assert vouched_keys(party, Channel.WEB) == [("email", "bob@example.org")]
