"""Fetching a file a provider holds for us (a Twilio recording, a Slack upload): bounded.

:func:`fetch` GETs one URL with the provider's credentials, follows at most one redirect --
without the credentials, and only where ``allowed`` says -- and reads at most ``max_bytes``
within ``timeout_seconds``. Every way it can fail raises :class:`DownloadRefused` with a reason
fit to show on the ticket ("over 25 MB", "answered 403", …): the caller keeps the link instead.
:func:`url_allowed` is the host allow-list both channels use: the configured API's own origin
(tests point it at 127.0.0.1), or ``https`` on the provider's domain -- never an IP address,
which a forged URL could point inside our network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import aiohttp

_REDIRECTS = (301, 302, 303, 307, 308)


class DownloadRefused(Exception):
    """The file was not fetched; ``str(exc)`` says why."""


@dataclass(frozen=True, slots=True)
class Fetched:
    data: bytes = field(repr=False)
    content_type: str


def url_allowed(url: str, base_url: str, host_allowed: Callable[[str], bool]) -> bool:
    """Same scheme, host and port as ``base_url``, or ``https`` on a host ``host_allowed``
    accepts (a name, never an IP address)."""
    try:
        target, base = urlsplit(url), urlsplit(base_url)
        same_origin = (target.scheme, target.hostname, target.port) == (
            base.scheme,
            base.hostname,
            base.port,
        )
    except ValueError:  # a bad port number
        return False
    host = (target.hostname or "").rstrip(".")
    if same_origin and host:
        return True
    if target.scheme != "https" or not host:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host_allowed(host)
    return False


def megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:g} MB"


async def fetch(
    url: str,
    *,
    headers: Mapping[str, str],
    allowed: Callable[[str], bool],
    max_bytes: int,
    timeout_seconds: float,
    default_type: str = "application/octet-stream",
) -> Fetched:
    """The body of ``url`` (credentials in ``headers``); raises :class:`DownloadRefused`."""
    if not allowed(url):
        raise DownloadRefused(f"not fetched from {urlsplit(url).hostname or url}")
    timeout = aiohttp.ClientTimeout(total=timeout_seconds)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            fetched = await _get(session, url, dict(headers), allowed, max_bytes, default_type)
    except TimeoutError:
        raise DownloadRefused(f"not downloaded within {timeout_seconds:g} s") from None
    except aiohttp.ClientError as exc:
        raise DownloadRefused(f"download failed: {type(exc).__name__}") from exc
    return fetched


async def _get(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    allowed: Callable[[str], bool],
    max_bytes: int,
    default_type: str,
) -> Fetched:
    for hop in range(2):
        async with session.get(url, headers=headers, allow_redirects=False) as response:
            location = response.headers.get("Location", "")
            if response.status in _REDIRECTS and location and hop == 0:
                url, headers = urljoin(str(response.url), location), {}
                if not allowed(url):
                    raise DownloadRefused(f"redirected to {urlsplit(url).hostname or url}")
                continue
            if response.status != 200:
                raise DownloadRefused(f"answered {response.status}")
            if (response.content_length or 0) > max_bytes:
                raise DownloadRefused(f"over {megabytes(max_bytes)}")
            data = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                data += chunk
                if len(data) > max_bytes:
                    raise DownloadRefused(f"over {megabytes(max_bytes)}")
            return Fetched(bytes(data), response.content_type or default_type)
    raise DownloadRefused("redirected more than once")
