"""Relay sessions kept open and reused (channels.outbound.smtp_sessions), against a real aiosmtpd
relay on 127.0.0.1 that counts connections, transactions and QUITs and can drop a session or
answer 421 to MAIL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.smtp import SMTP, Envelope, Session

from channels.outbound.email import EmailSender, OutboundSMTPSettings
from channels.outbound.smtp_sessions import SessionLimits
from gateway.dispatcher import Dispatcher
from gateway.metrics import Metrics
from gateway.migrate import upgrade
from router.clock import utcnow
from router.outbox import Outbox, enqueue
from router.store import Store
from tests.integration.test_outbound_email import ack_payload


@dataclass
class Relay:
    """Counts what clients do; can answer 421 to a session's second MAIL, or drop it there."""

    sessions: list[SMTP] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    quits: int = 0
    refuse_second_mail: bool = False
    drop_second_mail: bool = False  # close the connection instead of answering
    mails: dict[int, int] = field(default_factory=dict)  # MAILs per session
    port: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # set on each DATA and QUIT

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        count = self.mails[id(session)] = self.mails.get(id(session), 0) + 1
        if self.refuse_second_mail and count == 2:
            return "421 4.3.2 relay.test closing this session"
        if self.drop_second_mail and count == 2:
            assert server.transport is not None
            server.transport.close()
            return "250 OK"  # never reaches the client
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.original_content, bytes)
        for line in envelope.original_content.splitlines():
            if line.lower().startswith(b"message-id:"):
                self.message_ids.append(line.split(b":", 1)[1].strip().decode())
        self.changed.set()
        return "250 2.0.0 Ok: queued"

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.quits += 1
        self.changed.set()
        return "221 Bye"

    def drop_sessions(self) -> None:
        """The relay closes every session it holds (idle timeout, restart)."""
        for session in self.sessions:
            if session.transport is not None:
                session.transport.close()


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    relay = Relay()

    def protocol() -> SMTP:
        session = SMTP(relay, hostname="relay.test")
        relay.sessions.append(session)
        return session

    server = await asyncio.get_running_loop().create_server(protocol, "127.0.0.1", 0)
    relay.port = server.sockets[0].getsockname()[1]
    yield relay
    server.close()
    await server.wait_closed()


def sender_for(relay: Relay, **limits: Any) -> EmailSender:
    settings = OutboundSMTPSettings(port=relay.port, timeout_seconds=10, helo_hostname="spoc.test")
    return EmailSender(settings, limits=SessionLimits(**limits))


def ack(n: int) -> dict[str, Any]:
    return ack_payload(message_id=f"spoc.{n}@servicedesk.example.com", ticket_ref=f"SD-{n}")


async def until(relay: Relay, condition: Callable[[], bool], what: str) -> None:
    """Wait (up to 10 s, generous for a loaded machine) for ``condition()``."""
    try:
        async with asyncio.timeout(10):
            while not condition():
                relay.changed.clear()
                await relay.changed.wait()
    except TimeoutError:
        pytest.fail(what)


async def test_messages_through_one_sender_share_few_connections(relay: Relay) -> None:
    sender = sender_for(relay, max_sessions=4)
    await asyncio.gather(*(sender.send(ack(n)) for n in range(40)))
    await sender.close()
    assert sorted(relay.message_ids) == sorted(
        f"<spoc.{n}@servicedesk.example.com>" for n in range(40)
    )
    assert len(relay.sessions) <= 4  # one connection per message before sessions were kept
    assert relay.quits == len(relay.sessions)


async def test_a_session_the_relay_dropped_while_idle_still_delivers_once(relay: Relay) -> None:
    sender = sender_for(relay)
    await sender.send(ack(1))
    relay.drop_sessions()
    await asyncio.sleep(0)  # the EOF may or may not have reached the client yet: both must work
    await sender.send(ack(2))
    await sender.close()
    assert relay.message_ids == [
        "<spoc.1@servicedesk.example.com>",
        "<spoc.2@servicedesk.example.com>",
    ]
    assert len(relay.sessions) == 2


async def test_a_session_dropped_as_mail_is_sent_is_retried_on_a_new_connection(
    relay: Relay,
) -> None:
    relay.drop_second_mail = True
    sender = sender_for(relay)
    await sender.send(ack(1))
    await sender.send(ack(2))  # EOF instead of MAIL's answer on the kept session
    await sender.close()
    assert relay.message_ids == [
        "<spoc.1@servicedesk.example.com>",
        "<spoc.2@servicedesk.example.com>",
    ]
    assert len(relay.sessions) == 2


async def test_421_to_mail_on_a_reused_session_gets_one_fresh_retry(relay: Relay) -> None:
    relay.refuse_second_mail = True
    sender = sender_for(relay)
    await sender.send(ack(1))
    await sender.send(ack(2))  # 421 on the kept session, then delivered on a new one
    await sender.close()
    assert relay.message_ids == [
        "<spoc.1@servicedesk.example.com>",
        "<spoc.2@servicedesk.example.com>",
    ]
    assert len(relay.sessions) == 2


async def test_idle_sessions_are_closed_with_quit_after_the_idle_limit(relay: Relay) -> None:
    sender = sender_for(relay, idle_seconds=0.2)
    await sender.send(ack(1))
    assert relay.quits == 0  # kept open for the next message
    await until(relay, lambda: relay.quits == 1, "the idle session was not closed")
    await sender.send(ack(2))
    await sender.close()
    assert len(relay.sessions) == 2


async def test_a_session_is_not_reused_past_its_message_count(relay: Relay) -> None:
    sender = sender_for(relay, max_messages=3)
    for n in range(7):
        await sender.send(ack(n))
    await sender.close()
    assert len(relay.sessions) == 3  # 3 + 3 + 1
    assert len(relay.message_ids) == 7


async def test_the_dispatchers_shutdown_sends_quit_on_kept_sessions(
    relay: Relay, sqlite_url: str
) -> None:
    upgrade(sqlite_url)
    store = Store.from_url(sqlite_url)
    await store.start()
    sender = sender_for(relay)

    def add(conn: sa.Connection) -> None:
        payload = ack(1)
        enqueue(conn, "email.ack", payload, key="ack:1", now=utcnow(), recipient=payload["to"])

    try:
        store.run_sync(add)
        dispatcher = Dispatcher(
            Outbox(store), {"email": sender.send}, Metrics(), closers=(sender.close,)
        )
        dispatcher.start()
        await until(relay, lambda: len(relay.message_ids) == 1, "the ack was not delivered")
        assert relay.quits == 0
        await dispatcher.stop()
        assert relay.quits == 1
    finally:
        await store.close()
