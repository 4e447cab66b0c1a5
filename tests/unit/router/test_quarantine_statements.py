"""``router.quarantine.keep_in`` runs statements built once, as the rest of router/ does: a
statement built anew on every call pays its construction and its cache key each time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import ClauseElement

from router.quarantine import keep_in
from router.schema import metadata

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_every_item_kept_goes_through_the_same_statements(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'quarantine.db'}")
    metadata.create_all(engine)
    executed: list[ClauseElement] = []

    def note(conn: Any, clause: ClauseElement, *args: Any) -> None:
        executed.append(clause)

    sa.event.listen(engine, "before_execute", note)
    with engine.begin() as conn:
        receipts = [
            keep_in(conn, raw, kind="error", source="smtp", reason="failed: x", now=NOW)
            for raw in (b"first", b"second", b"first", b"first")
        ]
    engine.dispose()

    assert [r.duplicate for r in receipts] == [False, False, True, True]
    assert receipts[2].id == receipts[3].id == receipts[0].id
    inserts = [c for c in executed if isinstance(c, sa.Insert)]
    lookups = [c for c in executed if isinstance(c, sa.Select)]
    assert len(inserts) == 4 and len(lookups) == 2
    assert all(c is inserts[0] for c in inserts)
    assert all(c is lookups[0] for c in lookups)
