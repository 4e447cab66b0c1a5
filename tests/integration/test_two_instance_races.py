"""Two gateways on one PostgreSQL: one ticket for one conversation, one requester for one person.

The shape of issue 12's defect: two contacts of one conversation (a call's recording and its
transcript; a Slack message and the reaction on it; one email delivered through two MX hosts;
a Slack event redelivered to another instance) reach two two_stores at once. Both look the
thread key up in ``message_ids``, find nothing and open a ticket each, and ``remember_ids``
keeps the first ticket's key: the conversation is split (the call and Slack-reaction shapes
split before ``router.thread_lock``; the redelivery shapes were already saved by the unique
``(channel, external_id)``). A brand-new sender's two first contacts race on the identity
instead: the loser must run again in place, not answer 451/503.

The interleaving is forced, not timed. Right after the first instance's thread lookup (the
SELECT on ``message_ids`` on its writer connection) the second instance is handed its contact,
and the first waits until the second has either committed (the defect: it found nothing) or is
blocked on a lock the first holds (the fix). Only then does the first go on.

PostgreSQL only: SQLite's writer takes its lock at BEGIN IMMEDIATE, so two writers of one
SQLite file are serial already and this race cannot happen there.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from normalizer.contact import Channel, Contact, Party, ThreadHints
from normalizer.intake import IntakeResult
from router.router import Router
from router.schema import contacts, identities, tickets
from router.store import Store
from tests.unit.router.conftest import email, make_settings

pytestmark = pytest.mark.postgres

SETTINGS = make_settings()
HANG_GUARD_SECONDS = 30.0  # fails a broken test instead of hanging it; nothing waits on time
CALLER = Party(phone="+15550100", name="Bob")
SLACKER = Party(slack_user_id="U123", name="Carol")
WHEN = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)


def _someone_waits_on_an_advisory_lock(pg_url: str) -> bool:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()
    return bool(row and row[0])


def second_ingests_after_first_looks_up(
    pg_url: str, first: Store, second: Store, contact: Contact, lookup: str
) -> list[Future[IntakeResult]]:
    """Arrange for ``second`` to take ``contact`` right after ``first``'s next ``lookup`` (the
    table a SELECT reads: ``message_ids`` for the thread, ``contacts`` for the dedupe);
    ``first`` then waits until ``second`` committed or waits on a lock. Returns a list that
    holds the second instance's pending result once it started."""
    loop = asyncio.get_running_loop()
    started: list[Future[IntakeResult]] = []

    def after_lookup(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if started or f"FROM {lookup}" not in statement:
            return
        run = asyncio.run_coroutine_threadsafe(Router(second, SETTINGS).submit(contact), loop)
        started.append(run)
        deadline = time.monotonic() + HANG_GUARD_SECONDS
        while not run.done() and not _someone_waits_on_an_advisory_lock(pg_url):
            if time.monotonic() > deadline:
                raise AssertionError("the second instance neither committed nor waited")
            time.sleep(0.01)

    sa.event.listen(first._writer, "after_cursor_execute", after_lookup)
    return started


async def race(
    pg_url: str,
    stores: tuple[Store, Store],
    one: Contact,
    two: Contact,
    lookup: str = "message_ids",
) -> tuple[IntakeResult, IntakeResult]:
    first, second = stores
    started = second_ingests_after_first_looks_up(pg_url, first, second, two, lookup)
    result_one = await Router(first, SETTINGS).submit(one)
    assert started, "the second instance never ran: the lookup hook did not fire"
    result_two = await asyncio.wrap_future(started[0])
    return result_one, result_two


async def ticket_ids(store: Store, *external_ids: str) -> set[int]:
    rows = await store.read(
        lambda c: c.execute(
            sa.select(contacts.c.ticket_id).where(contacts.c.external_id.in_(external_ids))
        ).all()
    )
    return {r.ticket_id for r in rows}


def call_step(step: str, call_sid: str = "CA0001") -> Contact:
    return Contact(
        channel=Channel.PHONE,
        external_id=f"{call_sid}:{step}:RE0001",
        sender=CALLER,
        received_at=WHEN,
        subject="Voicemail from +15550100",
        text=f"the {step}",
        thread=ThreadHints(call_id=call_sid),
    )


async def meet_carol(store: Store) -> None:
    """Carol is known already: the two transactions then share nothing but the thread."""
    await Router(store, SETTINGS).submit(slack("C9:1700000000.000001", "C9:1700000000.000001"))


def slack(external_id: str, thread: str) -> Contact:
    return Contact(
        channel=Channel.SLACK,
        external_id=external_id,
        sender=SLACKER,
        received_at=WHEN,
        subject="VPN down",
        text="The VPN is down again.",
        thread=ThreadHints(chat_thread=thread),
    )


async def test_a_calls_recording_and_transcript_on_two_two_stores_open_one_ticket(
    pg_url: str, two_stores: tuple[Store, Store]
) -> None:
    # Bob is known already: the two transactions then share nothing but the call's key.
    await Router(two_stores[0], SETTINGS).submit(call_step("recording", "CA0000"))

    one, two = await race(pg_url, two_stores, call_step("recording"), call_step("transcription"))

    both = await ticket_ids(two_stores[0], "CA0001:recording:RE0001", "CA0001:transcription:RE0001")
    assert both == {one.ticket_id} == {two.ticket_id}
    assert (one.created, two.created) == (True, False)
    assert two.thread_reason == "call"


async def test_a_slack_message_and_its_reaction_on_two_two_stores_open_one_ticket(
    pg_url: str, two_stores: tuple[Store, Store]
) -> None:
    await meet_carol(two_stores[0])
    thread = "D1:1700000000.000100"

    one, two = await race(
        pg_url,
        two_stores,
        slack("D1:1700000000.000100", thread),
        slack(f"reaction:{thread}", thread),
    )

    assert one.ticket_id == two.ticket_id
    assert (one.created, two.created) == (True, False)


async def test_a_slack_retry_on_another_instance_is_one_contact_on_one_ticket(
    pg_url: str, two_stores: tuple[Store, Store]
) -> None:
    await meet_carol(two_stores[0])
    thread = "D1:1700000000.000200"

    one, two = await race(pg_url, two_stores, slack(thread, thread), slack(thread, thread))

    assert await ticket_ids(two_stores[0], thread) == {one.ticket_id} == {two.ticket_id}
    assert sorted([one.duplicate, two.duplicate]) == [False, True]


async def test_one_email_through_two_mx_hosts_is_one_contact_on_one_ticket(
    pg_url: str, two_stores: tuple[Store, Store]
) -> None:
    await Router(two_stores[0], SETTINGS).submit(email(message_id="known@mail.example.org"))
    mid = "twice@mail.example.org"
    via_mx1 = email(message_id=mid, raw=b"Received: from mx1\r\n\r\nhi")
    via_mx2 = email(message_id=mid, raw=b"Received: from mx2\r\n\r\nhi")

    # A new mail refers to no thread: the race is between the two dedupe lookups.
    one, two = await race(pg_url, two_stores, via_mx1, via_mx2, lookup="contacts")

    assert await ticket_ids(two_stores[0], mid) == {one.ticket_id} == {two.ticket_id}
    assert sorted([one.duplicate, two.duplicate]) == [False, True]


async def test_two_batches_that_deadlock_on_conversation_locks_both_commit(
    two_stores: tuple[Store, Store], caplog: pytest.LogCaptureFixture
) -> None:
    """Group commit holds several contacts' locks at once, so two two_stores can take two keys
    in opposite orders. PostgreSQL aborts one side; that is a lost race to run again, not a
    "database unavailable" answer (451/503) to the sender."""
    holding = {"first": threading.Event(), "second": threading.Event()}

    def take(mine: str, theirs: str, keys: tuple[int, int]) -> Any:
        def job(conn: Any) -> str:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": keys[0]})
            holding[mine].set()
            if not holding[theirs].wait(HANG_GUARD_SECONDS):
                raise AssertionError("the other instance never took its lock")
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": keys[1]})
            return mine

        return job

    first, second = two_stores
    with caplog.at_level(logging.DEBUG, logger="router.store"):
        done = await asyncio.gather(
            first.write(take("first", "second", (1, 2))),
            second.write(take("second", "first", (2, 1))),
        )

    assert done == ["first", "second"]
    assert [r.levelno for r in caplog.records if "race" in r.getMessage()] == [logging.DEBUG]


async def test_two_first_contacts_of_a_new_sender_on_two_instances_share_one_requester(
    pg_url: str, two_stores: tuple[Store, Store], caplog: pytest.LogCaptureFixture
) -> None:
    """Dave writes twice, two mails with nothing in common but him, and each reaches its own
    instance at once. Both find no requester; the one that inserts the identity second lost a
    race, which it runs again in place: no 451/503 "database unavailable", one requester."""
    first_mail = email("dave@example.org", "Printer jam", message_id="d1@mail.example.org")
    second_mail = email("dave@example.org", "Also the VPN", message_id="d2@mail.example.org")

    with caplog.at_level(logging.DEBUG, logger="router.store"):
        one, two = await race(pg_url, two_stores, first_mail, second_mail, lookup="identities")

    assert one.created and two.created and one.ticket_id != two.ticket_id
    owners = await two_stores[0].read(
        lambda c: c.execute(
            sa.select(identities.c.requester_id).where(identities.c.value == "dave@example.org")
        ).all()
    )
    requester_ids = await two_stores[0].read(
        lambda c: (
            c.execute(
                sa.select(tickets.c.requester_id).where(
                    tickets.c.id.in_([one.ticket_id, two.ticket_id])
                )
            )
            .scalars()
            .all()
        )
    )
    assert len(owners) == 1 and set(requester_ids) == {owners[0].requester_id}
    assert [r.levelno for r in caplog.records if "race" in r.getMessage()] == [logging.DEBUG]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
