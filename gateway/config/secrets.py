"""Secrets: read only from the environment, never from the file, never printed.

Also which keys of the file look secret and which environment variable holds each instead, so the
loader can refuse a secret in ``config.toml`` and name the variable to set.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

_SECRET_KEYS = frozenset(
    {
        "password",
        "passwd",
        "password_hash",
        "token",
        "tokens",
        "secret",
        "api_key",
        "auth_token",
        "signing_secret",
    }
)
_SECRET_SUFFIXES = ("_password", "_token", "_tokens", "_secret")
_SECRET_ENV = {
    ("twilio", "auth_token"): "SPOC_TWILIO_AUTH_TOKEN",
    ("api", "token"): "SPOC_API_TOKEN",
    ("api", "tokens"): "SPOC_API_TOKEN",
    ("database", "password"): "SPOC_DATABASE_URL",
    ("dashboard", "password"): "SPOC_DASHBOARD_PASSWORD_HASH",
    ("dashboard", "password_hash"): "SPOC_DASHBOARD_PASSWORD_HASH",
}


def env_name(name: str) -> str:
    """A config name as it appears inside an env var: ``l2-jira`` -> ``L2_JIRA``."""
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


@dataclass(frozen=True, slots=True)
class Secrets:
    """Everything secret, read only from the environment. ``repr`` never shows a value."""

    twilio_auth_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_app_token: str | None = field(default=None, repr=False)
    api_tokens: tuple[str, ...] = field(default=(), repr=False)
    database_url: str | None = field(default=None, repr=False)
    outbound_smtp_password: str | None = field(default=None, repr=False)
    imap_default_password: str | None = field(default=None, repr=False)
    imap_passwords: Mapping[str, str] = field(default_factory=dict, repr=False)
    forward_secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    dashboard_secret: str | None = field(default=None, repr=False)
    dashboard_password_hash: str | None = field(default=None, repr=False)
    # SPOC_FORWARD_<NAME>_TOKEN / _PASSWORD / _WEBHOOK_SECRET, by forward name
    forward_tokens: Mapping[str, str] = field(default_factory=dict, repr=False)
    forward_passwords: Mapping[str, str] = field(default_factory=dict, repr=False)
    forward_webhook_secrets: Mapping[str, str] = field(default_factory=dict, repr=False)

    def imap_password(self, mailbox: str) -> str | None:
        """``SPOC_IMAP_<NAME>_PASSWORD``, else ``SPOC_IMAP_PASSWORD``."""
        return self.imap_passwords.get(mailbox, self.imap_default_password)

    def forward_secret(self, forward: str) -> str | None:
        return self.forward_secrets.get(forward)

    def forward_webhook_secret(self, forward: str) -> str | None:
        """What signs ``POST /hooks/<forward>``: ``SPOC_FORWARD_<NAME>_WEBHOOK_SECRET``."""
        return self.forward_webhook_secrets.get(forward)

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str], imap_names: Iterable[str], forward_names: Iterable[str]
    ) -> Secrets:
        def get(key: str) -> str | None:
            return environ.get(key, "").strip() or None

        imap = {n: p for n in imap_names if (p := get(f"SPOC_IMAP_{env_name(n)}_PASSWORD"))}
        names = tuple(forward_names)

        def per_forward(suffix: str) -> dict[str, str]:
            return {n: s for n in names if (s := get(f"SPOC_FORWARD_{env_name(n)}_{suffix}"))}

        tokens = tuple(t.strip() for t in environ.get("SPOC_API_TOKEN", "").split(",") if t.strip())
        return cls(
            twilio_auth_token=get("SPOC_TWILIO_AUTH_TOKEN"),
            slack_signing_secret=get("SPOC_SLACK_SIGNING_SECRET"),
            slack_bot_token=get("SPOC_SLACK_BOT_TOKEN"),
            slack_app_token=get("SPOC_SLACK_APP_TOKEN"),
            api_tokens=tokens,
            database_url=get("SPOC_DATABASE_URL"),
            outbound_smtp_password=get("SPOC_OUTBOUND_SMTP_PASSWORD"),
            imap_default_password=get("SPOC_IMAP_PASSWORD"),
            imap_passwords=imap,
            forward_secrets=per_forward("SECRET"),
            forward_tokens=per_forward("TOKEN"),
            forward_passwords=per_forward("PASSWORD"),
            forward_webhook_secrets=per_forward("WEBHOOK_SECRET"),
            dashboard_secret=get("SPOC_DASHBOARD_SECRET"),
            dashboard_password_hash=get("SPOC_DASHBOARD_PASSWORD_HASH"),
        )


def is_secret_key(key: str) -> bool:
    """A key that looks like it holds a secret (``password``, ``*_token`` ...)."""
    return key.lower() in _SECRET_KEYS or key.lower().endswith(_SECRET_SUFFIXES)


def secret_env_var(loc: tuple[str | int, ...], table: Mapping[str, Any]) -> str:
    section, key = str(loc[0]), str(loc[-1]).lower()
    if (section, key) in _SECRET_ENV:
        return _SECRET_ENV[(section, key)]
    name = table.get("name")
    if len(loc) > 2 and isinstance(loc[1], int) and isinstance(name, str):
        return f"SPOC_{env_name(section)}_{env_name(name)}_{env_name(key)}"
    return f"SPOC_{env_name(section)}_{env_name(key)}"
