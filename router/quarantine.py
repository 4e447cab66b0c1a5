"""The quarantine: what could not become a contact, kept raw with its reason.

Two kinds, listed apart:

``system``
    automatic mail that matches no ticket -- a bounce, a feedback report, a read receipt, an
    auto-reply, a loop. The router keeps it here instead of opening a ticket in the desk's
    queue (:mod:`router.system_mail`); the reason names its class (``bounce: matches no
    ticket``).
``error``
    what a channel could not parse or route (:class:`normalizer.intake.Quarantine`): a mail
    without a usable sender, or one whose routing failed unexpectedly.

The same bytes from the same source are kept once (unique ``(source, sha256)``).
:meth:`QuarantineStore.replay` feeds a kept mail through the email converter and the router
again: idempotent, since the router dedupes on the Message-ID (a replayed item reports the ticket
it became, again), and a system mail that still matches no ticket stays where it is.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

from normalizer.contact import Contact
from normalizer.email import contact_from_email
from normalizer.intake import IntakeError, IntakeResult, QuarantineReceipt, TemporaryIntakeError
from router import blob_write
from router.blob_read import read_blob
from router.clock import Clock, utcnow
from router.schema import insert_ignore_for, quarantine
from router.settings import RouterSettings
from router.store import Store

log = logging.getLogger(__name__)

SYSTEM, ERROR = "system", "error"
KINDS = (SYSTEM, ERROR)
REPLAYABLE_TYPES = ("message/rfc822",)
MAX_REASON_CHARS = 500

_SUMMARY = (
    quarantine.c.id,
    quarantine.c.kind,
    quarantine.c.reason,
    quarantine.c.source,
    quarantine.c.raw_type,
    quarantine.c.size,
    quarantine.c.sha256,
    quarantine.c.from_addr,
    quarantine.c.subject,
    quarantine.c.received_at,
    quarantine.c.replayed_at,
    quarantine.c.replayed_as,
    quarantine.c.last_replay_error,
)


class QuarantineItemNotFound(LookupError):
    """No quarantined item has this id."""


class Submitter(Protocol):
    async def submit(self, contact: Contact) -> IntakeResult: ...


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """What one replay did: ``stored`` on ``ticket_ref``, ``kept`` (still no ticket), or
    ``failed`` with ``error``."""

    item_id: int
    outcome: str  # stored | duplicate | kept | failed
    ticket_ref: str | None = None
    error: str | None = None


# Built once: every item kept goes through these (as the rest of router/ builds its statements).
_KEPT_ID: Final = sa.select(quarantine.c.id).where(
    quarantine.c.source == sa.bindparam("source"), quarantine.c.sha256 == sa.bindparam("sha256")
)


@functools.cache
def _keep_statement(dialect: str, *, streamed: bool) -> Insert:
    """The insert of one item, ignored when the same bytes from the same source are kept
    already; ``streamed``: the raw bytes are written in after it (``router.blob_write``)."""
    insert = insert_ignore_for(dialect, quarantine, "source", "sha256").returning(quarantine.c.id)
    return insert.values(raw=blob_write.zeroblob("raw_size")) if streamed else insert


def keep_in(
    conn: Connection,
    raw: bytes,
    *,
    kind: str,
    source: str,
    reason: str,
    now: datetime,
    raw_type: str = "message/rfc822",
    envelope_sender: str | None = None,
    from_addr: str | None = None,
    subject: str | None = None,
) -> QuarantineReceipt:
    """Keep ``raw`` inside the caller's transaction; the same bytes from ``source`` once."""
    if kind not in KINDS:
        raise ValueError(f"quarantine kind must be one of {KINDS}, got {kind!r}")
    digest = hashlib.sha256(raw).hexdigest()
    streamed = blob_write.streams(conn, raw)  # a big message is written in after the insert
    inserted = conn.execute(
        _keep_statement(conn.dialect.name, streamed=streamed),
        {
            "kind": kind,
            "reason": reason[:MAX_REASON_CHARS],
            "source": source[:100],
            "raw_type": raw_type[:100],
            "sha256": digest,
            "size": len(raw),
            **({"raw_size": len(raw)} if streamed else {"raw": raw}),
            "envelope_sender": envelope_sender[:320] if envelope_sender is not None else None,
            "from_addr": from_addr[:320] if from_addr else None,
            "subject": subject[:998] if subject else None,
            "received_at": now,
        },
    ).scalar()
    if inserted is not None:
        if streamed:
            blob_write.fill(conn, quarantine, "raw", int(inserted), raw)
        return QuarantineReceipt(id=int(inserted), duplicate=False)
    existing = conn.execute(_KEPT_ID, {"source": source[:100], "sha256": digest}).scalar_one()
    return QuarantineReceipt(id=int(existing), duplicate=True)


