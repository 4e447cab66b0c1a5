"""Each call's IVR progress in a real database (``router.calls``), SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from normalizer.calls import CallProgress
from router.calls import CallJournalStore
from router.store import Store
from tests.unit.router.conftest import Clock


async def test_a_choice_is_read_back_and_a_finish_keeps_it(store: Store) -> None:
    journal = CallJournalStore(store)
    assert await journal.get("CA1") is None
    await journal.chose("CA1", CallProgress(path="12", offered_ref="SD-7", recording=True))
    assert await journal.get("CA1") == CallProgress("12", "SD-7", recording=True)
    await journal.finish("CA1")
    await journal.chose("CA1", CallProgress(path="1"))  # a late step does not undo the finish
    assert await journal.get("CA1") == CallProgress("1", finished=True)


async def test_wait_finished_sees_a_finish_written_through_another_store(
    store: Store, db_url: str
) -> None:
    other = Store.from_url(db_url)  # another instance's store on the same database
    await other.start()
    try:
        await CallJournalStore(store).chose("CA2", CallProgress(path="1", recording=True))
        waiting = asyncio.create_task(CallJournalStore(store).wait_finished("CA2", 5.0))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await CallJournalStore(other).finish("CA2")
        assert await waiting
        assert not await CallJournalStore(store).wait_finished("CA3", 0.2)
    finally:
        await other.close()


async def test_calls_older_than_a_day_are_deleted_when_a_new_choice_is_written(
    store: Store,
) -> None:
    clock = Clock()
    journal = CallJournalStore(store, clock)
    await journal.chose("CA-old", CallProgress(path="1"))
    clock.advance(hours=23)
    await journal.chose("CA-recent", CallProgress(path="2"))
    clock.advance(hours=2)
    await journal.chose("CA-new", CallProgress(path="3"))
    assert await journal.get("CA-old") is None
    assert await journal.get("CA-recent") == CallProgress(path="2")
