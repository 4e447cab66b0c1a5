"""Free TCP ports on 127.0.0.1 for the servers a benchmark starts."""

from __future__ import annotations

import socket


def free_ports(count: int) -> list[int]:
    """Ports free now, all different (each socket is held until every port is picked)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    """One port free now."""
    (port,) = free_ports(1)
    return port
