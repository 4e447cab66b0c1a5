"""Router tests run against a real SQLite file (no sockets): a Store, a Router, a clock."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from normalizer.contact import Attachment, AutoClass, Channel, Contact, Hints, Party, ThreadHints
from router.router import Router
from router.schema import metadata
from router.settings import Group, RouterSettings
from router.store import Store
from router.tickets import TicketService

GROUPS = (
    Group("service-desk", 1.0),
    Group("customer-support", 1.5),
    Group("l2-apps", 2.0),
    Group("vendor-acme", 3.0),
)


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 22, 15, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


_seq = itertools.count(1)


def email(
    sender: str = "alice@example.org",
    subject: str = "Printer on fire",
    text: str = "It is really burning.",
    *,
    message_id: str | None = None,
    in_reply_to: tuple[str, ...] = (),
    references: tuple[str, ...] = (),
    subject_refs: tuple[str, ...] = (),
    to: tuple[str, ...] = ("servicedesk@example.com",),
    recipients: tuple[str, ...] = ("servicedesk@example.com",),
    auto: AutoClass = AutoClass.HUMAN,
    envelope_sender: str | None = None,
    name: str | None = "Alice",
    attachments: tuple[Attachment, ...] = (),
    **kw: Any,
) -> Contact:
    mid = message_id or f"m{next(_seq)}@mail.example.org"
    return Contact(
        channel=Channel.EMAIL,
        external_id=mid,
        sender=Party(email=sender, name=name),
        received_at=datetime(2026, 11, 22, 15, 0, tzinfo=UTC),
        subject=subject,
        text=text,
        recipients=recipients,
        visible_recipients=to,
        attachments=attachments,
        thread=ThreadHints(
            message_id=mid,
            in_reply_to=in_reply_to,
            references=references,
            subject_refs=subject_refs,
        ),
        auto=auto,
        envelope_sender=envelope_sender if envelope_sender is not None else sender,
        raw=kw.pop("raw", b"raw"),
        raw_type="message/rfc822",
        **kw,
    )


def other(
    channel: Channel, party: Party, external_id: str, text: str = "help", hints: Hints | None = None
) -> Contact:
    return Contact(
        channel=channel,
        external_id=external_id,
        sender=party,
        received_at=datetime(2026, 11, 22, 15, 0, tzinfo=UTC),
        subject="",
        text=text,
        hints=hints or Hints(),
    )


def attachment(data: bytes, name: str = "log.txt") -> Attachment:
    return Attachment(name, "text/plain", hashlib.sha256(data).hexdigest(), data)


@dataclass
class Desk:
    store: Store
    router: Router
    tickets: TicketService
    clock: Clock


def make_settings(**kw: Any) -> RouterSettings:
    base: dict[str, Any] = {
        "desk_address": "servicedesk@example.com",
        "desk_aliases": ("helpdesk@example.com", "cs@example.com"),
        "message_id_domain": "example.com",
        "groups": GROUPS,
    }
    base.update(kw)
    return RouterSettings(**base)


@pytest.fixture
def settings() -> RouterSettings:
    return make_settings()


@pytest.fixture
async def desk(tmp_path: Path, settings: RouterSettings) -> AsyncIterator[Desk]:
    store = Store.from_url(f"sqlite:///{tmp_path}/spoc.db")
    store.run_sync(lambda conn: metadata.create_all(conn))
    await store.start()
    clock = Clock()
    yield Desk(store, Router(store, settings, clock), TicketService(store, settings, clock), clock)
    await store.close()


# The real classifier's fixtures (``reader``, ``smart_desk``) for the triage-by-meaning tests.
from tests.unit.router.triage_support import reader, smart_desk  # noqa: E402, F401
