"""The demo's ``config.toml`` and its throwaway secrets: a desk on free loopback ports, SQLite in a
temporary directory, every channel on, Slack and Twilio pointed at the built-in fakes."""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from gateway.demo.drive import DESK, DESK_NUMBER


def free_port() -> int:
    """A TCP port nobody listens on right now: ``config.toml`` names ports, never port 0."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True, slots=True)
class DemoSecrets:
    api_token: str
    twilio_account_sid: str
    twilio_auth_token: str
    slack_signing_secret: str
    slack_bot_token: str

    @classmethod
    def fresh(cls) -> DemoSecrets:
        return cls(
            api_token="demo-" + secrets.token_urlsafe(24),
            twilio_account_sid="AC" + secrets.token_hex(16),
            twilio_auth_token=secrets.token_hex(16),
            slack_signing_secret=secrets.token_hex(16),
            slack_bot_token="xoxb-demo-" + secrets.token_hex(12),
        )

    def environ(self) -> dict[str, str]:
        """The environment the gateway reads its secrets from (nothing else of the caller's)."""
        return {
            "SPOC_API_TOKEN": self.api_token,
            "SPOC_TWILIO_AUTH_TOKEN": self.twilio_auth_token,
            "SPOC_SLACK_SIGNING_SECRET": self.slack_signing_secret,
            "SPOC_SLACK_BOT_TOKEN": self.slack_bot_token,
        }


def demo_config(
    directory: Path,
    *,
    http_port: int,
    smtp_port: int,
    relay_port: int,
    slack_api_url: str,
    twilio_api_url: str,
    twilio_account_sid: str,
) -> str:
    base_url = f"http://127.0.0.1:{http_port}"
    return f"""\
[server]
http_host = "127.0.0.1"
http_port = {http_port}
public_base_url = "{base_url}"

[database]
url = "sqlite:///{directory / "demo.db"}"

[tickets]
prefix = "SD"

[email]
address = "{DESK}"
aliases = ["helpdesk@example.com"]
from_name = "IT Service Desk (demo)"

[smtp]
host = "127.0.0.1"
port = {smtp_port}

[outbound_smtp]
host = "127.0.0.1"
port = {relay_port}

[outbox]
poll_interval_seconds = 0.2

[fax]
senders = ["*@fax.demo.example"]

[twilio]
enabled = true
account_sid = "{twilio_account_sid}"
phone_number = "{DESK_NUMBER}"
api_base_url = "{twilio_api_url}"
spool_dir = "{directory / "spool"}"

[slack]
enabled = true
mode = "http"
api_base_url = "{slack_api_url}"

[api]
enabled = true

[dashboard]
enabled = true

[webform]
enabled = true
[[webform.categories]]
name = "broken_device"
label = "Something is broken"
[[webform.categories]]
name = "printer"
label = "A printer"

[[groups]]
name = "service-desk"
tier = 1
[[groups]]
name = "l2-apps"
tier = 2

[ivr]
greeting = "Welcome to the IT service desk."
[[ivr.options]]
digit = "1"
label = "a broken device"
category = "broken_device"
kind = "incident"
[[ivr.options]]
digit = "2"
label = "a locked account"
category = "locked_account"
kind = "service_request"
"""
