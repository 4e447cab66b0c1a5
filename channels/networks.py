"""Client addresses and the networks operators list in the config (``[smtp]
client_limit_exceptions``, ``[server] trusted_proxies``): parsed once, matched the same way.

An address matches a network whatever its spelling: an IPv4 client seen through a dual-stack
socket (``::ffff:192.0.2.1``) is its IPv4 address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def ip_networks(texts: Sequence[str]) -> tuple[IPNetwork, ...]:
    """Addresses and CIDR blocks as networks; a bad entry raises ValueError naming it."""
    networks = []
    for text in texts:
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise ValueError(f"{text!r} is no network (an address or a CIDR block)") from exc
    return tuple(networks)


def ip_address(text: str) -> IPAddress | None:
    """``text`` as an address (IPv4-mapped IPv6 as its IPv4 address), or None if it is none."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def in_networks(address: IPAddress | None, networks: Sequence[IPNetwork]) -> bool:
    """Whether ``address`` lies in one of ``networks`` (never for no address)."""
    return address is not None and any(address in network for network in networks)
