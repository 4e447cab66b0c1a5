"""``channels.outbound.email.build_message``: the MIME message built from an outbox payload."""

from __future__ import annotations

import email.policy
import re
from datetime import datetime, tzinfo
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any
from unittest import mock

import pytest
from aiosmtplib.email import flatten_message
from hypothesis import given, settings
from hypothesis import strategies as st

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


# ---- headers made once, plain addresses read without the parser -------------------------------
DISPLAY_NAMES = st.sampled_from(
    ["IT Service Desk", "Desk, IT", 'The "Desk"', "Servicedesk M\u00fcller", "", "a.b (c)"]
)
ADDRESSES = st.one_of(
    st.from_regex(outbound_email._DOT_ATOMS, fullmatch=True),
    st.sampled_from(
        ["o'brien+desk@example.org", '"odd local"@example.org', "d\u00e9sk@example.org"]
    ),
)


def sent_bytes(message: EmailMessage) -> bytes:
    """What aiosmtplib hands the relay for ``message`` (a relay with 8BITMIME, and without)."""
    return flatten_message(message, cte_type="8bit") + flatten_message(message, cte_type="7bit")


@settings(max_examples=150, deadline=None)
@given(
    from_name=DISPLAY_NAMES,
    from_address=ADDRESSES,
    to=ADDRESSES,
    loop_marker=st.sampled_from([None, "loop@example.com", "Desk <loop@example.com>"]),
    auto_submitted=st.sampled_from([None, "auto-replied", "auto-generated; type=x"]),
)
def test_headers_made_once_and_plain_addresses_send_what_the_parser_made(
    from_name: str, from_address: str, to: str, loop_marker: str | None, auto_submitted: str | None
) -> None:
    fields = payload(from_name=from_name, from_address=from_address, to=to)
    fields["auto_submitted"] = auto_submitted
    with mock.patch.object(outbound_email, "datetime", _FixedClock):
        try:
            made = [sent_bytes(build_message(fields, loop_marker=loop_marker)) for _ in range(2)]
        except DeliveryError:
            made = []
        with (
            mock.patch.object(outbound_email, "_same_header", lambda name, value: value),
            mock.patch.object(
                outbound_email,
                "_from_header",
                lambda name, address: Address(display_name=name, addr_spec=address),
            ),
            mock.patch.object(outbound_email, "_DOT_ATOMS", re.compile(r"(?!)")),
        ):
            try:
                parsed = sent_bytes(build_message(fields, loop_marker=loop_marker))
            except DeliveryError:
                assert made == []
                return
    assert made == [parsed, parsed]


@given(st.from_regex(outbound_email._DOT_ATOMS, fullmatch=True))
def test_a_plain_address_is_what_the_parser_reads_it_as(address: str) -> None:
    assert Address(addr_spec=address).addr_spec == address
