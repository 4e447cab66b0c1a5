"""Two real ``spoc serve`` processes on one PostgreSQL: the same contacts sent to both at once.

Each instance is ``python -m gateway serve`` with a config of its own (its own ports) on the
same database, behind one public address as a load balancer would put them: Twilio signs
``https://desk.example.test/…`` whichever instance the request reaches. Around them run the
company relay (acks), a webhook target (every new ticket is forwarded to it), the fake Slack Web
API and the fake Twilio API, all on 127.0.0.1 in the test's loop.

What must hold, over real sockets:
- the same mail (same Message-ID), the same mail without a Message-ID, the same API body with one
  ``external_id``, one Slack event and its retry, delivered to both instances at once, and a
  call's recording callback on one with its transcription callback on the other: one contact
  (one ticket) each, and no answer of 451/503 for a lost race;
- both dispatchers running: the relay gets every ack once and the webhook target every forward
  once (per idempotency key);
- a sender mailing both instances gets at most ``acks.per_sender_per_hour`` acks in all;
- kill -9 of one instance mid-load: every mail answered 250 is stored once, and the client's
  resends to the survivor make no duplicate.

CI runs small counts; ``SPOC_RELIABILITY_FULL=1`` runs the full ones.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import smtplib
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from slack_sdk.signature import SignatureVerifier

from gateway.migrate import upgrade
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.twilio_api import AUTH_TOKEN, FakeTwilioAPI, TwilioPhone, TwiML
from tests.fakes.webhook_receiver import SECRET as HOOK_SECRET
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.integration.gateway_harness import API_TOKEN, RelaySink, write_config
from tests.integration.slack_support import (
    ALICE,
    ALICE_EMAIL,
    BOT_TOKEN,
    SIGNING_SECRET,
    dm,
    event_callback,
)
from tests.integration.test_serve_process import (
    HOST,
    SOCKET_SECONDS,
    Ready,
    ServeProcess,
    build_message,
    inbound_contacts,
    send_mail,
)
from tests.integration.twilio_support import twilio_config
from tests.reliability.smtp_load import Acks, Mail, duplicate_keys, send_each
from tests.support.sql import query

pytestmark = [pytest.mark.reliability, pytest.mark.postgres]

FULL = os.environ.get("SPOC_RELIABILITY_FULL") == "1"
RACES = 50 if FULL else 8  # of each shape, all at once
LOAD_CLIENTS, LOAD_PER_CLIENT = (8, 100) if FULL else (4, 30)
PER_SENDER_PER_HOUR = 3
PUBLIC = "https://desk.example.test"
_DELIVERED = re.compile(r"outbox (\d+): \S+ delivered")
WAIT_SECONDS = 60.0 if FULL else 30.0
ENV = {
    "SPOC_API_TOKEN": API_TOKEN,
    "SPOC_SLACK_SIGNING_SECRET": SIGNING_SECRET,
    "SPOC_SLACK_BOT_TOKEN": BOT_TOKEN,
    "SPOC_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    "SPOC_FORWARD_L2_HOOK_SECRET": HOOK_SECRET,
}


@dataclass
class Instance:
    process: ServeProcess
    ready: Ready

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.ready.http_port}"


@dataclass
class Desk:
    """Two instances on one database and the outside world around them."""

    pg_url: str
    sink: RelaySink
    receiver: WebhookReceiver
    slack: FakeSlackAPI
    twilio: FakeTwilioAPI
    instances: list[Instance] = field(default_factory=list)

    @property
    def a(self) -> Instance:
        return self.instances[0]

    @property
    def b(self) -> Instance:
        return self.instances[1]

    def config(self, directory: Path) -> Path:
        extra = f"""
[acks]
per_sender_per_hour = {PER_SENDER_PER_HOUR}
global_per_minute = 100000

