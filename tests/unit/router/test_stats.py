"""The dashboard's read queries (router.stats) on a real SQLite file; the PostgreSQL run of the
same queries is in tests/integration/test_dashboard.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from normalizer.contact import Channel, Party
from router.stats import Stats
from tests.unit.router.conftest import Desk, email, other

NOW = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)


async def test_intake_is_counted_per_channel_in_the_hour_it_arrived(desk: Desk) -> None:
    for hours_ago, ext in ((0.5, "a"), (0.6, "b"), (5.5, "c"), (30, "d")):
        mail = email(message_id=f"{ext}@x", sender=f"{ext}@example.org")
        await desk.router.submit(replace(mail, received_at=NOW - timedelta(hours=hours_ago)))
    sms = other(Channel.SMS, Party(phone="+14155550100"), "SM1")
    await desk.router.submit(replace(sms, received_at=NOW - timedelta(hours=2.5)))

    day = await Stats(desk.store).intake(NOW, timedelta(hours=1), 24)

    assert day.starts[0] == NOW - timedelta(hours=24) and len(day.starts) == 24
    assert day.counts["email"][23] == 2  # the last hour
    assert day.counts["email"][18] == 1  # 5.5 hours ago
    assert day.counts["sms"][21] == 1
    assert day.total("email") == 3  # the one 30 hours ago is outside the window
    assert day.total() == 4


async def test_the_week_view_counts_what_the_day_view_leaves_out(desk: Desk) -> None:
    mail = email(message_id="old@x")
    await desk.router.submit(replace(mail, received_at=NOW - timedelta(days=3, hours=1)))

    week = await Stats(desk.store).intake(NOW, timedelta(days=1), 7)
    day = await Stats(desk.store).intake(NOW, timedelta(hours=1), 24)

    assert week.counts["email"] == (0, 0, 0, 1, 0, 0, 0)
    assert day.total() == 0


async def test_ack_shares_tell_acknowledged_from_suppressed_with_the_reason(desk: Desk) -> None:
    await desk.router.submit(email(message_id="h@x", sender="human@example.org"))
    # (an auto-reply matching no ticket opens none: it is quarantined, not suppressed)
    await desk.router.submit(email(message_id="v@x", sender="noreply@example.org"))
    await desk.router.submit(other(Channel.SMS, Party(phone="+14155550100"), "SM1"))

    shares = await Stats(desk.store).acks(NOW - timedelta(days=7))

    assert shares.tickets == {"email": 2, "sms": 1}
    assert shares.acknowledged == {"email": 1}
    assert shares.suppressed == {"email": 1, "sms": 1}
    assert shares.reasons == {"role-address": 1, "not-email": 1}


async def test_facets_count_tickets_by_status_channel_and_group(desk: Desk) -> None:
    await desk.router.submit(email(message_id="1@x", sender="a@example.org"))
    await desk.router.submit(email(message_id="2@x", sender="b@example.org"))
    await desk.tickets.escalate("SD-2", "needs apps")

    facets = await Stats(desk.store).facets()

    assert facets["status"] == {"new": 2}
    assert facets["channel"] == {"email": 2}
    assert facets["group"] == {"customer-support": 1, "service-desk": 1}


async def test_a_tickets_deliveries_are_its_outbox_rows_with_their_state(desk: Desk) -> None:
    await desk.router.submit(email(message_id="1@x"))
    await desk.tickets.reply("SD-1", "On our way.")

    deliveries = await Stats(desk.store).deliveries(1)

    assert [(d.kind, d.status, d.recipient) for d in deliveries] == [
        ("email.ack", "pending", "alice@example.org"),
        ("email.reply", "pending", "alice@example.org"),
    ]
    assert await Stats(desk.store).dead_letters() == []


async def test_a_tickets_raw_mails_are_read_for_display_but_not_other_channels(desk: Desk) -> None:
    await desk.router.submit(email(message_id="1@x"))  # raw_type message/rfc822
    await desk.router.submit(other(Channel.SMS, Party(phone="+14155550100"), "SM1"))

    assert await Stats(desk.store).messages(1) == {1: b"raw"}
    assert await Stats(desk.store).messages(2) == {}
