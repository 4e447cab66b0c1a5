"""Issue 8 part 7: what can't be parsed or routed is kept raw with its reason, listed and replayed.

A whole gateway over real sockets (SQLite and PostgreSQL): mail in over SMTP, the quarantine
read and replayed through ``/api/quarantine``; ``spoc quarantine`` against the same database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway import cli
from router.blob_write import STREAM_FROM_BYTES
from router.quarantine import QuarantineStore
from router.router import Router
from router.schema import metadata
from router.store import Store
from tests.integration.gateway_harness import DESK, GatewayHarness, RelaySink, running_gateway
from tests.integration.test_email_end_to_end import mail

NO_SENDER = f"To: {DESK}\r\nSubject: who am I\r\nMessage-ID: <anon-1@x.example>\r\n\r\nhi\r\n"


@pytest.fixture
async def desk(tmp_path: Path, db_url: str) -> AsyncIterator[GatewayHarness]:
    async with running_gateway(tmp_path, db_url) as harness:
        yield harness


def kept_id(sent: Any) -> int:
    """The id from ``250 2.0.0 Ok: kept for review as quarantine N``."""
    assert sent.data is not None and sent.data[0] == 250, sent
    text = sent.data[1].decode()
    assert "kept for review as quarantine" in text, text
    return int(text.rpartition(" ")[2])


async def test_mail_without_a_usable_sender_is_kept_with_its_reason_not_refused(
    desk: GatewayHarness,
) -> None:
    sent = await desk.send_mail(NO_SENDER.encode(), mail_from="")
    item_id = kept_id(sent)

    status, body = await desk.api("GET", "/api/quarantine", kind="error")
    assert status == 200
    [item] = body["items"]
    assert (item["id"], item["kind"], item["source"]) == (item_id, "error", "smtp")
    assert item["reason"] == "rejected: the contact has no sender address"
    assert "raw" not in item and body["next"] is None
    again = await desk.send_mail(NO_SENDER.encode(), mail_from="")
    assert kept_id(again) == item_id  # the same bytes are kept once
    metrics = await desk.metrics()
    error = frozenset({("kind", "error"), ("reason", "rejected")})
    assert metrics[("spoc_quarantined_total", error)] == 1


async def test_mail_the_router_fails_on_is_kept_and_replay_stores_it_once_fixed(
    desk: GatewayHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def bug(self: Router, *args: Any) -> Any:
        raise RuntimeError("a routing bug")

    with monkeypatch.context() as patch:
        patch.setattr(Router, "ingest", bug)
        item_id = kept_id(await desk.send_mail(mail()))
    status, body = await desk.api("GET", "/api/quarantine")
    assert body["items"][0]["reason"] == "failed: RuntimeError: a routing bug"
    _, listing = await desk.api("GET", "/api/tickets")
    assert listing["tickets"] == []

    status, replayed = await desk.api("POST", f"/api/quarantine/{item_id}/replay")
    assert status == 200
    assert (replayed["outcome"], replayed["ticket_ref"]) == ("stored", "SD-1")
    status, again = await desk.api("POST", f"/api/quarantine/{item_id}/replay")
    assert (again["outcome"], again["ticket_ref"]) == ("duplicate", "SD-1")
    ticket = await desk.ticket("SD-1")
    assert len(ticket["contacts"]) == 1
    _, body = await desk.api("GET", "/api/quarantine")
    assert body["items"][0]["replayed_as"] == "SD-1"
    assert len(await desk.settle()) == 1  # one ack, however often it was replayed


async def test_replaying_a_system_mail_that_still_matches_nothing_keeps_it(
    desk: GatewayHarness,
) -> None:
    bounce = mail(sender="MAILER-DAEMON@mx.example.net", subject="failure notice", msgid="b-1@x")
    item_id = kept_id(await desk.send_mail(bounce, mail_from=""))
    status, replayed = await desk.api("POST", f"/api/quarantine/{item_id}/replay")
    assert status == 200 and replayed["outcome"] == "kept" and replayed["ticket_ref"] is None
    _, listing = await desk.api("GET", "/api/tickets")
    assert listing["tickets"] == []


@pytest.mark.parametrize(
    ("path", "params", "status", "field"),
    [
        ("/api/quarantine", {"kind": "spam"}, 400, "kind"),
        ("/api/quarantine", {"limit": "0"}, 400, "limit"),
        ("/api/quarantine", {"before": "x"}, 400, "before"),
        ("/api/quarantine", {"colour": "red"}, 400, "colour"),
    ],
)
async def test_bad_quarantine_queries_get_400_naming_the_field(
    desk: GatewayHarness, path: str, params: dict[str, str], status: int, field: str
) -> None:
    got, body = await desk.api("GET", path, **params)
    assert (got, body.get("field")) == (status, field)


async def test_replay_of_an_unknown_item_is_404_and_the_api_needs_a_token(
    desk: GatewayHarness,
) -> None:
    for item in ("999", "x1"):
        status, body = await desk.api("POST", f"/api/quarantine/{item}/replay")
        assert (status, body["field"]) == (404, "id")
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(desk.base_url + "/api/quarantine") as response,
    ):
        assert response.status == 401


async def test_cli_lists_system_mail_apart_shows_and_replays_all(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = RelaySink()
    await sink.start()
    harness = GatewayHarness(tmp_path, sqlite_url, sink)
    await harness.start()
    try:
        bounce = mail(sender="MAILER-DAEMON@mx.example.net", subject="failure notice", msgid="b@x")
        system_id = kept_id(await harness.send_mail(bounce, mail_from=""))
        error_id = kept_id(await harness.send_mail(NO_SENDER.encode(), mail_from=""))
    finally:
        await harness.stop()
        await sink.stop()
    config = ["--config", str(harness.config_path), "quarantine"]

    def spoc(*args: str) -> tuple[int, str, str]:
        code = cli.main([*config, *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = await asyncio.to_thread(spoc, "list", "--system")
    assert code == 0 and f"#{system_id}  system" in out and f"#{error_id}" not in out
    code, out, _ = await asyncio.to_thread(spoc, "list", "--errors")
    assert f"#{error_id}  error" in out and f"#{system_id}" not in out
    code, out, _ = await asyncio.to_thread(spoc, "show", str(system_id))
    assert "bounce: matches no ticket" in out and "Subject: failure notice" in out
    code, out, _ = await asyncio.to_thread(spoc, "show", str(system_id), "--raw")
    assert code == 0 and out.startswith("From: MAILER-DAEMON@mx.example.net\r\n")
    code, out, err = await asyncio.to_thread(spoc, "replay", "--all")
    assert code == 1  # the mail without a sender still cannot be stored
    assert f"quarantine {system_id}: still kept (kept" in out
    assert f"quarantine {error_id}: not replayed: the contact has no sender address" in err
    code, _, err = await asyncio.to_thread(spoc, "show", "12345")
    assert code == 1 and "no such quarantine item" in err
    code, _, err = await asyncio.to_thread(spoc, "replay")
    assert code == 2


async def test_keep_stores_the_same_bytes_from_one_source_once(sqlite_url: str) -> None:
    store = Store.from_url(sqlite_url)
    store.run_sync(lambda conn: metadata.create_all(conn))
    await store.start()
    try:
        box = QuarantineStore(store)
        first = await box.keep(b"junk", source="imap:legacy", reason="unparseable")
        again = await box.keep(b"junk", source="imap:legacy", reason="unparseable")
        other = await box.keep(b"junk", source="smtp", reason="unparseable")
        assert (first.duplicate, again.duplicate, again.id) == (False, True, first.id)
        assert other.id != first.id
        [item] = await box.items(kind="error", limit=1)
        assert item["id"] == other.id
    finally:
        await store.close()


async def test_a_big_kept_message_is_stored_byte_for_byte(db_url: str) -> None:
    # Past blob_write.STREAM_FROM_BYTES, SQLite gets the bytes through a zeroblob after the insert.
    raw = bytes(range(256)) * (2 * STREAM_FROM_BYTES // 256) + b"tail"
    store = Store.from_url(db_url)
    store.run_sync(lambda conn: metadata.create_all(conn))
    await store.start()
    try:
        box = QuarantineStore(store)
        kept = await box.keep(raw, source="smtp", reason="unparseable")
        assert (await box.get(kept.id))["raw"] == raw
    finally:
        await store.close()


async def test_spoc_replay_of_a_saved_bounce_keeps_it_apart_instead_of_opening_a_ticket(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "bounce.eml"
    saved.write_bytes(
        b"Return-Path: <>\n" + mail(sender="MAILER-DAEMON@mx.example.net", msgid="b@x")
    )
    sink = RelaySink()
    await sink.start()
    harness = GatewayHarness(tmp_path, sqlite_url, sink)
    await sink.stop()
    argv = ["--config", str(harness.config_path), "replay", str(saved)]
    assert await asyncio.to_thread(cli.main, argv) == 0
    assert f"{saved}: quarantine 1 (quarantined:bounce)" in capsys.readouterr().out
    assert await asyncio.to_thread(cli.main, argv) == 0  # the same bytes: the same item
    assert f"{saved}: quarantine 1 (quarantined:bounce)" in capsys.readouterr().out
    code = await asyncio.to_thread(
        cli.main, ["--config", str(harness.config_path), "tickets", "list"]
    )
    assert code == 0 and "no tickets" in capsys.readouterr().out
