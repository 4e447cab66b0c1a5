"""``channels.outbound.email.build_message``: the MIME message built from an outbox payload."""

from __future__ import annotations

import email.policy
from datetime import datetime, tzinfo
from typing import Any

import pytest

from channels.outbound import DeliveryError
from channels.outbound import email as outbound_email
from channels.outbound.email import OutboundSMTPSettings, build_message


def payload(**overrides: Any) -> dict[str, Any]:
    return {
        "to": "alice@example.org",
        "from_address": "servicedesk@example.com",
        "from_name": "IT Service Desk",
        "event": "reply",
        "ticket_subject": "Printer on fire",
        "text": "We have your request.",
        "message_id": "spoc.42.3.ab12@servicedesk.example.com",
        "in_reply_to": None,
        "references": [],
        "auto_submitted": None,
        "ticket_ref": "SD-42",
    } | overrides


def test_message_ids_get_exactly_one_pair_of_angle_brackets() -> None:
    msg = build_message(payload(message_id="<m@x>", in_reply_to="<p@x>", references=["<a@x>"]))
    assert msg["Message-ID"] == "<m@x>"
    assert msg["In-Reply-To"] == "<p@x>"
    assert msg["References"] == "<a@x> <p@x>"


def test_first_message_has_no_threading_headers() -> None:
    msg = build_message(payload())
    assert msg["In-Reply-To"] is None
    assert msg["References"] is None
    assert msg["Auto-Submitted"] is None
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["X-Loop"] == "servicedesk@example.com"


def test_non_ascii_display_name_is_encoded_not_sent_raw() -> None:
    msg = build_message(payload(from_name="Servicedesk M\u00fcller"))
    assert msg["From"].addresses[0].display_name == "Servicedesk M\u00fcller"
    assert msg.as_bytes().isascii()


def test_loop_marker_overrides_the_from_address() -> None:
    assert build_message(payload(), loop_marker="loop@example.com")["X-Loop"] == "loop@example.com"


@pytest.mark.parametrize(
    "overrides",
    [
        {"to": "a@b@c"},
        {"to": ""},
        {"from_address": 7},
        {"message_id": "has space@x"},
        {"references": "a@x"},
    ],
)
def test_malformed_payloads_are_permanent_errors(overrides: dict[str, Any]) -> None:
    with pytest.raises(DeliveryError) as caught:
        build_message(payload(**overrides))
    assert caught.value.permanent


def test_settings_refuse_implicit_tls_and_starttls_together() -> None:
    with pytest.raises(ValueError, match="starttls"):
        OutboundSMTPSettings(tls=True, starttls=True)


def test_settings_keep_the_password_out_of_repr() -> None:
    assert "hunter2" not in repr(OutboundSMTPSettings(username="u", password="hunter2"))


class _FixedClock(datetime):
    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _FixedClock:
        return cls(2026, 12, 6, 12, 0, tzinfo=tz)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"from_name": "Servicedesk M\u00fcller", "text": "Gr\u00fc\u00dfe " * 40},
        {"in_reply_to": "p@x", "references": ["a@x", "b@x"], "auto_submitted": "auto-replied"},
        {"ticket_subject": "A very long subject " * 8, "to": "o'brien+desk@example.org"},
    ],
)
def test_headers_made_from_cached_classes_send_the_same_bytes(
    monkeypatch: pytest.MonkeyPatch, overrides: dict[str, Any]
) -> None:
    """The policy's factory keeps one header class per field name: the message must be byte
    for byte what the email package's own factory gives."""
    monkeypatch.setattr(outbound_email, "datetime", _FixedClock)
    cached = build_message(payload(**overrides)).as_bytes()
    monkeypatch.setattr(outbound_email, "_POLICY", email.policy.SMTP)
    assert cached == build_message(payload(**overrides)).as_bytes()


def test_each_header_class_is_made_once() -> None:
    first = build_message(payload())
    second = build_message(payload())
    assert type(first["Subject"]) is type(second["Subject"])
    assert type(first["From"]) is not type(first["Subject"])
