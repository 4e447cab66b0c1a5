"""What every forward connector shares: the job it is given, the result it returns, and an
HTTP client that will not be turned against our own network.

A connector (``channels/outbound/<kind>.py``) gets a :class:`ForwardJob` -- the event, the
ticket JSON as it is now, the contact the event is about, the key the tool gave the ticket
earlier -- and returns a :class:`ForwardResult` with the key to keep, or raises
:class:`~channels.outbound.DeliveryError`.

SSRF guard (:class:`GuardedHTTP`)
    Unless a target has ``allow_private_network = true``, every address a host name resolves
    to is checked *in the resolver aiohttp connects with* (so the address checked is the
    address connected to: no window for DNS rebinding), and literal IPs before the request:
    loopback, private, link-local (the cloud metadata address 169.254.169.254), shared,
    multicast, reserved and unspecified addresses are refused, permanently. Redirects are not
    followed: a 3xx is a permanent failure naming where it pointed.
"""

from __future__ import annotations

import binascii
import ipaddress
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from yarl import URL

from channels.outbound import DeliveryError, permanent_http_status, retry_after_seconds
from normalizer.hooks import HookEvent, HookMalformed, HookRefused


@dataclass(frozen=True, slots=True)
class ForwardJob:
    event: str  # ticket.created | ticket.updated | ticket.escalated | contact.added | ...
    ticket: Mapping[str, Any]  # the contract's ticket JSON
    contact: Mapping[str, Any] | None  # the ticket JSON's contact the event is about
    external_key: str | None  # what the tool called the ticket when we forwarded it first
    external_id: str | None
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class ForwardResult:
    external_key: str | None = None
    external_id: str | None = None
    own_ids: tuple[str, ...] = ()  # hook keys of what we wrote (a comment id): never ours to relay


class Forwarder(Protocol):
    async def forward(self, job: ForwardJob) -> ForwardResult: ...


class PrivateAddressRefused(OSError):
    """The target resolves only to addresses a forward may not reach."""


def is_refused_address(address: str) -> bool:
    """True for anything but a public unicast address (IPv4-mapped IPv6 judged as IPv4)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast or ip.is_reserved


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver and drops every refused address."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        allowed = [r for r in found if not is_refused_address(r["host"])]
        if not allowed:
            shown = ", ".join(sorted({r["host"] for r in found}))
            raise PrivateAddressRefused(
                f"{host} resolves to {shown}: private or local addresses are refused "
                "(set allow_private_network = true for this target to allow them)"
            )
        return allowed

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class GuardedHTTP:
    """One request at a time to a forward target, with the SSRF guard and no redirects."""

    allow_private_network: bool = False
    timeout_seconds: float = 30.0
    authorization: str | None = field(default=None, repr=False)  # the Authorization header

    async def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        what: str = "the target",
    ) -> Answer:
        host = URL(url).host or ""
        if not self.allow_private_network and _is_literal(host) and is_refused_address(host):
            raise DeliveryError(
                f"{what}: {host} is a private or local address and is refused "
                "(set allow_private_network = true for this target to allow it)",
                permanent=True,
            )
        resolver = None if self.allow_private_network else GuardedResolver()
        connector = aiohttp.TCPConnector(resolver=resolver)
        timeout = aiohttp.ClientTimeout(total=self.timeout_seconds)
        try:
            async with (
                aiohttp.ClientSession(connector=connector, timeout=timeout) as s,
                s.request(
                    method,
                    url,
                    json=json_body,
                    data=data,
                    headers=self._headers(headers),
                    allow_redirects=False,
                ) as response,
            ):
                body = await response.read()
                return Answer(response.status, dict(response.headers), body)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            refused = _refusal(exc)
            if refused is not None:
                raise DeliveryError(f"{what}: {refused}", permanent=True) from exc
            raise DeliveryError(
                f"{what} unreachable: {type(exc).__name__}: {exc}", permanent=False
            ) from exc

    def _headers(self, given: Mapping[str, str] | None) -> dict[str, str]:
        headers = dict(given or {})
        if self.authorization:
            headers["Authorization"] = self.authorization
        return headers


def basic_auth(username: str, password: str) -> str:
    """An ``Authorization`` header value for HTTP basic auth."""
    return aiohttp.encode_basic_auth(username, password)


def check_answer(answer: Answer, what: str, error: str = "") -> Answer:
    """``answer`` when it is a 2xx; else the :class:`DeliveryError` it means: 408/429/5xx
    temporary (with ``Retry-After``), other 4xx (401/403 included) and 3xx permanent."""
    status = answer.status
    if 200 <= status < 300:
        return answer
    if 300 <= status < 400:
        where = answer.headers.get("Location", "?")
        raise DeliveryError(
            f"{what} answered {status} (redirect to {where}); redirects are not followed",
            permanent=True,
        )
    detail = f": {error}" if error else ""
    raise DeliveryError(
        f"{what} answered {status}{detail}",
        permanent=permanent_http_status(status),
        retry_after=retry_after_seconds(answer.headers.get("Retry-After")),
    )


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _refusal(exc: BaseException) -> PrivateAddressRefused | None:
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return None
        if isinstance(seen, PrivateAddressRefused):
            return seen
        nested = getattr(seen, "os_error", None)
        if isinstance(nested, PrivateAddressRefused):
            return nested
        seen = seen.__cause__ or seen.__context__
    return None


class StandardHookBody(BaseModel):
    """The JSON a ``webhook`` or ``servicenow`` target sends back to ``POST /hooks/{name}``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: Literal["comment.public", "comment.internal", "ticket.resolved"]
    ref: Annotated[StrictStr, Field(min_length=1, max_length=40)]
    text: Annotated[StrictStr, Field(max_length=100_000)] = ""
    author: Annotated[StrictStr, Field(max_length=200)] = ""


def read_standard_hook(
    secret: str | None, headers: Mapping[str, str], raw: bytes
) -> list[HookEvent]:
    """Verify a Standard-Webhooks-signed hook (``webhook-id``, ``webhook-timestamp`` within
    five minutes, ``webhook-signature``) with the ``standardwebhooks`` package and read it."""
    if not secret:
        raise HookRefused("no webhook secret is set for this target")
    wanted = ("webhook-id", "webhook-timestamp", "webhook-signature")
    signed = {k: headers.get(k, "") for k in wanted}
    try:
        Webhook(secret).verify(raw, signed, json_parse=False)
    except (WebhookVerificationError, ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise HookRefused(f"the Standard Webhooks signature does not verify: {exc}") from exc
    try:
        body = StandardHookBody.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise HookMalformed(f"{where}: {first['msg']}", field=where) from exc
    return [
        HookEvent(
            delivery_key=f"webhook-id:{signed['webhook-id']}",
            type=body.type,
            text=body.text,
            author=body.author,
            ref=body.ref,
        )
    ]
