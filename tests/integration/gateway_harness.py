"""A whole gateway in the test's event loop, over real sockets, for end-to-end tests.

What it gives you
    :func:`running_gateway` starts a :class:`~gateway.serve.Gateway` from a real ``config.toml``
    written into a temporary directory (SMTP, HTTP and the outbox dispatcher all live), plus a
    :class:`RelaySink`: an aiosmtpd server on 127.0.0.1 that plays the company's outbound relay
    and records every message the gateway sends (acks, replies). The yielded
    :class:`GatewayHarness` speaks to the gateway like the outside world does: stdlib
    ``smtplib`` for mail (:meth:`GatewayHarness.send_mail`), aiohttp for the API
    (:meth:`GatewayHarness.api`), Prometheus text for ``/metrics``.

Ports
    ``config.toml`` refuses port 0 (``Port`` is 1-65535), so :func:`free_port` asks the kernel
    for a free port and the config names it. Another process could take it between the probe
    and the bind; :meth:`GatewayHarness.start` then retries with fresh ports.

Databases
    Any URL the ``db_url`` fixture gives. SQLite is migrated by ``Gateway.start`` itself; for
    PostgreSQL the harness runs ``gateway.migrate.upgrade`` first, as ``spoc db upgrade`` would.

Stopping and starting again
    :meth:`GatewayHarness.stop` and :meth:`GatewayHarness.start` may be called repeatedly on
    the same config and database (the relay sink keeps running and keeps its records), which is
    what restart and crash tests need. :func:`write_config` alone is enough to run ``spoc serve``
    in a subprocess against the same sink.

Waiting without sleeping
    :meth:`GatewayHarness.settle` waits (bounded) until the outbox has nothing pending, i.e.
    every message the gateway queued so far has reached the sink. Anything queued before a
    ``250`` is in the outbox already (acks are written in the contact's transaction), so after
    ``settle()`` the sink's record is final for the mail sent until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import smtplib
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
from aiosmtpd.smtp import SMTP, Envelope, Session
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import load_config
from gateway.migrate import upgrade
from gateway.serve import Gateway
from router.outbox import Outbox
from router.store import is_sqlite

DESK = "servicedesk@example.com"
ALIASES = ("helpdesk@example.com", "cs@example.com")
API_TOKEN = "e2e-test-token-0123456789"
WAIT_SECONDS = 10.0
_START_ATTEMPTS = 3


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def write_config(
    directory: Path,
    *,
    db_url: str,
    relay_port: int,
    smtp_port: int | None = None,
    http_port: int | None = None,
    extra: str = "",
    email_keys: str = "",
    smtp_keys: str = "",
    server_keys: str = "",
) -> Path:
    """Write ``directory/config.toml``: the contract's desk, aliases and groups, fast outbox.

    ``extra`` is appended verbatim (more TOML sections, e.g. ``[acks]``; an ``[api]`` of its own
    replaces the default one); ``email_keys`` are more lines for ``[email]``, ``smtp_keys`` for
    ``[smtp]``, ``server_keys`` for ``[server]``. Returns the path.
    """
    api = "" if "[api]" in extra else "[api]\nenabled = true\n"
    text = f"""\
[server]
http_host = "127.0.0.1"
http_port = {http_port or free_port()}
{server_keys}

[database]
url = "{db_url}"

[tickets]
prefix = "SD"

[email]
address = "{DESK}"
aliases = [{", ".join(f'"{a}"' for a in ALIASES)}]
from_name = "IT Service Desk"
{email_keys}

[smtp]
host = "127.0.0.1"
port = {smtp_port or free_port()}
{smtp_keys}

[outbound_smtp]
host = "127.0.0.1"
port = {relay_port}
timeout_seconds = 10.0

[outbox]
poll_interval_seconds = 0.1

{api}
[[groups]]
name = "service-desk"
tier = 1
[[groups]]
name = "customer-support"
tier = 1.5
[[groups]]
name = "l2-apps"
tier = 2
[[groups]]
name = "vendor-acme"
tier = 3

