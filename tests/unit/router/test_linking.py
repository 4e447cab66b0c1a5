"""One problem, two channels, one ticket -- and different problems stay apart.

The same requester on a second channel within ``link_window_minutes`` joins their open ticket
when the texts mean the same, or the category matches and nothing contradicts it; the split
undoes it. Real model, real SQLite.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from normalizer.contact import AutoClass
from router.linking import ContactNotOnTicket, OnlyContact
from router.meaning import MeaningReader
from router.schema import outbox
from tests.unit.router.conftest import Desk
from tests.unit.router.triage_support import (
    call,
    events_of,
    known_person,
    mail,
    open_desk,
    shipped_settings,
    slack_dm,
)

VPN_MAIL = (
    "VPN broken",
    "The VPN at home does not connect, it gives error 809 since this morning.",
)
VPN_CALL = "hi it's Alice, I sent an email already, the VPN at home still won't connect, error 809"


async def test_an_email_then_a_call_about_the_same_problem_is_one_ticket(smart_desk: Desk) -> None:
    await known_person(smart_desk, "alice@example.org", "+14155550100")
    first = await smart_desk.router.submit(mail(smart_desk, *VPN_MAIL))
    smart_desk.clock.advance(minutes=12)
    second = await smart_desk.router.submit(call(smart_desk, VPN_CALL))
    assert second.ticket_ref == first.ticket_ref
    assert second.thread_reason == "linked" and not second.created
    [linked] = await events_of(smart_desk, first.ticket_id, "contact.linked")
    assert linked["reason"].startswith("linked: same requester, similar text 0.")
    assert linked["reason"].endswith(f"12 min after {first.ticket_ref} by email")
    assert linked["contact_id"] == second.contact_id
    ticket = await smart_desk.tickets.get(first.ticket_ref)
    assert [c["channel"] for c in ticket["contacts"]] == ["email", "phone"]


async def test_a_different_problem_from_the_same_person_is_another_ticket(smart_desk: Desk) -> None:
    await known_person(smart_desk, "alice@example.org", "+14155550100")
    first = await smart_desk.router.submit(mail(smart_desk, *VPN_MAIL))
    smart_desk.clock.advance(minutes=5)
    other = await smart_desk.router.submit(
        call(smart_desk, "hello it's Alice again, the printer on floor three is jammed, error 13")
    )
    assert other.created and other.ticket_ref != first.ticket_ref


async def test_the_same_problem_after_the_window_is_another_ticket(smart_desk: Desk) -> None:
    await known_person(smart_desk, "alice@example.org", "+14155550100")
    first = await smart_desk.router.submit(mail(smart_desk, *VPN_MAIL))
    smart_desk.clock.advance(minutes=31)
    late = await smart_desk.router.submit(call(smart_desk, VPN_CALL))
    assert late.created and late.ticket_ref != first.ticket_ref


async def test_someone_else_with_the_same_problem_is_another_ticket(smart_desk: Desk) -> None:
    first = await smart_desk.router.submit(mail(smart_desk, *VPN_MAIL))
    bob = await smart_desk.router.submit(call(smart_desk, VPN_CALL, phone="+14155550199"))
    assert bob.created and bob.ticket_ref != first.ticket_ref


async def test_a_second_email_is_not_linked_across_channels(smart_desk: Desk) -> None:
    first = await smart_desk.router.submit(mail(smart_desk, *VPN_MAIL))
    again = await smart_desk.router.submit(mail(smart_desk, "VPN", VPN_CALL))
    assert again.created and again.ticket_ref != first.ticket_ref


async def test_a_call_with_the_same_ivr_category_and_no_words_joins_the_ticket(
    smart_desk: Desk,
) -> None:
    await known_person(smart_desk, "alice@example.org", "+14155550100")
    text = "My laptop screen is cracked, I dropped it on the train and half of it is black."
    first = await smart_desk.router.submit(mail(smart_desk, "Cracked screen", text))
    smart_desk.clock.advance(minutes=3)
    second = await smart_desk.router.submit(call(smart_desk, None, category="broken_device"))
    assert second.ticket_ref == first.ticket_ref
    [linked] = await events_of(smart_desk, first.ticket_id, "contact.linked")
    assert "same category broken_device" in linked["reason"]


async def test_an_ivr_category_that_differs_keeps_the_call_apart(smart_desk: Desk) -> None:
    await known_person(smart_desk, "alice@example.org", "+14155550100")
    text = "My laptop screen is cracked, I dropped it on the train and half of it is black."
    first = await smart_desk.router.submit(mail(smart_desk, "Cracked screen", text))
    second = await smart_desk.router.submit(call(smart_desk, None, category="locked_account"))
    assert second.created and second.ticket_ref != first.ticket_ref


async def test_a_slack_message_then_an_email_acks_the_existing_ref(smart_desk: Desk) -> None:
    first = await smart_desk.router.submit(
        slack_dm(smart_desk, "the vpn from home keeps failing with error 809, can't connect")
    )
    smart_desk.clock.advance(minutes=20)
    second = await smart_desk.router.submit(mail(smart_desk, *VPN_MAIL))
    assert second.ticket_ref == first.ticket_ref and second.acknowledged

    def acks(conn: sa.Connection) -> list[dict[str, object]]:
        rows = conn.execute(sa.select(outbox.c.payload).where(outbox.c.kind == "email.ack"))
        return [r.payload for r in rows]

    [ack] = await smart_desk.store.read(acks)
    assert ack["ticket_ref"] == first.ticket_ref


async def test_a_call_s_transcript_moves_the_call_onto_the_email_s_ticket(
    smart_desk: Desk,
) -> None:
    await known_person(smart_desk, "alice@example.org", "+14155550100")
    first = await smart_desk.router.submit(mail(smart_desk, *VPN_MAIL))
    smart_desk.clock.advance(minutes=7)
    sid = "CA" + "7" * 32
    recording = await smart_desk.router.submit(call(smart_desk, None, sid=sid))
    assert recording.created  # no words yet: nothing to link by
    smart_desk.clock.advance(minutes=1)
    transcript = await smart_desk.router.submit(call(smart_desk, VPN_CALL, sid=sid))
    assert transcript.ticket_ref == first.ticket_ref
    ticket = await smart_desk.tickets.get(first.ticket_ref)
    assert [c["channel"] for c in ticket["contacts"]] == ["email", "phone", "phone"]
    closed = await smart_desk.tickets.get(recording.ticket_ref)
    assert closed["status"] == "closed" and closed["contacts"] == []
    [merged] = [e["detail"] for e in closed["events"] if e["type"] == "merged"]
    assert merged["into"] == first.ticket_ref
    assert merged["reason"].startswith("linked: same requester, similar text")
    # the call's later steps (its callback) follow it to the email's ticket
    hang_up = replace(call(smart_desk, None, sid=sid), external_id=f"{sid}:callback")
    assert (await smart_desk.router.submit(hang_up)).ticket_ref == first.ticket_ref


async def test_a_call_s_transcript_fills_in_the_category_it_could_not_know(
    smart_desk: Desk,
) -> None:
    sid = "CA" + "8" * 32
    recording = await smart_desk.router.submit(call(smart_desk, None, sid=sid))
    before = await smart_desk.tickets.get(recording.ticket_ref)
    assert before["category"] is None
    said = "hello, the printer on the second floor has a paper jam and shows error 13"
    await smart_desk.router.submit(call(smart_desk, said, sid=sid))
    after = await smart_desk.tickets.get(recording.ticket_ref)
    assert after["category"] == "printer"
    assert [e["detail"]["decided_by"] for e in after["events"] if e["type"] == "classified"] == [
        "rules",
        "model",
    ]


async def test_an_auto_reply_is_never_linked(smart_desk: Desk) -> None:
    first = await smart_desk.router.submit(
        slack_dm(smart_desk, "the vpn from home keeps failing with error 809, can't connect")
    )
    auto = replace(mail(smart_desk, *VPN_MAIL), auto=AutoClass.AUTO_REPLY)
    second = await smart_desk.router.submit(auto)
    assert second.ticket_ref != first.ticket_ref
    assert second.quarantine_id is not None  # automatic mail matching no ticket: kept apart


async def test_no_vector_is_kept_when_linking_is_off(tmp_path: Path, reader: MeaningReader) -> None:
    desk = await open_desk(tmp_path, shipped_settings(link_window_minutes=0), reader)
    try:
        result = await desk.router.submit(mail(desk, *VPN_MAIL))
        assert await events_of(desk, result.ticket_id, "meaning") == []
        assert (await desk.tickets.get(result.ticket_ref))["category"] == "network"
    finally:
        await desk.store.close()


async def test_split_moves_the_linked_contact_to_a_new_ticket(smart_desk: Desk) -> None:
    await known_person(smart_desk, "alice@example.org", "+14155550100")
    first = await smart_desk.router.submit(mail(smart_desk, *VPN_MAIL))
    second = await smart_desk.router.submit(call(smart_desk, VPN_CALL))
    new = await smart_desk.tickets.split(first.ticket_ref, second.contact_id)
    assert new["ref"] != first.ticket_ref
    assert [c["id"] for c in new["contacts"]] == [second.contact_id]
    assert new["channel"] == "phone" and new["category"] == "network"
    assert new["events"][0]["detail"]["split_from"] == first.ticket_ref
    old = await smart_desk.tickets.get(first.ticket_ref)
    assert [c["channel"] for c in old["contacts"]] == ["email"]
    [split] = [e["detail"] for e in old["events"] if e["type"] == "split"]
    assert split == {"contact_id": second.contact_id, "to": new["ref"]}
    # the call's own keys went along: its next step lands on the new ticket
    assert await events_of(smart_desk, int(new["ref"].split("-")[1]), "meaning")


async def test_split_refuses_the_only_contact_and_a_stranger_s(smart_desk: Desk) -> None:
    first = await smart_desk.router.submit(mail(smart_desk, *VPN_MAIL))
    with pytest.raises(OnlyContact):
        await smart_desk.tickets.split(first.ticket_ref, first.contact_id)
    with pytest.raises(ContactNotOnTicket):
        await smart_desk.tickets.split(first.ticket_ref, first.contact_id + 999)


def test_the_link_lookup_is_an_index_range_not_a_walk_over_the_requesters_tickets(
    tmp_path: Path,
) -> None:
    """A requester with thousands of open e-mail tickets (a monitoring system) must not make
    every contact of theirs walk them: SQLite seeks on all four columns of the index."""
    from datetime import UTC, datetime

    from normalizer.contact import Channel
    from router.linking import _CANDIDATE_TICKETS, _OTHER_CHANNELS
    from router.schema import metadata

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    metadata.create_all(engine)
    params = {
        "requester_id": 1,
        "since": datetime(2026, 12, 1, tzinfo=UTC),
        "channels": _OTHER_CHANNELS[Channel.EMAIL],
        "exclude": 0,
    }
    seen: list[tuple[str, Any]] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def capture(conn: Any, cursor: Any, sql: str, parameters: Any, *rest: Any) -> None:
        seen.append((sql, parameters))

    with engine.connect() as conn:
        conn.execute(_CANDIDATE_TICKETS, params).all()
        sql, parameters = seen[-1]
        plan = " ".join(
            str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", parameters)
        )
    engine.dispose()
    assert "last_channel=?" in plan and "updated_at>?" in plan, plan
    assert "email" not in _OTHER_CHANNELS[Channel.EMAIL]
    assert set(_OTHER_CHANNELS[Channel.EMAIL]) | {"email"} == {c.value for c in Channel}
