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
import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from yarl import URL

from channels.networks import ip_address
from channels.outbound import DeliveryError, permanent_http_status, retry_after_seconds
from normalizer.hooks import HookEvent, HookMalformed, HookRefused
from normalizer.outbox_events import CONTACT_ADDED, TICKET_CREATED, TICKET_ESCALATED

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ForwardJob:
    event: str  # ticket.created | ticket.updated | ticket.escalated | contact.added | ...
    ticket: Mapping[str, Any]  # the contract's ticket JSON
    contact: Mapping[str, Any] | None  # the ticket JSON's contact the event is about
    external_key: str | None  # what the tool called the ticket when we forwarded it first
    external_id: str | None
    idempotency_key: str
    original: bytes | None = None  # the contact's raw message (for targets that want it)


@dataclass(frozen=True, slots=True)
class ForwardResult:
    external_key: str | None = None
    external_id: str | None = None
    own_ids: tuple[str, ...] = ()  # hook keys of what we wrote (a comment id): never ours to relay


CREATING_EVENTS = (TICKET_CREATED, TICKET_ESCALATED)


def must_create(job: ForwardJob, what: str) -> bool:
    """True when this event makes the ticket in the tool (it has no key there yet and the
    event is the one that hands it over); False when the tool has it. An update that comes
    before the tool's key is known fails temporarily: it waits for the creation."""
    if job.external_key is not None:
        return False
    if job.event in CREATING_EVENTS:
        return True
    raise DeliveryError(
        f"{what}: waiting for {job.ticket.get('ref')} to be created there first",
        permanent=False,
    )


def adopted(what: str, ref: str, result: ForwardResult | None) -> ForwardResult | None:
    """``result`` (the record the tool holds for ``ref`` already), logged: a create that is
    about to run found that an earlier attempt -- one that died before its key was stored --
    made the record, and keeps that one instead of making a second."""
    if result is not None:
        log.warning(
            "%s already holds %s as %s (created by an attempt whose answer was lost); "
            "keeping it instead of creating another",
            what,
            ref,
            result.external_key,
        )
    return result


def tagged(ref: str, subject: str, limit: int) -> str:
    """The title a tool's record gets: ``[SD-42] subject``; the lookup by ref relies on it."""
    return f"[{ref}] {subject}"[:limit]


def update_text(job: ForwardJob) -> str:
    """What an update says in the tool: the contact's text, or a line about the change."""
    ref = job.ticket.get("ref")
    if job.event == CONTACT_ADDED and job.contact is not None:
        return str(job.contact.get("text") or "")[:32000]
    if job.event == TICKET_ESCALATED:
        return f"spoc: {ref} escalated to {job.ticket.get('group')}"
    return f"spoc: {ref} is {job.ticket.get('status')}"


def first_text(ticket: Mapping[str, Any]) -> str:
    """The requester's first message, and where the ticket came from."""
    contacts = ticket.get("contacts") or []
    first = next((c for c in contacts if c.get("direction") == "in"), None)
    text = str(first.get("text") or "") if first else ""
    return (
        f"{text}\n\n----\nspoc {ticket.get('ref')} · {ticket.get('channel')} · "
        f"{ticket.get('priority')} · {ticket.get('category') or 'uncategorised'}"
    )[:32000]


def object_at(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (tools' bodies vary)."""
    return value if isinstance(value, dict) else {}


class Forwarder(Protocol):
    async def forward(self, job: ForwardJob) -> ForwardResult: ...


class PrivateAddressRefused(OSError):
    """The target resolves only to addresses a forward may not reach."""


def is_refused_address(address: str) -> bool:
    """True for anything but a public unicast address (IPv4-mapped IPv6 judged as IPv4)."""
    ip = ip_address(address.split("%", 1)[0])  # without an IPv6 zone
    return ip is None or not ip.is_global or ip.is_multicast or ip.is_reserved


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


@dataclass(frozen=True, slots=True)
class ToolSettings:
    """A tool behind a ``[[forward]]`` target (Jira, Zendesk, ServiceNow): where, as whom,
    its secrets (from the environment) and the guard's switch."""

    name: str
    url: str
    username: str
    secret: str = field(repr=False)  # the API token or password
    webhook_secret: str | None = field(default=None, repr=False)  # verifies /hooks/<name>
    allow_private_network: bool = False
    timeout_seconds: float = 30.0
    service_desk_id: str = ""  # jira
    request_type_id: str = ""  # jira


class ToolClient:
    """JSON calls to one tool's REST API, with basic auth, the SSRF guard and the tool's own
    error wording in every :class:`DeliveryError`."""

    def __init__(
        self,
        label: str,
        settings: ToolSettings,
        error_text: Callable[[Answer], str],
        login: str | None = None,
    ) -> None:
        self.what = f"{label} {settings.name}"
        self._base = settings.url.rstrip("/")
        self._error_text = error_text
        self._http = GuardedHTTP(
            settings.allow_private_network,
            settings.timeout_seconds,
            basic_auth(login or settings.username, settings.secret),
        )

    async def send(self, method: str, path: str, body: Any = None) -> Answer:
        """One call; the answer whatever its status."""
        return await self._http.request(
            method,
            self._base + path,
            json_body=body,
            headers={"Accept": "application/json"},
            what=self.what,
        )

    def check(self, answer: Answer, method: str, path: str) -> Any:
        """The answer's JSON when it is a 2xx, else the :class:`DeliveryError` it means."""
        where = f"{self.what} ({method} {path.split('?')[0]})"
        check_answer(answer, where, self._error_text(answer))
        return answer.json()

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        return self.check(await self.send(method, path, body), method, path)


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
