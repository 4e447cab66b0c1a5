"""A Slack contact that opens a ticket gets the ref back in its thread (``slack.ack``)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from normalizer.contact import AutoClass, Channel, Contact, Party, ThreadHints
from router.schema import outbox
from router.settings import AckSettings
from tests.unit.router.conftest import Desk, email, make_settings

SLACK_ON = frozenset({"email", "slack"})


def slack(
    text: str,
    external_id: str,
    thread: str | None = "C42:1700000000.000100",
    user: str = "U1",
    auto: AutoClass = AutoClass.HUMAN,
) -> Contact:
    return Contact(
        channel=Channel.SLACK,
        external_id=external_id,
        sender=Party(slack_user_id=user, name="Alice"),
        received_at=datetime(2026, 11, 22, tzinfo=UTC),
        subject=text,
        text=text,
        thread=ThreadHints(chat_thread=thread),
        auto=auto,
    )


def queued(desk: Desk) -> list[tuple[str, dict[str, object]]]:
    return desk.store.run_sync(
        lambda c: [
            (r.kind, r.payload)
            for r in c.execute(sa.select(outbox.c.kind, outbox.c.payload).order_by(outbox.c.id))
        ]
    )


def slack_desk(desk: Desk, **acks: int) -> Desk:
    desk.router.settings = make_settings(outbound_transports=SLACK_ON, acks=AckSettings(**acks))
    return desk


async def test_new_slack_ticket_queues_an_ack_in_its_thread_naming_the_ref(desk: Desk) -> None:
    result = await slack_desk(desk).router.submit(slack("laptop dead", "C42:1700000000.000100"))
    assert result.created and result.acknowledged
    kind, payload = queued(desk)[-1]
    assert kind == "slack.ack"
    assert payload["channel"] == "C42" and payload["thread_ts"] == "1700000000.000100"
    assert payload["event"] == "ack" and payload["ticket_ref"] == result.ticket_ref


async def test_reply_in_the_thread_is_not_acknowledged_again(desk: Desk) -> None:
    await slack_desk(desk).router.submit(slack("laptop dead", "C42:1700000000.000100"))
    again = await desk.router.submit(slack("any news?", "C42:1700000001.000100"))
    assert not again.created and not again.acknowledged
    assert [k for k, _ in queued(desk)] == ["slack.ack"]


async def test_no_slack_ack_when_the_slack_transport_does_not_run(desk: Desk) -> None:
    result = await desk.router.submit(slack("laptop dead", "C42:1700000000.000100"))
    assert result.created and not result.acknowledged
    assert queued(desk) == []


async def test_automatic_slack_contact_is_not_acknowledged(desk: Desk) -> None:
    result = await slack_desk(desk).router.submit(
        slack("deploy finished", "C42:1", auto=AutoClass.AUTO_REPLY)
    )
    assert not result.acknowledged and queued(desk) == []


async def test_modal_ticket_is_acknowledged_in_the_users_dm(desk: Desk) -> None:
    result = await slack_desk(desk).router.submit(slack("vpn down", "view:V1", thread="U1:view-V1"))
    kind, payload = queued(desk)[-1]
    assert result.acknowledged and kind == "slack.ack"
    assert payload["channel"] == "U1" and payload["thread_ts"] == "view-V1"


async def test_slack_acks_per_user_are_rate_limited(desk: Desk) -> None:
    slack_desk(desk, per_sender_per_hour=2)
    results = [
        await desk.router.submit(
            slack(f"problem {n}", f"D1:17000000{n}.0", thread=f"D1:17000000{n}.0")
        )
        for n in range(3)
    ]
    assert [r.acknowledged for r in results] == [True, True, False]


async def test_email_acks_still_work_beside_slack(desk: Desk) -> None:
    result = await slack_desk(desk).router.submit(email())
    assert result.acknowledged and queued(desk)[-1][0] == "email.ack"


async def test_slack_acks_are_not_held_back_by_the_global_email_limit(desk: Desk) -> None:
    slack_desk(desk, global_per_minute=1)
    results = [
        await desk.router.submit(slack("help", f"D{n}:1.0", thread=f"D{n}:1.0", user=f"U{n}"))
        for n in range(3)
    ]
    assert all(r.acknowledged for r in results)
