"""The slack-bolt ``AsyncApp`` and its listeners: every way into the desk from Slack.

Listeners (the same for HTTP and Socket Mode)
    ``message`` (``message.im``; ``message.channels``/``groups`` only for threads that are
    tickets), ``app_mention``, the ``/helpdesk`` command and its modal, the message shortcut
    ``spoc_create_ticket`` and, when ``reaction`` is set, ``reaction_added``.

Acknowledging
    The app runs with ``process_before_response=True``: a listener awaits
    ``intake.submit(contact)`` and returns before bolt answers, so Slack's ack (HTTP 200, or the
    Socket Mode envelope ack) is sent only after the contact is committed. Slack wants that ack
    within 3 seconds, so the look-ups before it (``users.info`` for the sender and for each
    mentioned user, ``chat.getPermalink``, the downloads of shared files) run together and are
    given ``lookup_timeout_seconds`` between them; one that does not answer in time leaves the
    sender or a mentioned user known by Slack id only, the ticket without a link, or a file
    kept as its link with the reason. When the intake
    cannot commit (``TemporaryIntakeError``) the listener returns HTTP 503 -- over Socket Mode
    bolt then sends no ack -- and Slack delivers the event again. A refused contact is logged
    and acknowledged (retrying cannot help). An exception we did not expect becomes bolt's
    empty-bodied 500 and is logged once with its traceback; nothing leaks to Slack.

Edits and deletions
    ``message_changed`` and ``message_deleted`` of a message that opened or joined a ticket are
    recorded on that ticket (``normalizer.revision``): no new ticket, no acknowledgement. An
    "edit" that leaves the text as it was (Slack adds a link preview) is not one.

Ignored
    Messages with a ``bot_id`` (any bot, ours included), our own bot user (bolt drops those
    too), joins and other non-human subtypes, and channel chatter outside ticket threads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from channels.slack.files import SlackFiles
from channels.slack.lookups import SlackLookups
from channels.slack.users import SlackUsers
from normalizer.chat import (
    ACTION_CATEGORY,
    ACTION_DESCRIPTION,
    ACTION_URGENCY,
    BLOCK_CATEGORY,
    BLOCK_DESCRIPTION,
    BLOCK_URGENCY,
    FORM_CALLBACK_ID,
    SlackMessage,
    contact_from_form,
    contact_from_message,
    contact_from_shortcut,
    form_from_view_state,
    parse_message,
    skip_reason,
    ts_to_datetime,
)
from normalizer.chat_edits import contact_revision, is_revision, parse_revision
from normalizer.contact import Contact
from normalizer.intake import ContactRejectedError, Intake, TemporaryIntakeError
from normalizer.revision import Revisions

log = logging.getLogger(__name__)

T = TypeVar("T")

SHORTCUT_CALLBACK_ID = "spoc_create_ticket"
COMMAND = "/helpdesk"

# Is "C123:1700000000.000100" the thread of a ticket that Slack user "U123" takes part in?
# (The gateway asks the router's store.) Colleagues chatting in that thread are not the ticket.
KnownThread = Callable[[str, str], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class SlackChannelSettings:
    """``[slack]`` plus its secrets from the environment."""

    bot_token: str = field(repr=False)
    signing_secret: str | None = field(default=None, repr=False)
    app_token: str | None = field(default=None, repr=False)
    mode: Literal["http", "socket"] = "http"
    api_base_url: str = "https://slack.com/api/"
    reaction: str = ""  # emoji name without colons ("ticket"); "" turns reactions off
    users_cache_ttl_seconds: float = 3600.0
    # users.info and chat.getPermalink together, before the ack Slack wants within 3 s
    lookup_timeout_seconds: float = 1.5
    categories: tuple[tuple[str, str], ...] = ()  # (category, label), from [ivr] options

    def __post_init__(self) -> None:
        if self.mode == "http" and not self.signing_secret:
            raise ValueError("slack: HTTP mode needs the signing secret")
        if self.mode == "socket" and not self.app_token:
            raise ValueError("slack: Socket Mode needs the app token")
        if not 0 < self.lookup_timeout_seconds < 3:
            raise ValueError(
                "slack: lookup_timeout_seconds must be between 0 and 3 (Slack's ack deadline),"
                f" not {self.lookup_timeout_seconds!r}"
            )


def web_client(settings: SlackChannelSettings) -> AsyncWebClient:
    base = settings.api_base_url
    return AsyncWebClient(
        token=settings.bot_token, base_url=base if base.endswith("/") else base + "/"
    )


def _raw(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), default=str).encode("utf-8")


RETRY_LATER = 503


class SlackUnavailable(Exception):
    """Slack's Web API could not tell us who our bot is; the request is retried later."""


