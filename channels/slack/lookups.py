"""What Slack tells us about a message before we acknowledge it, in time.

Slack wants its ack within 3 seconds and we ack only after the commit, so everything we ask
Slack first -- ``users.info`` for the sender and each mentioned user (cached by
:class:`SlackUsers`), ``chat.getPermalink``, the downloads of shared files
(:class:`SlackFiles`) -- runs at once, each bounded by ``lookup_timeout_seconds``. What does not
answer in time is left out: a Slack id instead of a name, no link, a file kept as its link.
The first slow answer of each method is a warning, later ones are logged at INFO.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from slack_bolt.async_app import AsyncBoltContext
from slack_sdk.errors import SlackApiError, SlackClientError

from channels.slack.files import SlackFiles
from channels.slack.users import SlackUsers
from normalizer.chat import FileNotKept, SlackMessage
from normalizer.contact import Attachment, Party

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_MENTIONS = 20  # users.info look-ups for one message's mentions; more stay ids
MAX_FILES = 10  # files downloaded from one message; more are not kept


@dataclass(frozen=True, slots=True)
class Found:
    """What the look-ups before the ack found out about a message."""

    sender: Party
    link: str | None
    names: dict[str, str]
    files: tuple[Attachment | FileNotKept, ...]


async def _nothing() -> None:
    return None


class SlackLookups:
    """The bounded look-ups of one Slack app (see the module's docstring)."""

    def __init__(self, timeout_seconds: float, users: SlackUsers, files: SlackFiles) -> None:
        self._seconds = timeout_seconds
        self._users = users
        self._files = files
        self._slow: set[str] = set()  # the Web API methods we have warned about being slow

    async def sender(self, user_id: str) -> Party:
        """``users.info`` for ``user_id``, or the Slack id alone when Slack is slow."""
        return await self.bounded(
            "users.info", self._users.party(user_id), Party(slack_user_id=user_id)
        )

    async def message(
        self, context: AsyncBoltContext, message: SlackMessage, *, permalink: bool
    ) -> Found:
        """Who sent it, whom it mentions, its files and (when asked) its permalink: all at
        once, each bounded by ``lookup_timeout_seconds``, so Slack's ack stays in time."""
        sender = self.sender(message.user_id)
        link = (
            self.bounded("chat.getPermalink", self._permalink(context, message), None)
            if permalink
            else _nothing()
        )
        mentioned = [u for u in message.mentioned_users if u != context.bot_user_id]
        found = await asyncio.gather(
            sender,
            link,
            self.names(mentioned),
            asyncio.gather(*(self._files.keep(f) for f in message.files[:MAX_FILES])),
        )
        return Found(sender=found[0], link=found[1], names=found[2], files=tuple(found[3]))

    async def names(self, user_ids: Sequence[str]) -> dict[str, str]:
        """The names of mentioned users that Slack tells in time (the others stay ids)."""
        parties = await asyncio.gather(*(self.sender(u) for u in user_ids[:MAX_MENTIONS]))
        return {p.slack_user_id: p.name for p in parties if p.slack_user_id and p.name}

    async def bounded(self, method: str, lookup: Awaitable[T], fallback: T) -> T:
        """``lookup``, or ``fallback`` when Slack has not answered in ``lookup_timeout_seconds``."""
        seconds = self._seconds
        try:
            async with asyncio.timeout(seconds):
                return await lookup
        except TimeoutError:
            level = logging.INFO if method in self._slow else logging.WARNING
            self._slow.add(method)
            log.log(
                level,
                "Slack %s did not answer within %.1f s: acknowledging without it (%s)",
                method,
                seconds,
                "Slack id only" if method == "users.info" else "no link on the ticket",
            )
            return fallback

    async def _permalink(self, context: AsyncBoltContext, message: SlackMessage) -> str | None:
        client = context.client
        if client is None:
            return None
        try:
            response = await client.chat_getPermalink(
                channel=message.channel_id, message_ts=message.ts
            )
        except (SlackClientError, OSError, TimeoutError) as exc:
            log.info("Slack chat.getPermalink failed (%s): no link on the ticket", exc)
            return None
        link = response.get("permalink")
        return link if isinstance(link, str) else None

    async def original(
        self, context: AsyncBoltContext, channel: str, ts: str
    ) -> dict[str, Any] | None:
        """The message a reaction was added to: channel history first, then thread replies."""
        client = context.client
        if client is None:
            return None
        for method in ("conversations.history", "conversations.replies"):
            try:
                if method == "conversations.history":
                    response = await client.conversations_history(
                        channel=channel, latest=ts, oldest=ts, inclusive=True, limit=1
                    )
                else:
                    response = await client.conversations_replies(channel=channel, ts=ts, limit=1)
            except SlackApiError as exc:
                data = exc.response.data if isinstance(exc.response.data, dict) else {}
                if exc.response.status_code >= 500 or data.get("error") == "ratelimited":
                    raise
                log.info("Slack cannot read %s:%s: %s", channel, ts, data.get("error"))
                return None
            messages = response.get("messages")
            for found in messages if isinstance(messages, list) else []:
                if isinstance(found, dict) and found.get("ts") == ts:
                    return found
        return None
