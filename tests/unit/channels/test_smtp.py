"""The SMTP channel's pure helpers: address folding, hop counting, reply text, settings."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from channels.smtp import (
    SMTPChannelSettings,
    _reply_text,
    count_received_headers,
    fold_address,
)


def test_fold_address_lowercases_ascii_only() -> None:
    assert fold_address("ServiceDesk@Example.COM") == "servicedesk@example.com"
    assert fold_address("\u017fervicedesk@example.com") == "\u017fervicedesk@example.com"
    assert fold_address("servicedes\u212a@example.com") == "servicedes\u212a@example.com"
    assert fold_address("J\u00d6RG@example.de") == "j\u00d6rg@example.de"


def test_received_headers_are_counted_in_the_header_block_only() -> None:
    raw = (
        b"Received: from a\r\nreceived : from b\r\nRECEIVED:\tfrom c\r\n  continued\r\n"
        b"Subject: x\r\n\r\nReceived: in the body\r\n"
    )
    assert count_received_headers(raw) == 3


def test_received_headers_count_with_bare_lf_and_no_body() -> None:
    assert count_received_headers(b"Received: a\nReceived: b\nX-Received: c\n") == 2


_OLD_RECEIVED = re.compile(rb"^received[ \t]*:", re.IGNORECASE | re.MULTILINE)
_OLD_HEADER_END = re.compile(rb"\r?\n\r?\n")


def _count_received_with_regexes(raw: bytes) -> int:
    """The count as it was first written: two regular expressions (the reference)."""
    end = _OLD_HEADER_END.search(raw)
    return len(_OLD_RECEIVED.findall(raw if end is None else raw[: end.start()]))


_HEADER_PIECES = [
    b"Received:", b"received", b"RECEIVED", b"ReCeIvEd", b"X-Received:", b" ", b"\t", b":",
    b"\r\n", b"\n", b"\r", b"from a", b"\r\n\r\n", b"\n\n", b"\n\r\n", b"\r\r\n",
    b"\xc3\xa9", b"Subject: x",
]  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_HEADER_PIECES), max_size=30).map(b"".join))
@example(b"received \t:a\r\nReceived\t:b\r\nreceived x:c\n\nReceived: in the body\n")
def test_received_headers_are_counted_as_the_regular_expressions_count_them(raw: bytes) -> None:
    assert count_received_headers(raw) == _count_received_with_regexes(raw)


def test_reply_text_is_one_printable_ascii_line() -> None:
    assert _reply_text("bad\r\n250 ok\tnow\u00e9") == "bad 250 ok now"
    assert _reply_text("\r\n") == "Message refused"
    assert len(_reply_text("x" * 1000)) == 200


def test_settings_know_our_addresses_and_domains_case_folded() -> None:
    settings = SMTPChannelSettings(desk_address="SD@Example.com", aliases=("cs@Legacy.example",))
    assert settings.our_addresses == {"sd@example.com", "cs@legacy.example"}
    assert settings.our_domains == {"example.com", "legacy.example"}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_recipients", 0),
        ("max_connections", -1),
        ("max_connections_per_client", 0),
        ("max_errors", 0),
        ("client_limit_exceptions", ("not-a-network",)),
        ("idle_timeout_seconds", 0),
        ("data_timeout_seconds", 0),
        ("port", 70000),
    ],
)
def test_settings_refuse_nonsense_and_name_the_key(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=key):
        SMTPChannelSettings(desk_address="sd@example.com", **{key: value})  # type: ignore[arg-type]
