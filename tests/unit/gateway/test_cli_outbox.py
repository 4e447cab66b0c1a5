"""``spoc outbox list [--dead]`` and ``spoc outbox retry ID`` (gateway.cli_outbox)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.cli import main
from gateway.cli_outbox import render_outbox
from router.outbox_admin import OutboxItemNotFound, OutboxPage, OutboxQuery, OutboxRetryRefused
from tests.unit.gateway.test_cli import FakeStore, write

DEAD = {
    "id": 12,
    "kind": "email.reply",
    "status": "dead",
    "ticket_ref": "SD-42",
    "target": "alice@example.org",
    "attempts": 3,
    "created_at": "2026-11-22T15:00:00Z",
    "next_attempt_at": None,
    "leased_until": None,
    "done_at": "2026-11-22T15:04:00Z",
    "last_error": "recipient refused: 550 5.1.1 \x1b[31mno such user\nat all " + "x" * 80,
    "idempotency_key": "reply:spoc.42.3@example.com",
}


class FakeOutboxAdmin:
    queries: list[OutboxQuery] = []
    retried: list[int] = []

    def __init__(self, store: object) -> None:
        pass

    async def list(self, query: OutboxQuery) -> OutboxPage:
        self.queries.append(query)
        return OutboxPage([DEAD], "next-cursor")

    async def retry(self, item_id: int) -> dict[str, Any]:
        self.retried.append(item_id)
        if item_id == 7:
            raise OutboxRetryRefused("outbox 7 was delivered already")
        if item_id != 12:
            raise OutboxItemNotFound(item_id)
        return {**DEAD, "status": "pending", "attempts": 0}


@pytest.fixture
def fake_admin(monkeypatch: pytest.MonkeyPatch) -> type[FakeOutboxAdmin]:
    monkeypatch.setattr("router.store.Store", FakeStore)
    monkeypatch.setattr("router.outbox_admin.OutboxAdmin", FakeOutboxAdmin)
    monkeypatch.setattr(FakeOutboxAdmin, "queries", [])
    monkeypatch.setattr(FakeOutboxAdmin, "retried", [])
    return FakeOutboxAdmin


def test_outbox_list_asks_for_waiting_deliveries_by_default(
    tmp_path: Path, fake_admin: type[FakeOutboxAdmin], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["outbox", "list", "--limit", "5", "--config", str(write(tmp_path))]) == 0
    assert fake_admin.queries == [OutboxQuery(status="pending", limit=5)]
    header = capsys.readouterr().out.splitlines()[0]
    assert header.split()[:6] == ["ID", "KIND", "TICKET", "TARGET", "TRIES", "CREATED"]


def test_outbox_list_dead_asks_for_dead_letters_and_prints_json(
    tmp_path: Path, fake_admin: type[FakeOutboxAdmin], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["outbox", "list", "--dead", "--json", "--config", str(write(tmp_path))]) == 0
    assert fake_admin.queries == [OutboxQuery(status="dead", limit=50)]
    assert json.loads(capsys.readouterr().out) == {"items": [DEAD], "next": "next-cursor"}


def test_outbox_retry_names_what_was_queued(
    tmp_path: Path, fake_admin: type[FakeOutboxAdmin], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["outbox", "retry", "12", "--config", str(write(tmp_path))]) == 0
    assert fake_admin.retried == [12]
    assert capsys.readouterr().out == "outbox 12: email.reply to alice@example.org queued\n"


@pytest.mark.parametrize(
    ("item_id", "message"),
    [("99", "spoc: no such outbox item: 99\n"), ("7", "spoc: outbox 7 was delivered already\n")],
)
def test_outbox_retry_of_an_unknown_or_delivered_item_exits_1(
    tmp_path: Path,
    fake_admin: type[FakeOutboxAdmin],
    capsys: pytest.CaptureFixture[str],
    item_id: str,
    message: str,
) -> None:
    assert main(["outbox", "retry", item_id, "--config", str(write(tmp_path))]) == 1
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", message)


def test_outbox_retry_needs_a_number(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["outbox", "retry", "twelve"]) == 2
    assert "not a whole number" in capsys.readouterr().err


def test_dead_letter_table_shows_the_last_error_on_one_clean_short_line() -> None:
    header, line = render_outbox([DEAD], dead=True).splitlines()
    assert header.split() == [
        "ID", "KIND", "TICKET", "TARGET", "TRIES", "CREATED", "DEAD", "LAST", "ERROR",
    ]  # fmt: skip
    assert line.split()[:5] == ["12", "email.reply", "SD-42", "alice@example.org", "3"]
    error = line[header.index("LAST ERROR") :]
    assert error.startswith("recipient refused: 550 5.1.1 [31mno such user at all")
    assert "\x1b" not in line and len(error) == 60 and error.endswith("…")


def test_empty_listings_say_so() -> None:
    assert render_outbox([], dead=True) == "no dead letters\n"
    assert render_outbox([], dead=False) == "nothing waiting\n"


def test_outbox_commands_on_a_real_sqlite_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from router.outbox import enqueue
    from router.schema import outbox
    from router.store import Store

    url = f"sqlite:///{tmp_path}/spoc.db"
    path = write(tmp_path, f'[database]\nurl = "{url}"\n')
    assert main(["db", "upgrade", "--config", str(path)]) == 0
    store = Store.from_url(url)
    now = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)

    def dead_letter(conn: sa.Connection) -> None:
        payload = {"to": "bob@example.org", "text": "hi", "ticket_ref": "SD-1"}
        enqueue(conn, "email.reply", payload, key="reply:x", now=now, recipient="bob@example.org")
        conn.execute(sa.update(outbox).values(status="dead", attempts=3, last_error="550 gone"))

    store.run_sync(dead_letter)
    capsys.readouterr()

    assert main(["outbox", "list", "--config", str(path)]) == 0
    assert capsys.readouterr().out == "nothing waiting\n"
    assert main(["outbox", "list", "--dead", "--config", str(path)]) == 0
    assert "550 gone" in capsys.readouterr().out
    assert main(["outbox", "retry", "1", "--config", str(path)]) == 0
    assert capsys.readouterr().out == "outbox 1: email.reply to bob@example.org queued\n"
    assert main(["outbox", "list", "--json", "--config", str(path)]) == 0
    [item] = json.loads(capsys.readouterr().out)["items"]
    assert (item["id"], item["status"], item["attempts"]) == (1, "pending", 0)
    assert main(["outbox", "retry", "2", "--config", str(path)]) == 1
    assert capsys.readouterr().err == "spoc: no such outbox item: 2\n"
