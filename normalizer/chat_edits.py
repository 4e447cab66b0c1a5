"""Edits and deletions of Slack messages -> :class:`ContactRevision`. Pure: no I/O.

Slack sends ``message`` events with subtype ``message_changed`` (``message`` is the new
version, ``previous_message`` the old, ``message.edited.ts`` when it was edited) and
``message_deleted`` (``deleted_ts`` names the message, ``previous_message`` is what it was).
Either may concern a message that opened or joined a ticket; the router looks it up by the
same keys the contact was stored under (``normalizer.chat``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from normalizer.chat import is_slack_id, is_slack_ts, message_text
from normalizer.contact import Channel
from normalizer.mrkdwn import mentioned_users
from normalizer.revision import ContactRevision, RevisionKind


@dataclass(frozen=True, slots=True)
class SlackRevision:
    """A ``message_changed`` or ``message_deleted`` event of a person's message."""

    channel_id: str
    ts: str  # the revised message's own ts
    kind: RevisionKind
    revised_at: str  # edited.ts, or the deletion event's ts
    text: str = ""  # the edited text, Slack's format

    @property
    def mentioned_users(self) -> tuple[str, ...]:
        return mentioned_users(self.text)


_REVISION_KINDS = {"message_changed": RevisionKind.EDITED, "message_deleted": RevisionKind.DELETED}


def is_revision(event: Mapping[str, object]) -> bool:
    """Whether a message event tells of an edit or a deletion."""
    return event.get("subtype") in _REVISION_KINDS


def parse_revision(event: Mapping[str, object]) -> SlackRevision | None:
    """An edit or a deletion of a person's message (a thread's first message deleted under
    its replies arrives as an edit to a ``tombstone``: a deletion); ``None`` for a bot's
    message, an "edit" that leaves the text as it was (Slack sends one when it adds a link
    preview) and a malformed event."""
    kind = _REVISION_KINDS.get(str(event.get("subtype")))
    channel, stamp = event.get("channel"), event.get("ts")
    message, previous = event.get("message"), event.get("previous_message")
    if kind is None or not isinstance(channel, str) or not is_slack_id(channel):
        return None
    before = previous if isinstance(previous, Mapping) else {}
    if kind is RevisionKind.DELETED:
        ts = event.get("deleted_ts")
        if before.get("bot_id") or not isinstance(ts, str) or not is_slack_ts(ts):
            return None
        return SlackRevision(channel, ts, kind, stamp if isinstance(stamp, str) else ts)
    if not isinstance(message, Mapping) or message.get("bot_id"):
        return None
    ts, text = message.get("ts"), message.get("text")
    if message.get("subtype") == "tombstone" and isinstance(ts, str) and is_slack_ts(ts):
        # A thread's first message deleted while it has replies: Slack keeps a placeholder.
        return SlackRevision(channel, ts, RevisionKind.DELETED, str(stamp or ts))
    edited = message.get("edited")
    edited_ts = edited.get("ts") if isinstance(edited, Mapping) else None
    if not isinstance(ts, str) or not is_slack_ts(ts) or not isinstance(text, str):
        return None
    if not isinstance(edited_ts, str) or text == before.get("text"):
        return None
    return SlackRevision(channel, ts, kind, edited_ts, text)


def contact_revision(
    revision: SlackRevision,
    names: Mapping[str, str] | None = None,
    bot_user_id: str | None = None,
) -> ContactRevision:
    """The revision for the router: the message's keys and its new text, as plain text."""
    key = f"{revision.channel_id}:{revision.ts}"
    text = (
        message_text(revision.text, bot_user_id, names)
        if revision.kind is RevisionKind.EDITED
        else None
    )
    return ContactRevision(
        channel=Channel.SLACK,
        external_ids=(key, f"shortcut:{key}", f"reaction:{key}"),
        kind=revision.kind,
        revised_at=revision.revised_at,
        text=text,
    )
