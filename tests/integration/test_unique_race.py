"""Two gateways on one PostgreSQL: the same contact reaches both at once. The one that loses the
race on the unique ``(channel, external_id)`` must answer with the winner's ticket (a duplicate),
not "database unavailable" (SMTP 451, HTTP 503), and say so only at DEBUG.

PostgreSQL only: SQLite's writer takes its lock at BEGIN IMMEDIATE, so there is no race there.
The interleaving is forced, not timed: the loser's INSERT INTO contacts waits until the winner
has committed the same contact through its own store.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.migrate import upgrade
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


@pytest.fixture
async def stores(pg_url: str) -> AsyncIterator[tuple[Store, Store]]:
    upgrade(pg_url)
    winner, loser = Store.from_url(pg_url), Store.from_url(pg_url)
    await winner.start()
    await loser.start()
    yield winner, loser
    await loser.close()
    await winner.close()


def let_the_winner_commit_first(loser: Store, winner: Store, same: Contact) -> None:
    """Before the loser's first INSERT INTO contacts, the winner stores ``same`` and commits."""
    done = False

    def before_insert(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal done
        if not done and statement.lstrip().upper().startswith("INSERT INTO CONTACTS"):
            done = True
            winner.run_sync(lambda c: Router(winner, SETTINGS).ingest(c, same))

    engine = loser._writer  # the writer thread's engine: where the race is lost
    sa.event.listen(engine, "before_cursor_execute", before_insert)


async def test_the_loser_of_a_unique_race_answers_the_winners_ticket_as_a_duplicate(
    stores: tuple[Store, Store], caplog: pytest.LogCaptureFixture
) -> None:
    winner, loser = stores
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
    [record] = [r for r in caplog.records if "race" in r.getMessage()]
    assert record.levelno == logging.DEBUG
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