class BotIdentity:
    """Who the app is in Slack (``auth.test``), asked once and then remembered.

    bolt's own single-team authorization answers ``200`` -- dropping the event -- when
    ``auth.test`` fails; raising :class:`SlackUnavailable` instead makes the request fail with
    503 so Slack delivers it again.
    """

    def __init__(self, client: AsyncWebClient, bot_token: str) -> None:
        self._client = client
        self._token = bot_token
        self._result: AuthorizeResult | None = None

    async def authorize(self) -> AuthorizeResult:
        if self._result is None:
            try:
                response = await self._client.auth_test(token=self._token)
            except (SlackClientError, OSError, TimeoutError) as exc:
                raise SlackUnavailable(f"Slack auth.test failed: {exc}") from exc
            self._result = AuthorizeResult.from_auth_test_response(
                auth_test_response=response, bot_token=self._token
            )
        return self._result


class SlackListeners:
    """What each Slack request turns into; registered on an ``AsyncApp`` by :func:`build_app`."""

    def __init__(
        self,
        settings: SlackChannelSettings,
        intake: Intake,
        users: SlackUsers,
        known_thread: KnownThread,
        revisions: Revisions,
        files: SlackFiles,
    ) -> None:
        self.settings = settings
        self._intake = intake
        self._known_thread = known_thread
        self._revisions = revisions
        self._lookups = SlackLookups(settings.lookup_timeout_seconds, users, files)

    # ---- submitting ---------------------------------------------------------------------------
    async def _submit(self, contact: Contact) -> BoltResponse | None:
        """None once committed (or refused for good); a 503 response when Slack should retry."""
        try:
            result = await self._intake.submit(contact)
        except TemporaryIntakeError as exc:
            log.warning("Slack %s not stored, Slack will retry: %s", contact.external_id, exc)
            return BoltResponse(status=RETRY_LATER, body="")
        except ContactRejectedError as exc:
            log.info("Slack %s refused: %s", contact.external_id, exc)
            return None
        log.info(
            "Slack %s -> %s (%s)",
            contact.external_id,
            result.ticket_ref,
            "duplicate" if result.duplicate else result.thread_reason,
        )
        return None

    # ---- events -------------------------------------------------------------------------------
    async def on_message(
        self, event: dict[str, Any], context: AsyncBoltContext
    ) -> BoltResponse | None:
        if is_revision(event):
            return await self._revise(event, context)
        if reason := skip_reason(event, context.bot_user_id):
            log.debug("Slack message ignored: %s", reason)
            return None
        message = self._parse(event)
        if message is None:
            return None
        if not message.is_dm:
            # Channel chatter is not ours; only replies in a ticket's thread are.
            if not message.thread_ts:
                return None
            try:
                known = await self._known_thread(message.thread_key, message.user_id)
            except TemporaryIntakeError as exc:
                log.warning("Slack thread %s: cannot look it up now: %s", message.thread_key, exc)
                return BoltResponse(status=RETRY_LATER, body="")
            if not known:
                return None
        return await self._message_contact(message, event, context, permalink=False)

    async def on_mention(
        self, event: dict[str, Any], context: AsyncBoltContext
    ) -> BoltResponse | None:
        if reason := skip_reason(event, context.bot_user_id):
            log.debug("Slack mention ignored: %s", reason)
            return None
        message = self._parse(event)
        if message is None:
            return None
        return await self._message_contact(message, event, context, permalink=True)

    async def _message_contact(
        self,
        message: SlackMessage,
        event: Mapping[str, Any],
        context: AsyncBoltContext,
        *,
        permalink: bool,
    ) -> BoltResponse | None:
        found = await self._lookups.message(context, message, permalink=permalink)
        try:
            contact = contact_from_message(
                message,
                sender=found.sender,
                received_at=ts_to_datetime(message.ts),
                permalink=found.link,
                bot_user_id=context.bot_user_id,
                names=found.names,
                files=found.files,
                raw=_raw(event),
            )
        except ContactRejectedError as exc:
            log.info("Slack message %s:%s ignored: %s", message.channel_id, message.ts, exc)
            return None
        return await self._submit(contact)

    async def on_reaction(
        self, event: dict[str, Any], context: AsyncBoltContext
    ) -> BoltResponse | None:
        if not self.settings.reaction or event.get("reaction") != self.settings.reaction:
            return None
        item = event.get("item")
        if not isinstance(item, dict) or item.get("type") != "message":
            return None
        channel, ts = item.get("channel"), item.get("ts")
        if not isinstance(channel, str) or not isinstance(ts, str):
            return None
        try:
            found = await self._lookups.original(context, channel, ts)
        except (SlackClientError, OSError, TimeoutError) as exc:
            log.warning("Slack reaction on %s:%s: cannot read the message (%s)", channel, ts, exc)
            return BoltResponse(status=RETRY_LATER, body="")
        if found is None:
            log.info("Slack reaction on %s:%s: the message is not readable", channel, ts)
            return None
        return await self._shortcut_contact(found, channel, "reaction", context)

    # ---- shortcut -----------------------------------------------------------------------------
    async def on_shortcut(
        self, ack: Any, shortcut: dict[str, Any], context: AsyncBoltContext
    ) -> BoltResponse | None:
        message = shortcut.get("message")
        channel = shortcut.get("channel")
        channel_id = channel.get("id") if isinstance(channel, dict) else None
        if not isinstance(message, dict) or not isinstance(channel_id, str):
            await ack()
            return None
        response = await self._shortcut_contact(message, channel_id, "shortcut", context)
        if response is None:
            await ack()
        return response

    async def _shortcut_contact(
        self,
        raw_message: dict[str, Any],
        channel_id: str,
        action: str,
        context: AsyncBoltContext,
    ) -> BoltResponse | None:
        if reason := skip_reason(raw_message, context.bot_user_id):
            log.info("Slack %s on %s ignored: %s", action, channel_id, reason)
            return None
        message = self._parse(raw_message, channel_id)
        if message is None:
            return None
        found = await self._lookups.message(context, message, permalink=True)
        contact = contact_from_shortcut(
            message,
            action=action,
            sender=found.sender,
            received_at=ts_to_datetime(message.ts),
            permalink=found.link,
            names=found.names,
            files=found.files,
            raw=_raw(raw_message),
        )
        return await self._submit(contact)

    # ---- /helpdesk and its modal --------------------------------------------------------------
    async def on_command(
        self, ack: Any, command: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        trigger = command.get("trigger_id")
        text = command.get("text")
        initial = text if isinstance(text, str) else ""
        client = context.client
        if not isinstance(trigger, str) or client is None:
            await ack(text="Sorry, the form cannot be opened here. Send me a direct message.")
            return
        try:
            await client.views_open(
                trigger_id=trigger, view=helpdesk_view(self.settings.categories, initial)
            )
        except (SlackClientError, OSError, TimeoutError) as exc:
            log.warning("Slack views.open failed: %s", exc)
            await ack(text="Sorry, the form cannot be opened now. Send me a direct message.")
            return
        await ack()

    async def on_view(
        self, ack: Any, view: dict[str, Any], body: dict[str, Any]
    ) -> BoltResponse | None:
        user = body.get("user")
        user_id = user.get("id") if isinstance(user, dict) else None
        state = view.get("state")
        values = state.get("values") if isinstance(state, dict) else None
        view_id = view.get("id")
        if not isinstance(user_id, str) or not isinstance(view_id, str):
            await ack()
            return None
        try:
            form = form_from_view_state(values if isinstance(values, dict) else {})
        except ContactRejectedError as exc:
            await ack(response_action="errors", errors={exc.field or BLOCK_DESCRIPTION: str(exc)})
            return None
        sender = await self._lookups.sender(user_id)
        try:
            contact = contact_from_form(
                form,
                view_id=view_id,
                sender=sender,
                received_at=datetime.now(UTC),
                raw=_raw({"view_id": view_id, "user": user_id, "values": values}),
            )
        except ContactRejectedError as exc:
            log.info("Slack modal %s refused: %s", view_id, exc)
            await ack()
            return None
        response = await self._submit(contact)
        if response is None:
            await ack()
        return response

    # ---- Slack look-ups -----------------------------------------------------------------------
    def _parse(
        self, event: Mapping[str, Any], channel_id: str | None = None
    ) -> SlackMessage | None:
        try:
            return parse_message(event, channel_id)
        except ContactRejectedError as exc:
            log.info("Slack message ignored: %s", exc)
            return None

    # ---- edits and deletions ------------------------------------------------------------------
    async def _revise(
        self, event: Mapping[str, Any], context: AsyncBoltContext
    ) -> BoltResponse | None:
        """An edit or a deletion: recorded on the ticket its message is part of, if any."""
        revision = parse_revision(event)
        if revision is None:
            return None
        names = await self._lookups.names(
            [u for u in revision.mentioned_users if u != context.bot_user_id]
        )
        try:
            result = await self._revisions.revise(
                contact_revision(revision, names, context.bot_user_id)
            )
        except TemporaryIntakeError as exc:
            log.warning(
                "Slack %s of %s not stored, Slack will retry: %s", revision.kind, revision.ts, exc
            )
            return BoltResponse(status=RETRY_LATER, body="")
        if result is None:
            log.debug(
                "Slack %s of %s:%s: not a ticket's message",
                revision.kind,
                revision.channel_id,
                revision.ts,
            )
        else:
            log.info(
                "Slack %s:%s %s -> %s%s",
                revision.channel_id,
                revision.ts,
                revision.kind,
                result.ticket_ref,
                " (duplicate)" if result.duplicate else "",
            )
        return None


def helpdesk_view(
    categories: tuple[tuple[str, str], ...], initial_text: str = ""
) -> dict[str, Any]:
    """The ``/helpdesk`` modal: category (the IVR's), urgency and a description."""

    def text(value: str) -> dict[str, Any]:
        return {"type": "plain_text", "text": value[:75], "emoji": True}

    def option(label: str, value: str) -> dict[str, Any]:
        return {"text": text(label), "value": value[:150]}

    blocks: list[dict[str, Any]] = []
    if categories:
        blocks.append(
            {
                "type": "input",
                "block_id": BLOCK_CATEGORY,
                "optional": True,
                "label": text("What is it about?"),
                "element": {
                    "type": "static_select",
                    "action_id": ACTION_CATEGORY,
                    "placeholder": text("Choose a category"),
                    "options": [option(label, cat) for cat, label in categories[:100]],
                },
            }
        )
    urgencies = [option("High: I cannot work", "high"), option("Medium", "medium")]
    urgencies.append(option("Low: when you have time", "low"))
    blocks.append(
        {
            "type": "input",
            "block_id": BLOCK_URGENCY,
            "optional": True,
            "label": text("How urgent is it?"),
            "element": {
                "type": "static_select",
                "action_id": ACTION_URGENCY,
                "initial_option": urgencies[1],
                "options": urgencies,
            },
        }
    )
    description: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": ACTION_DESCRIPTION,
        "multiline": True,
    }
    if initial_text.strip():
        description["initial_value"] = initial_text.strip()[:3000]
    blocks.append(
        {
            "type": "input",
            "block_id": BLOCK_DESCRIPTION,
            "label": text("Describe the problem"),
            "element": description,
        }
    )
    return {
        "type": "modal",
        "callback_id": FORM_CALLBACK_ID,
        "title": text("IT service desk"),
        "submit": text("Open ticket"),
        "close": text("Cancel"),
        "blocks": blocks,
    }


