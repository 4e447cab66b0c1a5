"""Reading the tools' webhooks: a bad signature is refused before anything is parsed, and a
signed body of the wrong shape is a named 400, never a crash."""

from __future__ import annotations

import json
import time

import pytest

from channels.outbound.forward import ToolSettings, read_standard_hook
from channels.outbound.jira import JiraForwarder, jira_signature
from channels.outbound.zendesk import ZendeskForwarder, zendesk_signature
from normalizer.hooks import HookMalformed, HookRefused
from tests.fakes.webhook_receiver import SECRET, hook_headers

TOOL = ToolSettings(
    name="t", url="https://tool.example", username="u", secret="s", webhook_secret="hook-secret"
)


def _jira_headers(raw: bytes, secret: str = "hook-secret") -> dict[str, str]:
    return {"X-Hub-Signature": jira_signature(secret, raw), "X-Atlassian-Webhook-Identifier": "1"}


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Hub-Signature": "sha256=00"}, {"X-Hub-Signature": "md5=abc"}],
    ids=["unsigned", "wrong", "other-scheme"],
)
async def test_jira_hook_without_the_right_signature_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(HookRefused):
        await JiraForwarder(TOOL).read_hook(headers, b'{"webhookEvent": "comment_created"}')


async def test_jira_hook_without_a_configured_secret_is_refused() -> None:
    raw = b"{}"
    open_tool = JiraForwarder(
        ToolSettings(name="t", url="https://tool.example", username="u", secret="s")
    )
    with pytest.raises(HookRefused):
        await open_tool.read_hook(_jira_headers(raw), raw)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"not json", "body"),
        (b"[1, 2]", "body"),
        (b'{"webhookEvent": "comment_created"}', "issue.key"),
        (
            b'{"webhookEvent": "comment_created", "issue": {"key": "H-1"}, "comment": 5}',
            "comment.id",
        ),
    ],
)
async def test_signed_jira_hook_of_the_wrong_shape_names_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(HookMalformed) as caught:
        await JiraForwarder(TOOL).read_hook(_jira_headers(raw), raw)
    assert caught.value.field == field


async def test_jira_update_without_a_resolution_is_ignored() -> None:
    raw = json.dumps(
        {
            "webhookEvent": "jira:issue_updated",
            "issue": {"key": "H-1"},
            "changelog": {"items": [{"field": "assignee", "toString": "Bo"}]},
        }
    ).encode()
    assert await JiraForwarder(TOOL).read_hook(_jira_headers(raw), raw) == []


async def test_zendesk_signature_covers_the_timestamp() -> None:
    raw = b'{"type": "zen:event-type:ticket.comment_added", "detail": {"id": "1"}}'
    signed = zendesk_signature("hook-secret", "2026-12-01T10:00:00Z", raw)
    replayed = {
        "X-Zendesk-Webhook-Signature": signed,
        "X-Zendesk-Webhook-Signature-Timestamp": "2026-12-01T10:09:00Z",
    }
    with pytest.raises(HookRefused):
        await ZendeskForwarder(TOOL).read_hook(replayed, raw)


@pytest.mark.parametrize(
    "body",
    [
        {"type": "comment.secret", "ref": "SD-1"},
        {"type": "comment.public"},
        {"type": "comment.public", "ref": 42},
    ],
)
def test_signed_standard_hook_of_the_wrong_shape_is_malformed(body: dict[str, object]) -> None:
    raw = json.dumps(body).encode()
    with pytest.raises(HookMalformed):
        read_standard_hook(SECRET, hook_headers(SECRET, raw), raw)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda h: {**h, "webhook-signature": "v1"},  # no comma
        lambda h: {**h, "webhook-signature": "v1,@@@"},  # not base64
        lambda h: {**h, "webhook-timestamp": str(int(time.time()) - 3600)},  # too old
        lambda h: {k: v for k, v in h.items() if k != "webhook-id"},
    ],
    ids=["no-comma", "not-base64", "too-old", "no-id"],
)
def test_standard_hook_with_a_broken_signature_is_refused_not_a_crash(mangle) -> None:  # type: ignore[no-untyped-def]
    raw = b'{"type": "comment.public", "ref": "SD-1"}'
    with pytest.raises(HookRefused):
        read_standard_hook(SECRET, mangle(hook_headers(SECRET, raw)), raw)


def test_standard_hook_body_that_is_not_utf8_is_refused() -> None:
    raw = b"\xff\xfe{}"
    with pytest.raises(HookRefused):
        read_standard_hook(SECRET, hook_headers(SECRET, b"{}"), raw)