{extra}
"""
    path = directory / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class RelaySink:
    """The company relay: an in-loop aiosmtpd server that accepts and records everything."""

    envelopes: list[Envelope] = field(default_factory=list)
    port: int = 0
    _server: asyncio.AbstractServer | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="relay.test", enable_SMTPUTF8=True), "127.0.0.1", 0
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        self._arrived.set()
        return "250 2.0.0 Ok: queued at the relay"

    @property
    def messages(self) -> list[EmailMessage]:
        """Every message received so far, parsed, in arrival order."""
        parsed = []
        for envelope in self.envelopes:
            assert isinstance(envelope.original_content, bytes)
            msg = message_from_bytes(envelope.original_content, policy=policy.default)
            assert isinstance(msg, EmailMessage)
            parsed.append(msg)
        return parsed

    async def wait_for(self, count: int, seconds: float = WAIT_SECONDS) -> list[EmailMessage]:
        """The messages, once at least ``count`` arrived; AssertionError after ``seconds``."""
        try:
            async with asyncio.timeout(seconds):
                while len(self.envelopes) < count:
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            raise AssertionError(
                f"the relay got {len(self.envelopes)} messages, expected {count}"
            ) from None
        return self.messages


@dataclass(frozen=True, slots=True)
class SMTPExchange:
    """The server's replies to one mail transaction (``data`` is None when DATA was not sent)."""

    mail: tuple[int, bytes]
    rcpts: tuple[tuple[int, bytes], ...]
    data: tuple[int, bytes] | None

    @property
    def accepted(self) -> bool:
        return self.data is not None and self.data[0] == 250

    @property
    def queued_as(self) -> str:
        """The ticket ref from ``250 2.0.0 Ok: queued as SD-n``."""
        assert self.data is not None and self.data[0] == 250, self
        return self.data[1].decode().rpartition(" ")[2]


def _smtp_exchange(port: int, mail_from: str, rcpts: Sequence[str], data: bytes) -> SMTPExchange:
    client = smtplib.SMTP("127.0.0.1", port, timeout=WAIT_SECONDS)
    try:
        client.ehlo("client.test")
        mail = client.docmd("MAIL", f"FROM:<{mail_from}>")
        replies = tuple(client.docmd("RCPT", f"TO:<{rcpt}>") for rcpt in rcpts)
        result = None
        if mail[0] == 250 and any(code == 250 for code, _ in replies):
            result = client.data(data)
        else:
            client.rset()
        return SMTPExchange(mail, replies, result)
    finally:
        try:
            client.quit()
        except smtplib.SMTPServerDisconnected:
            client.close()


