"""IMAP pollers' state in a real database: checkpoints, and one poller per mailbox.

SQLite (a file in ``tmp_path``) and PostgreSQL (a fresh database); two locks on the same
mailbox stand for two gateway processes sharing the database.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gateway.migrate import upgrade
from normalizer.mailbox import Checkpoint
from router.mailboxes import MailboxCheckpoints, poller_lock
from router.store import Store, engine_url


async def test_a_checkpoint_is_kept_per_mailbox_and_folder_and_overwritten(store: Store) -> None:
    checkpoints = MailboxCheckpoints(store)
    assert await checkpoints.load("legacy", "INBOX") is None

    await checkpoints.save("legacy", "INBOX", Checkpoint(uidvalidity=7, last_uid=3))
    await checkpoints.save("legacy", "Archive", Checkpoint(uidvalidity=9, last_uid=1))
    await checkpoints.save("legacy", "INBOX", Checkpoint(uidvalidity=8, last_uid=5))

    assert await checkpoints.load("legacy", "INBOX") == Checkpoint(8, 5)
    assert await checkpoints.load("legacy", "Archive") == Checkpoint(9, 1)
    assert await checkpoints.load("other", "INBOX") is None


async def test_only_one_poller_holds_a_mailbox_until_it_lets_go(store: Store) -> None:
    first, second = poller_lock(store, "legacy"), poller_lock(store, "legacy")
    other_mailbox = poller_lock(store, "other")
    try:
        assert await first.acquire() is True
        assert await second.acquire() is False
        assert await other_mailbox.acquire() is True
        assert await first.held() is True and await second.held() is False

        await first.release()

        assert await second.acquire() is True
    finally:
        for lock in (first, second, other_mailbox):
            await lock.release()


@pytest.mark.postgres
async def test_a_poller_whose_lock_connection_died_sees_it_lost_and_another_takes_over(
    pg_url: str,
) -> None:
    upgrade(pg_url)
    store = Store.from_url(pg_url)
    await store.start()
    first, second = poller_lock(store, "legacy"), poller_lock(store, "legacy")
    try:
        assert await first.acquire() is True
        # What a crashed gateway or a dropped connection does: its backend goes away.
        engine = sa.create_engine(engine_url(pg_url), poolclass=sa.NullPool)
        with engine.connect() as conn, conn.begin():
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND pid <> pg_backend_pid() AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            )
        engine.dispose()

        assert await first.held() is False
        assert await second.acquire() is True
    finally:
        await first.release()
        await second.release()
        await store.close()


async def test_failures_are_counted_per_message_and_forgotten_once_the_checkpoint_passes(
    store: Store,
) -> None:
    checkpoints = MailboxCheckpoints(store)
    assert await checkpoints.count_failure("legacy", "INBOX", 7, 5) == 1
    assert await checkpoints.count_failure("legacy", "INBOX", 7, 5) == 2
    assert await checkpoints.count_failure("legacy", "INBOX", 7, 6) == 1
    assert await checkpoints.count_failure("legacy", "Archive", 7, 5) == 1

    await checkpoints.save("legacy", "INBOX", Checkpoint(uidvalidity=7, last_uid=5))

    assert await checkpoints.count_failure("legacy", "INBOX", 7, 5) == 1  # forgotten: passed
    assert await checkpoints.count_failure("legacy", "INBOX", 7, 6) == 2  # still waiting
    assert await checkpoints.count_failure("legacy", "Archive", 7, 5) == 2  # another folder
    await checkpoints.save("legacy", "INBOX", Checkpoint(uidvalidity=8, last_uid=0))
    assert await checkpoints.count_failure("legacy", "INBOX", 7, 6) == 1  # old UIDVALIDITY
