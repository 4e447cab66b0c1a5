"""A router desk with the real classifier: the shipped config's settings and categories, the
real WordLlama model (loaded once per test session), a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from gateway.config import load_config
from normalizer.contact import Channel, Contact, Hints, Party, ThreadHints
from router.classifier import category_model
from router.meaning import MeaningReader
from router.router import Router
from router.schema import events, identities, metadata, requesters
from router.settings import RouterSettings
from router.store import Store
from router.tickets import TicketService

if TYPE_CHECKING:  # conftest imports this module's fixtures
    from tests.unit.router.conftest import Clock, Desk

SHIPPED_CONFIG = Path(__file__).parents[3] / "config.toml"


def shipped_settings(**changes: Any) -> RouterSettings:
    """The router settings of the shipped ``config.toml`` (nine categories, four groups)."""
    return replace(load_config(SHIPPED_CONFIG, {}).router_settings(), **changes)


async def open_desk(tmp_path: Path, settings: RouterSettings, reader: Any) -> Desk:
    from tests.unit.router.conftest import Clock, Desk

    store = Store.from_url(f"sqlite:///{tmp_path}/spoc.db")
    store.run_sync(lambda conn: metadata.create_all(conn))
    await store.start()
    clock = Clock()
    router = Router(store, settings, clock, meaning=reader)
    return Desk(store, router, TicketService(store, settings, clock), clock)


@pytest.fixture
async def reader() -> AsyncIterator[MeaningReader]:
    """The real model for the shipped categories (fitted once per session, then cached)."""
    categories = shipped_settings().categories
    meaning = MeaningReader(lambda: category_model(categories), timeout_seconds=30.0)
    await meaning.start()
    assert meaning.model is not None
    yield meaning


@pytest.fixture
async def smart_desk(tmp_path: Path, reader: MeaningReader) -> AsyncIterator[Desk]:
    desk = await open_desk(tmp_path, shipped_settings(), reader)
    yield desk
    await desk.store.close()


def at(clock: Clock) -> datetime:
    return clock.now.astimezone(UTC)


def mail(desk: Desk, subject: str, text: str, sender: str = "alice@example.org") -> Contact:
    mid = f"{abs(hash((subject, text, desk.clock.now)))}@mail.example.org"
    return Contact(
        channel=Channel.EMAIL,
        external_id=mid,
        sender=Party(email=sender, name="Alice"),
        received_at=at(desk.clock),
        subject=subject,
        text=text,
        recipients=("servicedesk@example.com",),
        visible_recipients=("servicedesk@example.com",),
        thread=ThreadHints(message_id=mid),
        envelope_sender=sender,
        raw=b"raw",
    )


def slack_dm(
    desk: Desk, text: str, user: str = "U1ALICE", email: str = "alice@example.org"
) -> Contact:
    ts = f"{desk.clock.now.timestamp():.6f}"
    return Contact(
        channel=Channel.SLACK,
        external_id=f"Ev{ts}",
        sender=Party(email=email, slack_user_id=user, name="Alice"),
        received_at=at(desk.clock),
        text=text,
        thread=ThreadHints(chat_thread=f"D1:{ts}"),
    )


def call(
    desk: Desk,
    transcript: str | None,
    phone: str = "+14155550100",
    category: str | None = None,
    sid: str | None = None,
) -> Contact:
    """One step of a call: the recording (``transcript`` None) or its transcription."""
    sid = sid or f"CA{abs(hash((transcript, desk.clock.now))):032x}"[:34]
    lines = ["Recording (20 s): https://api.twilio.com/rec/RE1"]
    if transcript is not None:
        lines.append(f"Transcript: {transcript}")
    step = "transcription:TR1" if transcript is not None else "recording:RE1"
    return Contact(
        channel=Channel.PHONE,
        external_id=f"{sid}:{step}",
        sender=Party(phone=phone),
        received_at=at(desk.clock),
        subject=f"Call from {phone}",
        text="\n".join(lines),
        thread=ThreadHints(call_id=sid),
        hints=Hints(category=category),
    )


async def known_person(desk: Desk, email: str, phone: str) -> None:
    """One requester with both an email and a phone (as a directory sync would leave it)."""

    def write(conn: sa.Connection) -> None:
        rid = conn.execute(
            sa.insert(requesters).returning(requesters.c.id),
            {"name": "Alice", "created_at": desk.clock.now},
        ).scalar_one()
        conn.execute(
            sa.insert(identities),
            [
                {"requester_id": rid, "kind": "email", "value": email},
                {"requester_id": rid, "kind": "phone", "value": phone},
            ],
        )

    await desk.store.write(write)


async def events_of(desk: Desk, ticket_id: int, type_: str) -> list[dict[str, Any]]:
    def read(conn: sa.Connection) -> list[dict[str, Any]]:
        rows = conn.execute(
            sa.select(events.c.detail).where(
                events.c.ticket_id == ticket_id, events.c.type == type_
            )
        )
        return [r.detail for r in rows]

    return await desk.store.read(read)