async def on_error(error: Exception, body: dict[str, Any]) -> BoltResponse:
    """Every exception a listener or bolt's middleware raised: logged once, no body to Slack.

    Slack unreachable or the database unavailable: 503 (Slack retries). Anything else is a bug:
    logged with its traceback, answered 500 with an empty body.
    """
    kind = body.get("type") if isinstance(body, dict) else None
    if isinstance(error, SlackUnavailable | TemporaryIntakeError):
        log.warning("Slack %s not handled now, Slack will retry: %s", kind, error)
        return BoltResponse(status=RETRY_LATER, body="")
    log.error("Slack %s failed", kind, exc_info=error)
    return BoltResponse(status=500, body="")


def build_app(
    settings: SlackChannelSettings,
    listeners: SlackListeners,
    client: AsyncWebClient,
    identity: BotIdentity,
) -> AsyncApp:
    """The bolt app with every listener; verification on for HTTP, off for Socket Mode."""

    async def authorize() -> AuthorizeResult:
        return await identity.authorize()

    app = AsyncApp(
        signing_secret=settings.signing_secret or "",
        # The template of each request's client, without a token: bolt sets the one our
        # ``authorize`` gives. (With the token here bolt warns at every start that it "will be
        # ignored" -- true of this template only, and nothing to act on.)
        client=AsyncWebClient(
            base_url=client.base_url,
            timeout=client.timeout,
            session=client.session,
            retry_handlers=client.retry_handlers,
        ),
        authorize=authorize,
        process_before_response=True,
        request_verification_enabled=settings.mode == "http",
        logger=logging.getLogger("channels.slack.bolt"),
    )
    app.error(on_error)
    app.event("message")(listeners.on_message)
    app.event("app_mention")(listeners.on_mention)
    app.event("reaction_added")(listeners.on_reaction)
    app.shortcut(SHORTCUT_CALLBACK_ID)(listeners.on_shortcut)
    app.command(COMMAND)(listeners.on_command)
    app.view(FORM_CALLBACK_ID)(listeners.on_view)
    return app
