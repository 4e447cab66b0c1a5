"""A small run of the email fuzzer in CI (the full 10,000 are ``bench/fuzz_smtp.py``): mutated
corpus mail over real SMTP never gets a 451 or a 500, never hangs, and every 250 has its raw
bytes stored: as a contact, or in the quarantine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench.fuzz_smtp import as_sent
from bench.mail_mutations import mutations, seed_messages
from router.schema import contacts, quarantine
from tests.integration.gateway_harness import GatewayHarness, running_gateway

COUNT = 150


@pytest.fixture
async def desk(tmp_path: Path, sqlite_url: str) -> AsyncIterator[GatewayHarness]:
    async with running_gateway(tmp_path, sqlite_url, extra_config="[acks]\nenabled = false\n") as h:
        yield h


def test_the_seeds_include_the_shared_corpus() -> None:
    assert len(seed_messages()) > 20


async def test_mutated_mail_is_answered_250_or_5xx_and_every_250_is_kept(
    desk: GatewayHarness,
) -> None:
    messages = [raw for _, raw in mutations(seed_messages(), COUNT, seed=7)]
    replies = []
    for raw in messages:
        sent = await asyncio.wait_for(desk.send_mail(raw, mail_from="fuzzer@example.org"), 30)
        code = sent.data[0] if sent.data is not None else sent.rcpts[0][0]
        replies.append(code)
    assert all(code == 250 or 500 < code < 600 for code in replies), replies
    status, _ = await desk.api("GET", "/healthz")
    assert status == 200
    assert desk.gw.store is not None
    stored = await desk.gw.store.read(
        lambda c: {
            bytes(r)
            for table in (contacts, quarantine)  # automatic mail matching no ticket: quarantined
            for (r,) in c.execute(sa.select(table.c.raw))
            if r
        }
    )
    own_ids = [
        as_sent(raw)
        for raw, code in zip(messages, replies, strict=True)
        if code == 250 and raw.startswith(b"Message-ID: <fuzz-")
    ]
    assert own_ids and all(raw in stored for raw in own_ids)