class GatewayHarness:
    """One gateway over one config and database, and the relay sink it sends through.

    ``sink`` must be started already (the config names its port). Nothing runs until
    :meth:`start`; ``config_path`` is written at once, so CLI commands can use it before that.
    """

    def __init__(
        self,
        directory: Path,
        db_url: str,
        sink: RelaySink,
        extra_config: str = "",
        email_keys: str = "",
        smtp_keys: str = "",
        server_keys: str = "",
    ):
        assert sink.port, "start the relay sink first: the config names its port"
        self.directory = directory
        self.db_url = db_url
        self.sink = sink
        self.extra_config = extra_config
        self.email_keys = email_keys
        self.smtp_keys = smtp_keys
        self.server_keys = server_keys
        self.environ: dict[str, str] = {"SPOC_API_TOKEN": API_TOKEN}
        self.config_path = write_config(
            directory,
            db_url=db_url,
            relay_port=sink.port,
            extra=extra_config,
            email_keys=email_keys,
            smtp_keys=smtp_keys,
            server_keys=server_keys,
        )
        self.gateway: Gateway | None = None
        self._http: aiohttp.ClientSession | None = None

    @property
    def gw(self) -> Gateway:
        assert self.gateway is not None, "the gateway is not running"
        return self.gateway

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.gw.http_port}"

    async def start(self) -> Gateway:
        """Start a gateway on the current config; on a port clash, retry on fresh ports."""
        if not is_sqlite(self.db_url):
            await asyncio.to_thread(upgrade, self.db_url)
        for attempt in range(1, _START_ATTEMPTS + 1):
            gateway = Gateway(load_config(self.config_path, self.environ))
            try:
                await gateway.start()
            except OSError as exc:
                await gateway.stop(grace_seconds=0)
                if exc.errno != errno.EADDRINUSE or attempt == _START_ATTEMPTS:
                    raise
                self.config_path = write_config(
                    self.directory,
                    db_url=self.db_url,
                    relay_port=self.sink.port,
                    extra=self.extra_config,
                    email_keys=self.email_keys,
                    smtp_keys=self.smtp_keys,
                    server_keys=self.server_keys,
                )
                continue
            self.gateway = gateway
            break
        self._http = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=aiohttp.ClientTimeout(total=WAIT_SECONDS),
        )
        return self.gw

    async def stop(self) -> None:
        """Stop the gateway as SIGTERM would (finish in-flight contacts, then close)."""
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self.gateway is not None:
            await self.gateway.stop(grace_seconds=5)
            self.gateway = None

    # ---- mail ------------------------------------------------------------------------------
    async def send_mail(
        self,
        raw: bytes,
        *,
        mail_from: str = "alice@example.org",
        rcpts: Sequence[str] = (DESK,),
    ) -> SMTPExchange:
        """One SMTP transaction with stdlib ``smtplib`` (in a thread). ``mail_from=""`` is
        the null sender ``MAIL FROM:<>``."""
        return await asyncio.to_thread(_smtp_exchange, self.gw.smtp_port, mail_from, rcpts, raw)

    async def settle(self, seconds: float = WAIT_SECONDS) -> list[EmailMessage]:
        """Wait until nothing is pending in the outbox; returns everything the relay got."""
        assert self.gw.store is not None
        outbox = Outbox(self.gw.store)
        try:
            async with asyncio.timeout(seconds):
                while await outbox.depth():  # noqa: ASYNC110 - the database has no event to wait on
                    await asyncio.sleep(0.02)
        except TimeoutError:
            pending = await outbox.depth()
            raise AssertionError(f"the outbox still has {pending} rows pending") from None
        return self.sink.messages

    # ---- HTTP ------------------------------------------------------------------------------
    async def api(
        self, method: str, path: str, body: object | None = None, **params: str
    ) -> tuple[int, Any]:
        """Call ``path`` with the bearer token; returns (status, parsed JSON body)."""
        assert self._http is not None
        async with self._http.request(
            method, self.base_url + path, json=body, params=params or None
        ) as response:
            return response.status, await response.json()

    async def ticket(self, ref: str) -> dict[str, Any]:
        """``GET /api/tickets/{ref}``, which must answer 200."""
        status, body = await self.api("GET", f"/api/tickets/{ref}")
        assert status == 200, body
        assert isinstance(body, dict)
        return body

    async def metrics(self) -> Mapping[tuple[str, frozenset[tuple[str, str]]], float]:
        """``GET /metrics`` as {(sample name, labels): value}."""
        assert self._http is not None
        async with self._http.get(self.base_url + "/metrics") as response:
            assert response.status == 200
            text = await response.text()
        return {
            (sample.name, frozenset(sample.labels.items())): float(sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


@contextlib.asynccontextmanager
async def running_gateway(
    directory: Path,
    db_url: str,
    *,
    extra_config: str = "",
    email_keys: str = "",
    smtp_keys: str = "",
    server_keys: str = "",
    environ: Mapping[str, str] | None = None,
) -> AsyncIterator[GatewayHarness]:
    """A started gateway and its relay sink; both are stopped on the way out. ``environ``
    adds environment variables (secrets) to the gateway's."""
    sink = RelaySink()
    await sink.start()
    harness = GatewayHarness(
        directory, db_url, sink, extra_config, email_keys, smtp_keys, server_keys
    )
    harness.environ.update(environ or {})
    try:
        await harness.start()
        yield harness
    finally:
        await harness.stop()
        await sink.stop()
