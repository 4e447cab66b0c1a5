"""The SSRF guard of forward connectors: which addresses a target may resolve to."""

from __future__ import annotations

import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from channels.outbound.forward import GuardedResolver, PrivateAddressRefused, is_refused_address


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1%eth0",
        "fd00:ec2::254",  # AWS metadata over IPv6
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "not-an-address",
    ],
)
def test_local_private_and_metadata_addresses_are_refused(address: str) -> None:
    assert is_refused_address(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert not is_refused_address(address)


class _Answers(AbstractResolver):
    def __init__(self, *hosts: str) -> None:
        self.hosts = hosts

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=h, port=port, family=family, proto=0, flags=0)
            for h in self.hosts
        ]

    async def close(self) -> None:
        return None


async def test_resolver_connects_only_to_the_public_addresses_of_a_mixed_answer() -> None:
    resolver = GuardedResolver(_Answers("10.0.0.5", "93.184.215.14"))

    found = await resolver.resolve("rebind.example", 443)

    assert [r["host"] for r in found] == ["93.184.215.14"]


async def test_resolver_refuses_a_name_that_resolves_only_to_private_addresses() -> None:
    resolver = GuardedResolver(_Answers("169.254.169.254"))

    with pytest.raises(PrivateAddressRefused, match=r"169\.254\.169\.254"):
        await resolver.resolve("metadata.example", 80)