class QuarantineStore:
    """Implements :class:`normalizer.intake.Quarantine`; lists, shows and replays items."""

    def __init__(self, store: Store, clock: Clock | None = None) -> None:
        self._store = store
        self._now = clock or utcnow

    async def keep(
        self, raw: bytes, *, source: str, reason: str, raw_type: str = "message/rfc822"
    ) -> QuarantineReceipt:
        now = self._now()
        return await self._store.write(
            lambda conn: keep_in(
                conn, raw, kind=ERROR, source=source, reason=reason, now=now, raw_type=raw_type
            )
        )

    async def items(
        self, *, kind: str | None = None, limit: int = 50, before: int | None = None
    ) -> list[dict[str, Any]]:
        """Newest first; ``before`` an id to page from."""

        def read(conn: Connection) -> list[dict[str, Any]]:
            query = sa.select(*_SUMMARY).order_by(quarantine.c.id.desc()).limit(limit)
            if kind is not None:
                query = query.where(quarantine.c.kind == kind)
            if before is not None:
                query = query.where(quarantine.c.id < before)
            return [_summary(row._mapping) for row in conn.execute(query)]

        return await self._store.read(read)

    async def get(self, item_id: int) -> dict[str, Any]:
        """One item's summary and its raw bytes (``raw``)."""

        def read(conn: Connection) -> dict[str, Any]:
            row = conn.execute(
                sa.select(*_SUMMARY, quarantine.c.envelope_sender).where(quarantine.c.id == item_id)
            ).first()
            if row is None:
                raise QuarantineItemNotFound(item_id)
            item = _summary(row._mapping)
            raw = sa.select(quarantine.c.raw).where(quarantine.c.id == item_id)
            item["raw"] = read_blob(conn, raw) or b""
            item["envelope_sender"] = row.envelope_sender
            return item

        return await self._store.read(read)

    async def sizes(self) -> dict[str, int]:
        """How many items of each kind wait, not yet replayed (the ``/metrics`` gauge)."""

        def read(conn: Connection) -> dict[str, int]:
            rows = conn.execute(
                sa.select(quarantine.c.kind, sa.func.count())
                .where(quarantine.c.replayed_at.is_(None))
                .group_by(quarantine.c.kind)
            ).all()
            return {kind: 0 for kind in KINDS} | {str(k): int(n) for k, n in rows}

        return await self._store.read(read)

    async def ids(self, *, kind: str | None = None, pending_only: bool = True) -> list[int]:
        """Ids oldest first (``replay --all``): by default those not yet replayed."""

        def read(conn: Connection) -> list[int]:
            query = sa.select(quarantine.c.id).order_by(quarantine.c.id)
            if kind is not None:
                query = query.where(quarantine.c.kind == kind)
            if pending_only:
                query = query.where(quarantine.c.replayed_at.is_(None))
            return [int(i) for i in conn.execute(query).scalars()]

        return await self._store.read(read)

    async def replay(
        self, item_id: int, intake: Submitter, settings: RouterSettings
    ) -> ReplayOutcome:
        """Feed one kept mail through the converter and ``intake`` again."""
        item = await self.get(item_id)
        if item["raw_type"] not in REPLAYABLE_TYPES:
            return await self._failed(item_id, f"cannot replay {item['raw_type']} (mail only)")
        contact = contact_from_email(
            item["raw"],
            recipients=(settings.desk_address,),
            envelope_sender=item["envelope_sender"],
            our_addresses=settings.our_addresses,
            loop_marker=settings.desk_address,
            trusted_authserv_ids=settings.trusted_authserv_ids,
        )
        try:
            result = await intake.submit(contact)
        except TemporaryIntakeError:
            raise  # nothing changed; try again later
        except IntakeError as exc:
            return await self._failed(item_id, str(exc) or type(exc).__name__)
        except Exception as exc:  # the item stays kept, with what went wrong
            log.exception("quarantine %d: replay failed", item_id)
            return await self._failed(item_id, f"{type(exc).__name__}: {exc}")
        if result.quarantine_id == item_id:
            return ReplayOutcome(item_id, "kept", error=result.thread_reason)
        # Stored on a ticket, or kept as a system mail under the router's own row.
        became = result.ticket_ref or f"quarantine:{result.quarantine_id}"
        now = self._now()
        await self._store.write(
            lambda conn: conn.execute(
                sa.update(quarantine)
                .where(quarantine.c.id == item_id)
                .values(replayed_at=now, replayed_as=became, last_replay_error=None)
            )
        )
        if result.quarantine_id is not None:
            return ReplayOutcome(item_id, "kept", ticket_ref=became, error=result.thread_reason)
        outcome = "duplicate" if result.duplicate else "stored"
        return ReplayOutcome(item_id, outcome, ticket_ref=result.ticket_ref)

    async def _failed(self, item_id: int, error: str) -> ReplayOutcome:
        await self._store.write(
            lambda conn: conn.execute(
                sa.update(quarantine)
                .where(quarantine.c.id == item_id)
                .values(last_replay_error=error[:2000])
            )
        )
        return ReplayOutcome(item_id, "failed", error=error)


def _summary(row: Any) -> dict[str, Any]:
    return {
        "id": int(row["id"]),
        "kind": row["kind"],
        "reason": row["reason"],
        "source": row["source"],
        "raw_type": row["raw_type"],
        "size": int(row["size"]),
        "sha256": row["sha256"],
        "from": row["from_addr"],
        "subject": row["subject"],
        "received_at": row["received_at"],
        "replayed_at": row["replayed_at"],
        "replayed_as": row["replayed_as"],
        "last_replay_error": row["last_replay_error"],
    }
