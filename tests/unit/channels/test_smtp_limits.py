"""Which replies count against ``max_errors``, and the per-client session count."""

from __future__ import annotations

import pytest

from channels.smtp_limits import ClientCounts, counts_as_client_error


@pytest.mark.parametrize(
    "reply",
    [
        "550 5.7.1 Relaying denied",
        "500 Error: bad syntax",
        "503 Error: need MAIL command",
        "452 4.5.3 Too many recipients",
        "552 Error: Too much mail data",
    ],
)
def test_client_mistakes_count_as_errors(reply: str) -> None:
    assert counts_as_client_error(reply)


@pytest.mark.parametrize(
    "reply",
    [
        "250 2.0.0 Ok: queued as SD-1",
        "354 End data with <CR><LF>.<CR><LF>",
        "451 4.3.0 Temporary failure, try again later",  # our storage is down
        "451 4.3.1 Try again later",  # we are busy
        "421 4.3.2 Service shutting down",
        "221 Bye",
    ],
)
def test_our_own_trouble_and_successes_do_not(reply: str) -> None:
    assert not counts_as_client_error(reply)


def test_a_client_address_is_admitted_up_to_the_limit_and_again_after_a_release() -> None:
    counts = ClientCounts(limit=2)
    assert counts.admit("192.0.2.1") and counts.admit("192.0.2.1")
    assert not counts.admit("192.0.2.1")
    assert counts.admit("192.0.2.2")
    counts.release("192.0.2.1")
    assert counts.admit("192.0.2.1")


def test_clients_in_the_exceptions_are_never_capped_nor_counted() -> None:
    counts = ClientCounts(limit=1, exceptions=("127.0.0.0/8", "::1/128"))
    assert all(counts.admit("127.0.0.1") for _ in range(5))
    assert all(counts.admit("::ffff:127.0.0.2") for _ in range(5))
    assert counts.admit("::1") and counts.admit("::1")
    counts.release("127.0.0.1")
    assert counts.admit("192.0.2.1") and not counts.admit("192.0.2.1")


def test_a_bad_exception_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33' is no network"):
        ClientCounts(limit=1, exceptions=("10.0.0.0/33",))
