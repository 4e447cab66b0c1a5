"""Forward kind ``webhook``: each ticket event POSTed as JSON, signed per Standard Webhooks.

What it does
    ``POST {url}`` with ``{"type": <event>, "ticket": <ticket JSON>}`` and the Standard Webhooks
    headers ``webhook-id`` (the outbox row's idempotency key: the same on every retry of one
    event, so a receiver that saw it may drop it), ``webhook-timestamp`` and
    ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of id.timestamp.body>``, made by the
    ``standardwebhooks`` package), plus ``Idempotency-Key`` with the same id.

Config keys (``[[forward]]`` with ``kind = "webhook"``)
    ``name``, ``url``, ``when``, ``allow_private_network``; the signing secret (``whsec_…``,
    base64) from ``SPOC_FORWARD_<NAME>_SECRET``. Answers back (``POST /hooks/<name>``) are
    Standard-Webhooks-signed ``{"type", "ref", "text", "author"}`` verified with
    ``SPOC_FORWARD_<NAME>_WEBHOOK_SECRET``, else the signing secret.

Outcomes
    2xx delivered; 408, 429 (``Retry-After`` honoured), 5xx, timeouts retried; other 4xx
    (401/403 included) and redirects dead-lettered with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from channels.outbound.forward import (
    ForwardJob,
    ForwardResult,
    GuardedHTTP,
    check_answer,
    read_standard_hook,
)
from normalizer.hooks import HookEvent


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    name: str
    url: str
    secret: str = field(repr=False)
    hook_secret: str | None = field(default=None, repr=False)  # verifies POST /hooks/<name>
    allow_private_network: bool = False
    timeout_seconds: float = 30.0


class WebhookForwarder:
    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self._signer = Webhook(settings.secret)  # ValueError/binascii.Error: not whsec_<base64>
        self._http = GuardedHTTP(settings.allow_private_network, settings.timeout_seconds)

    async def forward(self, job: ForwardJob) -> ForwardResult:
        body = json.dumps({"type": job.event, "ticket": job.ticket}, separators=(",", ":"))
        now = datetime.now(UTC)
        msg_id = job.idempotency_key
        headers = {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._signer.sign(msg_id, now, body),
            "Idempotency-Key": msg_id,
        }
        what = f"webhook {self.settings.name}"
        answer = await self._http.request(
            "POST", self.settings.url, data=body.encode(), headers=headers, what=what
        )
        check_answer(answer, what)
        return ForwardResult(job.external_key, job.external_id)

    async def read_hook(self, headers: Mapping[str, str], raw: bytes) -> list[HookEvent]:
        """The tool's answer: Standard-Webhooks-signed JSON (``SPOC_FORWARD_<NAME>_WEBHOOK_SECRET``,
        else the signing secret)."""
        return read_standard_hook(self.settings.hook_secret, headers, raw)
