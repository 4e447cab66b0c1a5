"""Which ``[[forward]]`` targets start: each needs its secrets from the environment; one that
lacks them, or has a secret that cannot be used, stays off with a log line naming the
variable, and the others start. Email targets send through the relay sender they are given
(the gateway's, which it closes), never one of their own that nobody would close."""

from __future__ import annotations

import logging
from email.message import EmailMessage
from pathlib import Path

import pytest

from channels.outbound.email import EmailSender, OutboundSMTPSettings
from channels.outbound.forward import ForwardJob
from channels.outbound.jira import JiraForwarder
from channels.outbound.servicenow import ServiceNowForwarder
from channels.outbound.webhook import WebhookForwarder
from channels.outbound.zendesk import ZendeskForwarder
from gateway.config import ConfigError, load_config
from gateway.forwarding import forwarders
from tests.fakes.webhook_receiver import SECRET

TARGETS = """
[[forward]]
name = "l2-hook"
kind = "webhook"
url = "https://hooks.example.com/spoc"

[[forward]]
name = "l2-jira"
kind = "jira"
url = "https://acme.atlassian.net"
username = "spoc@example.com"
service_desk_id = "10"
request_type_id = "25"

[[forward]]
name = "infra"
kind = "servicenow"
url = "https://acme.service-now.com"
username = "spoc.integration"

[[forward]]
name = "cs-zendesk"
kind = "zendesk"
url = "https://acme.zendesk.com"
username = "spoc@example.com"
"""

ALL_SECRETS = {
    "SPOC_FORWARD_L2_HOOK_SECRET": SECRET,
    "SPOC_FORWARD_L2_JIRA_TOKEN": "t",
    "SPOC_FORWARD_INFRA_PASSWORD": "p",
    "SPOC_FORWARD_CS_ZENDESK_TOKEN": "z",
}


EMAIL_TARGETS = """
[[forward]]
name = "vendor-acme"
kind = "email"
to = "support@acme.example"

[[forward]]
name = "vendor-globex"
kind = "email"
to = "help@globex.example"
"""


class RecordingRelay(EmailSender):
    """The gateway's relay sender, minus the relay: records each message it is handed."""

    def __init__(self) -> None:
        super().__init__(OutboundSMTPSettings())
        self.delivered: list[tuple[str, str]] = []  # (From address, To address)

    async def deliver(self, msg: EmailMessage, sender: str, recipient: str) -> str:
        self.delivered.append((sender, recipient))
        return "250 2.0.0 Ok"


def _config(tmp_path: Path, environ: dict[str, str], targets: str = TARGETS):  # type: ignore[no-untyped-def]
    path = tmp_path / "config.toml"
    path.write_text(targets, encoding="utf-8")
    return load_config(path, environ)


def test_every_target_with_its_secret_starts_with_its_kinds_connector(tmp_path: Path) -> None:
    started = forwarders(_config(tmp_path, ALL_SECRETS), RecordingRelay())

    assert {name: type(t) for name, t in started.items()} == {
        "l2-hook": WebhookForwarder,
        "l2-jira": JiraForwarder,
        "infra": ServiceNowForwarder,
        "cs-zendesk": ZendeskForwarder,
    }


async def test_every_email_target_sends_through_the_relay_it_is_given(tmp_path: Path) -> None:
    relay = RecordingRelay()
    started = forwarders(_config(tmp_path, {}, EMAIL_TARGETS), relay)
    ticket = {"ref": "SD-1", "subject": "Printer", "requester": {"email": "alice@example.org"}}
    job = ForwardJob("ticket.updated", ticket, None, None, None, idempotency_key="k")

    for target in started.values():
        await target.forward(job)

    desk = "servicedesk@example.com"
    assert relay.delivered == [(desk, "support@acme.example"), (desk, "help@globex.example")]


@pytest.mark.parametrize("missing", sorted(ALL_SECRETS))
def test_a_target_without_its_secret_stays_off_and_says_which_variable(
    tmp_path: Path, missing: str, caplog: pytest.LogCaptureFixture
) -> None:
    environ = {k: v for k, v in ALL_SECRETS.items() if k != missing}
    with caplog.at_level(logging.ERROR, "gateway.forwarding"):
        started = forwarders(_config(tmp_path, environ), RecordingRelay())

    assert len(started) == 3
    assert missing in caplog.text


def test_a_webhook_secret_that_is_not_base64_keeps_only_that_target_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    environ = {**ALL_SECRETS, "SPOC_FORWARD_L2_HOOK_SECRET": "whsec_not base64!"}
    with caplog.at_level(logging.ERROR, "gateway.forwarding"):
        started = forwarders(_config(tmp_path, environ), RecordingRelay())

    assert "l2-hook" not in started and len(started) == 3
    assert "l2-hook cannot start" in caplog.text


def test_jira_without_its_service_desk_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(TARGETS.replace('service_desk_id = "10"\n', ""), encoding="utf-8")

    with pytest.raises(ConfigError, match="service_desk_id"):
        load_config(path, ALL_SECRETS)
