"""Two gateways on one PostgreSQL: the same contact reaches both at once. The one that loses the
race on the unique ``(channel, external_id)`` must answer with the winner's ticket (a duplicate),
not "database unavailable" (SMTP 451, HTTP 503), with nothing logged above DEBUG.

PostgreSQL only: SQLite's writer takes its lock at BEGIN IMMEDIATE, so there is no race there.
The interleaving is forced, not timed: the loser's transaction waits until the winner has
committed the same contact through its own store. Since the conversation lock
(``router.thread_lock``) the loser then finds the contact at its dedupe lookup; the unique-key
retry itself is exercised by ``test_two_instance_races`` (a new sender's identity).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from normalizer.contact import Channel, Contact, Party
from router.router import Router
from router.schema import contacts
from router.store import Store
from tests.unit.router.conftest import make_settings

pytestmark = pytest.mark.postgres

SETTINGS = make_settings()


def contact(external_id: str) -> Contact:
    return Contact(
        channel=Channel.API,
        external_id=external_id,
        sender=Party(email="alice@example.org", name="Alice"),
        received_at=datetime(2026, 11, 22, 15, 0, tzinfo=UTC),
        subject="Printer on fire",
        text="Floor 3.",
    )


def let_the_winner_commit_first(loser: Store, winner: Store, same: Contact) -> None:
    """Just before the loser's transaction takes its conversation lock, the winner stores
    ``same`` and commits (once the loser holds the lock the winner would wait for it)."""
    done = False

    def before_insert(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal done
        if not done and "pg_advisory_xact_lock" in statement:
            done = True
            winner.run_sync(lambda c: Router(winner, SETTINGS).ingest(c, same))

    engine = loser._writer  # the writer thread's engine: where the race is lost
    sa.event.listen(engine, "before_cursor_execute", before_insert)


async def test_the_loser_of_a_unique_race_answers_the_winners_ticket_as_a_duplicate(
    two_stores: tuple[Store, Store], caplog: pytest.LogCaptureFixture
) -> None:
    winner, loser = two_stores
    # Alice is known already, so the two transactions share no row but the contact's key.
    await Router(winner, SETTINGS).submit(contact("form-1"))
    let_the_winner_commit_first(loser, winner, contact("form-2"))

    with caplog.at_level(logging.DEBUG, logger="router.store"):
        result = await Router(loser, SETTINGS).submit(contact("form-2"))

    assert result.duplicate and not result.created
    rows = await loser.read(
        lambda c: c.execute(
            sa.select(contacts.c.ticket_id).where(contacts.c.external_id == "form-2")
        ).all()
    )
    assert [r.ticket_id for r in rows] == [result.ticket_id]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
