"""``client_address``: whose address a request counts as, behind trusted proxies."""

from __future__ import annotations

import pytest

from channels.networks import ip_networks
from gateway.client_address import client_address

TRUSTED = ip_networks(["127.0.0.1", "10.0.0.0/8", "fd00::/8"])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        # a peer that is no trusted proxy: the header is never read
        ("192.0.2.9", ["198.51.100.7"], "192.0.2.9"),
        # a trusted proxy without the header: the proxy itself
        ("127.0.0.1", [], "127.0.0.1"),
        ("127.0.0.1", ["198.51.100.7"], "198.51.100.7"),
        # the forged left part is skipped; trusted hops on the right are walked past
        ("127.0.0.1", ["203.0.113.1, 198.51.100.7"], "198.51.100.7"),
        ("127.0.0.1", ["203.0.113.1, 198.51.100.7, 10.1.2.3"], "198.51.100.7"),
        # several header lines are one list, in order
        ("127.0.0.1", ["203.0.113.1", "198.51.100.7"], "198.51.100.7"),
        # all hops trusted: the left-most one
        ("127.0.0.1", ["10.0.0.5, 10.0.0.6"], "10.0.0.5"),
        # something that is no address ends the walk at the last trusted hop
        ("127.0.0.1", ["198.51.100.7, unknown"], "127.0.0.1"),
        ("127.0.0.1", ["198.51.100.7, garbage, 10.1.2.3"], "10.1.2.3"),
        ("127.0.0.1", [""], "127.0.0.1"),
        # IPv6, and an IPv4 peer seen through a dual-stack socket
        ("fd00::1", ["2001:db8::7"], "2001:db8::7"),
        ("::ffff:127.0.0.1", ["198.51.100.7"], "198.51.100.7"),
        (None, ["198.51.100.7"], None),
    ],
)
def test_the_client_is_the_right_most_address_that_is_no_trusted_proxy(
    peer: str | None, forwarded_for: list[str], expected: str | None
) -> None:
    assert client_address(peer, forwarded_for, TRUSTED) == expected


def test_with_no_trusted_proxy_the_header_is_never_believed() -> None:
    assert client_address("127.0.0.1", ["198.51.100.7"], ()) == "127.0.0.1"