[slack]
enabled = true
mode = "http"
api_base_url = "{self.slack.base_url}"
{twilio_config(self.twilio, directory / "spool")}
[[forward]]
name = "l2-hook"
kind = "webhook"
url = "{self.receiver.url}"
allow_private_network = true
"""
        path = write_config(directory, db_url=self.pg_url, relay_port=self.sink.port, extra=extra)
        # Both instances behind one public address, as a load balancer puts them.
        text = path.read_text(encoding="utf-8")
        path.write_text(
            text.replace("[server]\n", f'[server]\npublic_base_url = "{PUBLIC}"\n', 1),
            encoding="utf-8",
        )
        return path

    async def start(self, directory: Path) -> Instance:
        """One more ``spoc serve`` on this database (in a thread: the fakes must answer it)."""
        for _attempt in range(3):
            config = self.config(directory)
            log_path = directory / f"serve-{time.monotonic_ns()}.log"
            process = ServeProcess(directory, config, log_path, ENV)
            ready = await asyncio.to_thread(process.wait_ready)
            if ready is not None:
                instance = Instance(process, ready)
                self.instances.append(instance)
                return instance
            process.kill()
            assert "address already in use" in process.log().lower(), process.log_tail()
        raise AssertionError("no free ports for a second instance")

    def count(self, sql: str) -> int:
        return int(query(self.pg_url, sql)[0][0])

    async def settle(self) -> None:
        """Wait until the outbox has nothing pending (both dispatchers done)."""
        deadline = time.monotonic() + WAIT_SECONDS
        while self.count("SELECT count(*) FROM outbox WHERE status = 'pending'"):
            assert time.monotonic() < deadline, "the outbox did not drain"
            await asyncio.sleep(0.05)


@pytest.fixture
async def desk(tmp_path: Path, pg_url: str) -> AsyncIterator[Desk]:
    await asyncio.to_thread(upgrade, pg_url)
    sink, receiver, slack, twilio = RelaySink(), WebhookReceiver(), FakeSlackAPI(), FakeTwilioAPI()
    for fake in (sink, receiver, slack, twilio):
        await fake.start()
    slack.add_user(ALICE, ALICE_EMAIL, "Alice Example")
    desk = Desk(pg_url, sink, receiver, slack, twilio)
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            await desk.start(tmp_path / name)
        yield desk
    finally:
        for instance in desk.instances:
            await asyncio.to_thread(instance.process.kill)
        for fake in (sink, receiver, slack, twilio):
            await fake.stop()


# --- speaking to an instance as the outside world does ------------------------------------------


def smtp_send(port: int, sender: str, raw: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP(HOST, port, timeout=SOCKET_SECONDS) as smtp:
        return send_mail(smtp, sender, raw)


async def to_both(a: Any, b: Any) -> list[Any]:
    """Two requests at once, one per instance."""
    return list(await asyncio.gather(a, b))


async def post_json(instance: Instance, path: str, body: object) -> int:
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(instance.base + path, json=body, headers=headers) as response,
    ):
        return response.status


async def slack_event(instance: Instance, body: bytes, retry: int) -> int:
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": SignatureVerifier(SIGNING_SECRET).generate_signature(
            timestamp=stamp, body=body
        ),
    }
    if retry:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(instance.base + "/slack/events", data=body, headers=headers) as response,
    ):
        return response.status


class BalancedPhone(TwilioPhone):
    """Twilio behind the load balancer: signs the public URL, reaches one instance."""

    async def post(
        self, url: str, params: dict[str, str], *, signature: str | None = None, sign: bool = True
    ) -> TwiML:
        path = url.removeprefix(PUBLIC)
        return await super().post(
            self.base_url + path, params, signature=self.sign(PUBLIC + path, params)
        )


# --- the tests ------------------------------------------------------------------------------------


async def race_round(desk: Desk, i: int, pool: ThreadPoolExecutor) -> list[int]:
    """Round ``i``: each shape of one contact reaching both instances at once; the answers."""
    a, b = desk.a, desk.b
    loop = asyncio.get_running_loop()

    async def mail_both(sender: str, raw: bytes) -> list[int]:
        replies = await to_both(
            loop.run_in_executor(pool, smtp_send, a.ready.smtp_port, sender, raw),
            loop.run_in_executor(pool, smtp_send, b.ready.smtp_port, sender, raw),
        )
        return [code for code, _ in replies]

    async def call() -> list[int]:
        """The recording callback on one instance, its transcription on the other. The caller
        called before, so the two share nothing but the call (a new caller's two identities
        would race on the identity first, which serializes them another way)."""
        call_sid = f"CA{i:032d}"
        phone_a, phone_b = BalancedPhone(a.base), BalancedPhone(b.base)
        try:
            earlier = phone_a.call(f"+1202555{i:04d}", f"CB{i:032d}")
            answer = await earlier.record(await earlier.press(await earlier.start(), "1"), "RB")
            assert answer.status == 200, answer.text
            on_a = phone_a.call(earlier.caller, call_sid)
            on_b = phone_b.call(on_a.caller, call_sid)
            record = await on_a.press(await on_a.start(), "1")
            assert "<Record" in record.text, record.text
            recording_sid = f"RE{i:032d}"
            twiml = await to_both(
                on_a.record(record, recording_sid),
                on_b.transcribed(record, f"TR{i:032d}", recording_sid, f"race call {i}"),
            )
            return [t.status for t in twiml]
        finally:
            await phone_a.close()
            await phone_b.close()

    # one mail through two MX hosts: the same Message-ID to both
    sender = f"race{i}@example.org"
    same_id = mail_both(sender, build_message(f"race mail {i}", sender, f"race{i}@m.example.org"))
    # the same mail without a Message-ID, delivered twice
    sender = f"nomid{i}@example.org"
    no_id = mail_both(sender, build_message(f"race no id {i}", sender, None))
    # one API body with one external_id to both
    body = {
        "from": {"email": f"api{i}@example.org", "name": "Api"},
        "subject": f"race api {i}",
        "external_id": f"race-api-{i}",
    }
    api = to_both(post_json(a, "/api/contacts", body), post_json(b, "/api/contacts", body))
    # a Slack event on one instance and Slack's retry of it on the other
    ts = f"{1_700_000_000 + i}.000100"
    event = json.dumps(event_callback(dm(f"race slack {i}", ts), f"EvRace{i}")).encode()
    slack = to_both(slack_event(a, event, 0), slack_event(b, event, 1))
    shapes = await asyncio.gather(same_id, no_id, api, slack, call())
    return [code for answers in shapes for code in answers]


async def test_the_same_contacts_sent_to_both_instances_at_once_are_one_contact_each(
    desk: Desk,
) -> None:
    with ThreadPoolExecutor(max_workers=4 * RACES) as pool:
        rounds = await asyncio.gather(*(race_round(desk, i, pool) for i in range(RACES)))
    answers = [code for round_answers in rounds for code in round_answers]

    # No 451/503 for a lost race: mail 250, the API 201 for the winner and 200 for the other.
    assert Counter(answers) == Counter({250: 4 * RACES, 201: RACES, 200: 5 * RACES})
    per_channel = dict(
        query(
            desk.pg_url,
            "SELECT channel, count(DISTINCT ticket_id) FROM contacts"
            " WHERE direction = 'in' GROUP BY channel",
        )
    )
    assert per_channel == {"email": 2 * RACES, "api": RACES, "slack": RACES, "phone": 2 * RACES}
    assert duplicate_keys(desk.pg_url) == []
    calls = query(
        desk.pg_url,
        "SELECT split_part(external_id, ':', 1), count(*), count(DISTINCT ticket_id)"
        " FROM contacts WHERE channel = 'phone' AND external_id LIKE 'CA%' GROUP BY 1",
    )
    assert len(calls) == RACES
    split = [row for row in calls if row[2] != 1]
    assert not split, f"calls whose recording and transcript opened two tickets: {split}"
    for instance in desk.instances:
        assert "database unavailable" not in instance.process.log()

    # Both dispatchers ran; every ack and every forward went out once.
    await desk.settle()
    tickets = desk.count("SELECT count(*) FROM tickets")
    assert tickets == 6 * RACES  # with each caller's earlier call
    forwards = [
        str(row[0])
        for row in query(
            desk.pg_url, "SELECT idempotency_key FROM outbox WHERE kind LIKE 'forward.%'"
        )
    ]
    assert len(forwards) >= tickets  # at least each ticket's "created"
    assert Counter(desk.receiver.ids) == Counter(forwards)  # each once, none twice
    acks = desk.count("SELECT count(*) FROM outbox WHERE kind = 'email.ack'")
    assert acks >= 3 * RACES  # both mails and the API contact of each round
    message_ids = Counter(str(m["Message-ID"]) for m in desk.sink.messages)
    assert len(message_ids) == acks and set(message_ids.values()) == {1}
    # Each row was delivered by one dispatcher or the other, never by both.
    delivered = [set(map(int, _DELIVERED.findall(i.process.log()))) for i in desk.instances]
    assert not delivered[0] & delivered[1]
    assert len(delivered[0] | delivered[1]) == desk.count("SELECT count(*) FROM outbox")


async def test_a_sender_mailing_both_instances_gets_at_most_the_hourly_acks_in_all(
    desk: Desk,
) -> None:
    sender = "eager@example.org"
    mails = [
        build_message(f"eager {i}", sender, f"eager{i}@mail.example.org")
        for i in range(4 * PER_SENDER_PER_HOUR)
    ]
    ports = [desk.a.ready.smtp_port, desk.b.ready.smtp_port]

    replies = await asyncio.gather(
        *(asyncio.to_thread(smtp_send, ports[i % 2], sender, raw) for i, raw in enumerate(mails))
    )

    assert [code for code, _ in replies] == [250] * len(mails)
    await desk.settle()
    queued = desk.count(
        f"SELECT count(*) FROM outbox WHERE kind = 'email.ack' AND recipient = '{sender}'"
    )
    assert queued == PER_SENDER_PER_HOUR
    to_sender = [e for e in desk.sink.envelopes if sender in e.rcpt_tos]
    assert len(to_sender) == PER_SENDER_PER_HOUR


async def test_one_of_two_instances_killed_mid_load_loses_nothing_and_duplicates_nothing(
    desk: Desk,
) -> None:
    mails = {
        n: [
            Mail(
                f"split load c{n} m{i}",
                f"split{n}@example.org",
                None if i % 10 == 0 else f"c{n}.m{i}.split@load.example.org",
                build_message(
                    f"split load c{n} m{i}",
                    f"split{n}@example.org",
                    None if i % 10 == 0 else f"c{n}.m{i}.split@load.example.org",
                ),
            )
            for i in range(LOAD_PER_CLIENT)
        ]
        for n in range(LOAD_CLIENTS)
    }
    everything = {mail.key: mail for batch in mails.values() for mail in batch}
    victim, survivor = desk.a, desk.b
    acks = Acks()
    threads = [
        threading.Thread(
            target=send_each,
            args=((victim if n % 2 == 0 else survivor).ready.smtp_port, batch, acks),
            daemon=True,
        )
        for n, batch in mails.items()
    ]
    for thread in threads:
        thread.start()
    kill_after = len(everything) // 4
    await asyncio.to_thread(_wait_for_acks, acks, kill_after)

    os.kill(victim.process.pid, signal.SIGKILL)
    await asyncio.to_thread(victim.process.kill)
    await asyncio.to_thread(_join, threads)

    acked = dict(acks.refs)
    assert len(acked) >= kill_after, (acks.refusals, acks.errors)
    assert not acks.refusals, acks.refusals
    assert len(acked) < len(everything), "the kill came after the load"
    # The clients resend what did not get a 250 to the survivor.
    unanswered = [mail for key, mail in everything.items() if key not in acked]
    resent = Acks()
    await asyncio.to_thread(send_each, survivor.ready.smtp_port, unanswered, resent)
    assert not resent.errors and not resent.refusals, (resent.errors, resent.refusals)
    assert set(resent.refs) == {mail.key for mail in unanswered}

    stored = Counter(subject for _, subject, _ in inbound_contacts(desk.pg_url))
    assert stored == Counter(set(everything))  # each once: nothing lost, nothing twice
    assert duplicate_keys(desk.pg_url) == []
    assert desk.count("SELECT count(DISTINCT external_id) FROM contacts") == len(everything)
    assert survivor.process.stop(signal.SIGTERM) == 0


def _wait_for_acks(acks: Acks, count: int) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while acks.count() < count and time.monotonic() < deadline:
        time.sleep(0.005)


def _join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(WAIT_SECONDS)
        assert not thread.is_alive(), "an SMTP client hung"
