"""sender_authenticated: only the trusted MX's topmost Authentication-Results count."""

from __future__ import annotations

import pytest

from normalizer.authresults import sender_authenticated
from normalizer.email import contact_from_email

MX = "mx.example.com"


def ar(value: str) -> tuple[str, str]:
    return ("Authentication-Results", value)


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        (f"{MX}; dmarc=pass header.from=example.org", True),
        (f"{MX}; spf=pass smtp.mailfrom=alice@example.org", True),
        (f"{MX}; dkim=pass header.d=example.org", True),
        (f"{MX}; dkim=pass header.d=mail.example.org", True),
        (f"{MX}; spf=pass smtp.mailfrom=bounce@mailer.example.net", False),  # not aligned
        (f"{MX}; dkim=pass header.d=org", False),
        (f"{MX}; dmarc=fail header.from=example.org; spf=pass smtp.mailfrom=example.org", False),
        (f"{MX}; spf=softfail smtp.mailfrom=alice@example.org", False),
        (f"{MX}; none", False),
    ],
)
def test_verdicts(results: str, expected: bool) -> None:
    assert sender_authenticated([ar(results)], [MX], "example.org") is expected


def test_results_of_another_authserv_id_are_ignored() -> None:
    forged = ar("mx.attacker.example; dmarc=pass header.from=example.org")
    assert sender_authenticated([forged], [MX], "example.org") is False


def test_a_pass_below_a_foreign_header_came_with_the_message_and_does_not_count() -> None:
    headers = [
        ar(f"{MX}; spf=fail smtp.mailfrom=example.org"),
        ar("other.example; none"),
        ar(f"{MX}; dmarc=pass header.from=example.org"),  # below: planted by the sender
    ]
    assert sender_authenticated(headers, [MX], "example.org") is False


def test_an_unparseable_header_stops_the_reading() -> None:
    headers = [ar(f"{MX}; ;;; =="), ar(f"{MX}; dmarc=pass header.from=example.org")]
    assert sender_authenticated(headers, [MX], "example.org") is False


def test_the_converter_judges_only_when_an_mx_is_trusted() -> None:
    raw = (
        f"Authentication-Results: {MX};\r\n dmarc=pass (p=reject) header.from=example.org\r\n"
        "From: Alice <alice@example.org>\r\nSubject: hi\r\n\r\nhello\r\n"
    ).encode()
    assert contact_from_email(raw).authenticated is None
    assert contact_from_email(raw, trusted_authserv_ids=[MX]).authenticated is True
    assert contact_from_email(raw, trusted_authserv_ids=["mx.other.example"]).authenticated is False
