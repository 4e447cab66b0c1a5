"""One address rule: the pattern itself, and every place that checks an address agreeing on it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from channels.outbound import DeliveryError
from channels.outbound.email import build_message
from channels.slack.users import party_from_user
from gateway.config.sections import EmailSection
from normalizer.addresses import MAX_ADDRESS_CHARS, is_email_address, valid_address
from normalizer.api import contact_from_api
from normalizer.intake import ContactRejectedError

GOOD = [
    "alice@example.org",
    "a.b+tag@sub.example.co.uk",
    "x_y-z@example-domain.io",
    "ren\u00e9e@ex\u00e4mple.de",
]
BAD = [
    "",
    "alice",
    "a@b",  # no dotted domain
    "a@b@example.org",
    "@example.org",
    "a@",
    "a@.example.org",
    "a@example..org",
    "a b@example.org",
    "a@example.org,b@example.org",
    "a@example.org;b@example.org",
    "<a@example.org>",
    "Alice <a@example.org>",
    '"a"@example.org',
    "a@[127.0.0.1]",
    "a@example.org\r\nBcc: x@example.net",
    "a\x00@example.org",
    "x" * 65 + "@example.org",
    "a@" + "b" * 64 + ".org",
]


def test_good_addresses_match_and_bad_ones_do_not() -> None:
    assert all(is_email_address(a) for a in GOOD)
    assert not any(is_email_address(a) for a in BAD)


def test_an_address_over_320_characters_is_refused() -> None:
    long = ".".join(["b" * 60] * 6)
    assert not is_email_address(f"a@{long}.org")
    assert len(f"a@{long}.org") > MAX_ADDRESS_CHARS


def test_valid_address_trims_and_folds_before_checking() -> None:
    assert valid_address("  Alice@Example.ORG ") == "alice@example.org"
    assert valid_address("a@b") is None


def _headers(value: str) -> bool:
    return valid_address(value) is not None


def _api(value: str) -> bool:
    body = json.dumps({"from": {"email": value}, "text": "x"}).encode()
    try:
        contact_from_api(body, received_at=datetime.now(UTC))
    except ContactRejectedError:
        return False
    return True


def _slack(value: str) -> bool:
    return party_from_user("U1", {"profile": {"email": value}}).email is not None


def _outbound(value: str) -> bool:
    payload = {
        "to": value,
        "from_address": "servicedesk@example.com",
        "from_name": "IT Service Desk",
        "subject": "s",
        "text": "t",
        "message_id": "m@example.com",
    }
    try:
        build_message(payload)
    except DeliveryError:
        return False
    return True


def _config(value: str) -> bool:
    try:
        EmailSection(address=value)
    except ValidationError:
        return False
    return True


CHECKS: dict[str, Callable[[str], bool]] = {
    "mail headers": _headers,
    "REST API": _api,
    "Slack profile": _slack,
    "outbound mail": _outbound,
    "config.toml": _config,
}


@pytest.mark.parametrize("address", GOOD + BAD)
def test_every_place_that_checks_an_address_agrees_with_the_one_pattern(address: str) -> None:
    expected = is_email_address(address.casefold())
    verdicts = {name: check(address) for name, check in CHECKS.items()}
    assert verdicts == dict.fromkeys(CHECKS, expected)
