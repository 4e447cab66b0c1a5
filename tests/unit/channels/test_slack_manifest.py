"""The shipped Slack app manifest asks for exactly what the listeners handle."""

from __future__ import annotations

import re
from pathlib import Path

from channels.slack.app import COMMAND, SHORTCUT_CALLBACK_ID
from channels.slack.files import FILES_SCOPE
from channels.slack.users import EMAIL_SCOPE

MANIFEST = (Path(__file__).resolve().parents[3] / "slack-app-manifest.yaml").read_text("utf-8")


def listed(section: str) -> list[str]:
    """The ``- item`` lines right under ``section:`` (comments dropped)."""
    block = MANIFEST.split(f"{section}:\n", 1)[1]
    items = []
    for line in block.splitlines():
        match = re.match(r"^\s+- ([^\s#]+)", line)
        if not match:
            break
        items.append(match.group(1))
    return items


def test_manifest_names_the_command_and_the_shortcut_the_app_listens_for() -> None:
    assert f"command: {COMMAND}" in MANIFEST
    assert f"callback_id: {SHORTCUT_CALLBACK_ID}" in MANIFEST


def test_every_request_url_is_the_events_path() -> None:
    urls = re.findall(r"(?:request_url|url): (\S+)", MANIFEST)
    assert len(urls) == 3 and {u.rpartition("/slack/")[2] for u in urls} == {"events"}


def test_manifest_subscribes_the_events_and_scopes_the_listeners_need() -> None:
    assert listed("bot_events") == [
        "app_mention",
        "message.im",
        "message.channels",
        "message.groups",
        "reaction_added",
    ]
    scopes = listed("bot")
    assert EMAIL_SCOPE in scopes and "users:read" in scopes and "chat:write" in scopes
    assert {"app_mentions:read", "im:history", "commands", "reactions:read"} <= set(scopes)
    assert FILES_SCOPE in scopes  # url_private downloads answer a sign-in page without it
