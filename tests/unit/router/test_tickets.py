"""TicketService's agent actions: their write transactions write; the ticket JSON is read after."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy.engine import Connection

from tests.unit.router.conftest import Desk, attachment, email


@pytest.fixture
def json_builds(desk: Desk, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The thread each ticket JSON is built on (the writer's is ``spoc-db-writer…``)."""
    threads: list[str] = []
    build = desk.tickets.ticket_json

    def spy(conn: Connection, ticket_id: int) -> dict[str, Any] | None:
        threads.append(threading.current_thread().name)
        return build(conn, ticket_id)

    monkeypatch.setattr(desk.tickets, "ticket_json", spy)
    return threads


async def test_escalate_commits_then_reads_the_ticket_off_the_writer_thread(
    desk: Desk, json_builds: list[str]
) -> None:
    ticket = await desk.router.submit(email(attachments=(attachment(b"log"),)))
    shown = await desk.tickets.escalate(ticket.ticket_ref, "needs billing")
    assert shown["group"] == "customer-support"
    assert shown["events"][-1]["type"] == "escalated"
    assert shown["contacts"][0]["attachments"][0]["filename"] == "log.txt"
    assert json_builds and not any(t.startswith("spoc-db-writer") for t in json_builds)


async def test_set_status_commits_then_reads_the_ticket_off_the_writer_thread(
    desk: Desk, json_builds: list[str]
) -> None:
    ticket = await desk.router.submit(email())
    shown = await desk.tickets.set_status(ticket.ticket_ref, "resolved", "toner replaced")
    assert shown["status"] == "resolved"
    assert shown["events"][-1]["detail"]["note"] == "toner replaced"
    assert json_builds and not any(t.startswith("spoc-db-writer") for t in json_builds)
