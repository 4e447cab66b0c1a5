"""A ticket's timeline (gateway.dashboard.timeline) and how user text becomes HTML."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.dashboard.timeline import timeline
from gateway.dashboard.views import linkify
from router.stats import Delivery

AT = "2026-11-22T15:00:00Z"


def contact(id_: int, channel: str, at: str, sender: str, subject: str, text: str) -> dict:  # type: ignore[type-arg]
    return {"id": id_, "channel": channel, "direction": "in", "received_at": at,
            "from": sender, "subject": subject, "text": text, "attachments": []}  # fmt: skip


def event(at: str, type_: str, **detail: object) -> dict:  # type: ignore[type-arg]
    return {"at": at, "type": type_, "detail": detail}


def ticket() -> dict[str, object]:
    later = "2026-11-22T16:00:00Z"
    return {
        "contacts": [
            contact(1, "phone", AT, "+1415", "Call", "Recording: https://api.twilio.com/r/RE1"),
            contact(2, "email", later, "a@example.org", "Re: [SD-1]", "more"),
        ],
        "events": [
            event(AT, "created", thread_reason="call", group="sd"),
            event(AT, "contact.added", contact_id=1, thread_reason="new",
                  ack="suppressed:not-email"),
            event(later, "contact.added", contact_id=2, thread_reason="subject-tag"),
            event("2026-11-22T17:00:00Z", "escalated", from_group="sd", from_tier=1,
                  to_group="l2", to_tier=2, reason="apps"),
        ],
    }  # fmt: skip


def test_each_contact_says_why_it_joined_the_ticket_and_events_keep_their_order() -> None:
    dead = Delivery(9, "email.reply", "a@example.org", "dead", 8, "550 no such user",
                    datetime(2026, 11, 22, 18, tzinfo=UTC), None)  # fmt: skip

    entries = timeline(ticket(), [dead])

    assert [e.kind for e in entries] == ["event", "contact", "contact", "event", "delivery"]
    call, mail = entries[1], entries[2]
    assert call.why is not None and "no earlier conversation" in call.why
    assert ("acknowledgement", "suppressed:not-email") in call.facts
    assert mail.why is not None and "[ref] in its subject" in mail.why
    assert ("reason", "apps") in entries[3].facts
    assert entries[4].state == "dead" and ("last error", "550 no such user") in entries[4].facts


def test_linkify_escapes_everything_and_links_only_http_urls() -> None:
    html = str(
        linkify('<img src=x onerror=alert(1)> javascript:alert(1) https://x.example/a?b=1&c="2')
    )

    assert "<img" not in html and "&lt;img" in html
    assert 'href="javascript' not in html
    assert '<a href="https://x.example/a?b=1&amp;c=" rel="noopener noreferrer nofollow">' in html
