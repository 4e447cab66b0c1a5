"""Slack messages, shortcuts and modal forms -> :class:`Contact`. Pure: no I/O, no clock.

The Slack channel (``channels/slack``) does the talking to Slack -- who the user is
(``users.info``), a message's permalink -- and hands the primitive pieces here. Nothing in this
module knows slack_sdk or slack_bolt; it reads plain mappings the way Slack documents them.

Idempotency keys (``Contact.external_id``)
    a message (DM, @mention, thread reply)  ``C123:1700000000.000100`` (``channel:ts``), so the
                                            same message seen as ``message.im`` and as
                                            ``app_mention``, or redelivered, is one contact
    message shortcut / emoji reaction       ``shortcut:C123:1700…`` / ``reaction:C123:1700…``
    the ``/helpdesk`` modal                 ``view:V123`` (the submitted view's id)

Thread keys (``ThreadHints.chat_thread``)
    ``channel:thread_ts`` for a reply in a thread, ``channel:ts`` for a top-level message: a
    top-level DM starts its own conversation, replies in its thread continue it. A modal has no
    thread: its key is ``U123:view-V123`` (unique per ticket), and the outbound sender posts
    to the user's DM without ``thread_ts`` when the part after ``:`` is not a Slack timestamp.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from normalizer.contact import Attachment, Channel, Contact, Hints, Party, ThreadHints
from normalizer.intake import ContactRejectedError
from normalizer.mrkdwn import mentioned_users, to_plain
from normalizer.text import clean_line, clean_text

MAX_SUBJECT_CHARS = 120
MAX_TEXT_CHARS = 40_000  # Slack's own limit for a message's text

# The /helpdesk modal: the channel builds the view with these ids, this module reads them back.
FORM_CALLBACK_ID = "spoc_helpdesk_form"
BLOCK_CATEGORY, ACTION_CATEGORY = "category", "category_select"
BLOCK_URGENCY, ACTION_URGENCY = "urgency", "urgency_select"
BLOCK_DESCRIPTION, ACTION_DESCRIPTION = "description", "description_input"
URGENCIES = ("high", "medium", "low")

# Message subtypes a person writes; every other subtype (edits, joins, bot posts …) is ignored.
_HUMAN_SUBTYPES = frozenset({"", "file_share", "thread_broadcast", "me_message"})
_TS_RE = re.compile(r"^[0-9]{1,12}\.[0-9]{1,9}$")
_ID_RE = re.compile(r"^[A-Z0-9]{2,40}$")
_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")


@dataclass(frozen=True, slots=True)
class SlackFile:
    """A file shared with a message (Slack's file object, the parts we use)."""

    id: str
    name: str
    mimetype: str
    size: int | None = None
    url: str | None = None  # url_private_download, else url_private
    external: bool = False  # a link to Google Drive & co., not a file Slack holds


@dataclass(frozen=True, slots=True)
class FileNotKept:
    """A shared file the desk could not keep: the ticket names it, its link and why."""

    name: str
    url: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """The parts of a Slack message the desk uses. ``text`` is Slack's (markup, escapes)."""

    channel_id: str
    ts: str
    user_id: str
    text: str
    thread_ts: str | None = None
    channel_type: str | None = None  # "im", "channel", "group", "mpim"
    files: tuple[SlackFile, ...] = ()

    @property
    def mentioned_users(self) -> tuple[str, ...]:
        """Whose names the text needs (``<@U123>``), to look up before converting it."""
        return mentioned_users(self.text)

    @property
    def thread_key(self) -> str:
        return f"{self.channel_id}:{self.thread_ts or self.ts}"

    @property
    def is_dm(self) -> bool:
        return self.channel_type == "im" or self.channel_id.startswith("D")


@dataclass(frozen=True, slots=True)
class HelpdeskForm:
    """What the ``/helpdesk`` modal asked: a category, an urgency and a description."""

    category: str | None
    urgency: str | None
    description: str


def is_slack_ts(value: str | None) -> bool:
    """``1700000000.000100``: the shape of a Slack message timestamp."""
    return bool(value) and _TS_RE.match(value or "") is not None


def is_slack_id(value: object) -> bool:
    """``C123``, ``U0ALICE``: the shape of a Slack channel or user id."""
    return isinstance(value, str) and _ID_RE.match(value) is not None


def ts_to_datetime(ts: str) -> datetime:
    """When a Slack message was written (its ``ts`` is Unix seconds with microseconds)."""
    return datetime.fromtimestamp(float(ts), UTC)


def skip_reason(event: Mapping[str, object], bot_user_id: str | None) -> str | None:
    """Why a message event must not become a contact (a bot wrote it, it is an edit …)."""
    if event.get("bot_id") or event.get("bot_profile"):
        return "bot"
    subtype = event.get("subtype")
    if subtype is not None and subtype not in _HUMAN_SUBTYPES:
        return f"subtype:{subtype}"
    user = event.get("user")
    if not isinstance(user, str) or not user:
        return "no-user"
    if bot_user_id and user == bot_user_id:
        return "own-message"
    return None


def parse_message(event: Mapping[str, object], channel_id: str | None = None) -> SlackMessage:
    """A message event (or a shortcut's ``message``) as a :class:`SlackMessage`.

    ``channel_id`` is given when the mapping itself has no ``channel`` (shortcuts). Raises
    :class:`ContactRejectedError` when an id or a timestamp is missing or malformed.
    """
    channel = event.get("channel", channel_id)
    if isinstance(channel, Mapping):  # some payloads nest {"id": "C…"}
        channel = channel.get("id")
    ts, user = event.get("ts"), event.get("user")
    thread_ts = event.get("thread_ts")
    if not isinstance(channel, str) or not _ID_RE.match(channel):
        raise ContactRejectedError("the Slack message has no channel id", field="channel")
    if not isinstance(ts, str) or not is_slack_ts(ts):
        raise ContactRejectedError("the Slack message has no valid ts", field="ts")
    if not isinstance(user, str) or not _ID_RE.match(user):
        raise ContactRejectedError("the Slack message has no user id", field="user")
    if thread_ts is not None and (not isinstance(thread_ts, str) or not is_slack_ts(thread_ts)):
        raise ContactRejectedError("the Slack message has a malformed thread_ts", field="thread_ts")
    text = event.get("text")
    channel_type = event.get("channel_type")
    files = event.get("files")
    return SlackMessage(
        channel_id=channel,
        ts=ts,
        user_id=user,
        text=text if isinstance(text, str) else "",
        thread_ts=thread_ts,
        channel_type=channel_type if isinstance(channel_type, str) else None,
        files=tuple(_files(files if isinstance(files, list) else [])),
    )


def _files(items: list[object]) -> Iterator[SlackFile]:
    for item in items:
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
            continue
        name = next(
            (n for n in (item.get("name"), item.get("title")) if isinstance(n, str) and n), ""
        )
        mimetype, size = item.get("mimetype"), item.get("size")
        url = next(
            (
                u
                for u in (item.get("url_private_download"), item.get("url_private"))
                if isinstance(u, str) and u
            ),
            None,
        )
        yield SlackFile(
            id=item["id"],
            name=clean_line(name) or item["id"],
            mimetype=mimetype if isinstance(mimetype, str) and mimetype else "",
            size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            url=clean_line(url) if url else None,
            external=item.get("is_external") is True or item.get("mode") == "external",
        )


def message_text(
    text: str, bot_user_id: str | None = None, names: Mapping[str, str] | None = None
) -> str:
    """Slack message text as its author wrote it (:func:`normalizer.mrkdwn.to_plain`), without
    the mention of our own bot or control characters, capped at Slack's limit. ``names``: the
    mentioned users' names by id (an id without a name stays ``@U123``)."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>\s*", "", text)
    shown = {user: clean_line(name) for user, name in (names or {}).items()}
    return clean_text(to_plain(text, shown)).strip()[:MAX_TEXT_CHARS]


def subject_of(text: str) -> str:
    """The first line of plain text, at most 120 characters."""
    first = next((line for line in _LINE_BREAKS.split(text) if line.strip()), "")
    first = clean_line(first)
    if len(first) > MAX_SUBJECT_CHARS:
        first = first[: MAX_SUBJECT_CHARS - 1].rstrip() + "…"
    return first


def _with_notes(text: str, permalink: str | None, not_kept: Sequence[FileNotKept]) -> str:
    """The text, then a line for each file not kept, then the message's permalink."""
    notes = [
        f"File not kept: {f.name}" + (f" ({f.url})" if f.url else "") + f": {f.reason}"
        for f in not_kept
    ]
    if permalink:
        notes.append(f"Slack: {clean_line(permalink)}")
    return "\n\n".join([text, "\n".join(notes)]) if notes else text


def _files_only(files: Sequence[Attachment | FileNotKept]) -> str:
    """The text of a message that is only files: which ones were shared."""
    names = [f.filename if isinstance(f, Attachment) else f.name for f in files]
    return "Shared " + ", ".join(names) if names else ""


def contact_from_message(
    message: SlackMessage,
    *,
    sender: Party,
    received_at: datetime,
    permalink: str | None = None,
    bot_user_id: str | None = None,
    names: Mapping[str, str] | None = None,
    files: Sequence[Attachment | FileNotKept] = (),
    raw: bytes = b"",
) -> Contact:
    """A DM, an @mention or a reply in a ticket's thread, with the files shared with it
    (downloaded as attachments, or :class:`FileNotKept`)."""
    sender = _checked_sender(sender, received_at)
    text = message_text(message.text, bot_user_id, names) or _files_only(files)
    if not text:
        raise ContactRejectedError("the Slack message has no text", field="text")
    external_id = f"{message.channel_id}:{message.ts}"
    return _contact(message, external_id, sender, received_at, text, permalink, files, raw)


def contact_from_shortcut(
    message: SlackMessage,
    *,
    action: str,
    sender: Party,
    received_at: datetime,
    permalink: str | None = None,
    names: Mapping[str, str] | None = None,
    files: Sequence[Attachment | FileNotKept] = (),
    raw: bytes = b"",
) -> Contact:
    """Any message turned into a ticket for its author (``action``: shortcut or reaction)."""
    sender = _checked_sender(sender, received_at)
    text = (
        message_text(message.text, names=names)
        or _files_only(files)
        or "(a Slack message without text)"
    )
    external_id = f"{action}:{message.channel_id}:{message.ts}"
    return _contact(message, external_id, sender, received_at, text, permalink, files, raw)


def _contact(
    message: SlackMessage,
    external_id: str,
    sender: Party,
    received_at: datetime,
    text: str,
    permalink: str | None,
    files: Sequence[Attachment | FileNotKept],
    raw: bytes,
) -> Contact:
    """A Slack contact in the message's thread (the thread key is how replies find it)."""
    not_kept = [f for f in files if isinstance(f, FileNotKept)]
    return Contact(
        channel=Channel.SLACK,
        external_id=external_id,
        sender=sender,
        received_at=received_at,
        subject=subject_of(text),
        text=_with_notes(text, permalink, not_kept),
        attachments=tuple(f for f in files if isinstance(f, Attachment)),
        thread=ThreadHints(chat_thread=message.thread_key),
        raw=raw,
        raw_type="application/json",
    )


def form_from_view_state(values: Mapping[str, object]) -> HelpdeskForm:
    """Read the ``/helpdesk`` modal's ``view.state.values``. Raises ContactRejectedError
    (``field`` is the block id) when the description is missing."""

    def action(block: str, action_id: str) -> Mapping[str, object]:
        holder = values.get(block)
        item = holder.get(action_id) if isinstance(holder, Mapping) else None
        return item if isinstance(item, Mapping) else {}

    def selected(block: str, action_id: str) -> str | None:
        option = action(block, action_id).get("selected_option")
        value = option.get("value") if isinstance(option, Mapping) else None
        return clean_line(value) or None if isinstance(value, str) else None

    value = action(BLOCK_DESCRIPTION, ACTION_DESCRIPTION).get("value")
    description = clean_text(value).strip() if isinstance(value, str) else ""
    if not description:
        raise ContactRejectedError("please describe the problem", field=BLOCK_DESCRIPTION)
    urgency = selected(BLOCK_URGENCY, ACTION_URGENCY)
    return HelpdeskForm(
        category=selected(BLOCK_CATEGORY, ACTION_CATEGORY),
        urgency=urgency if urgency in URGENCIES else None,
        description=description[:MAX_TEXT_CHARS],
    )


def contact_from_form(
    form: HelpdeskForm,
    *,
    view_id: str,
    sender: Party,
    received_at: datetime,
    raw: bytes = b"",
) -> Contact:
    """A submitted ``/helpdesk`` modal. Replies go to the user's DM (no thread)."""
    sender = _checked_sender(sender, received_at)
    if not sender.slack_user_id or not _ID_RE.match(view_id):
        raise ContactRejectedError("the modal has no user or view id", field="view")
    return Contact(
        channel=Channel.SLACK,
        external_id=f"view:{view_id}",
        sender=sender,
        received_at=received_at,
        subject=subject_of(form.description),
        text=form.description,
        thread=ThreadHints(chat_thread=f"{sender.slack_user_id}:view-{view_id}"),
        hints=Hints(category=form.category, urgency=form.urgency),
        raw=raw,
        raw_type="application/json",
    )


def _checked_sender(sender: Party, received_at: datetime) -> Party:
    """The sender with a name fit to store (Slack profiles may hold control characters)."""
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    if sender.is_empty():
        raise ContactRejectedError("the Slack message has no user", field="user")
    return replace(sender, name=clean_line(sender.name or "") or None)
