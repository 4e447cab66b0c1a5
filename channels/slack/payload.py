"""The shape of a Slack payload, checked before slack-bolt sees it.

Slack signs whatever it sends, and bolt trusts the shape of what is signed: it indexes
``body["event"]["type"]``, ``body["actions"][0]`` and ``body["view"]["callback_id"]`` without
looking first, so ``"event": null`` or ``"actions": null`` became an exception inside bolt and
an HTTP 500 (Socket Mode: no ack, redelivered again and again). :func:`check_payload` holds a
payload to the shape Slack documents for its ``type`` -- only the parts bolt and our listeners
read; everything else may be anything -- and raises :class:`MalformedPayload` naming the first
field that is wrong (``event``, ``actions.0``, ``view.state.values``). HTTP answers that with
400 ``{"error", "field"}``; Socket Mode acknowledges the envelope (redelivering cannot fix it).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class MalformedPayload(ValueError):
    """A signed Slack payload that is not shaped as Slack documents it."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class _Shape(BaseModel):
    """An object whose other members may be anything."""

    model_config = ConfigDict(extra="allow", strict=True)


class _Identified(_Shape):
    id: str | None = None


# A member Slack sends either as an id string or as an object with an ``id``.
_IdOrObject = str | _Identified | None


class _Message(_Identified):
    type: str | None = None
    user: _IdOrObject = None
    channel: _IdOrObject = None
    text: str | None = None
    ts: str | None = None
    thread_ts: str | None = None
    subtype: str | None = None
    files: list[_Shape] | None = None


class _Event(_Message):
    type: str
    item: _Shape | None = None
    message: _Message | None = None
    previous_message: _Message | None = None


class _Envelope(_Shape):
    """What every payload may carry, whatever its type."""

    type: str | None = None
    team: _IdOrObject = None
    enterprise: _IdOrObject = None
    user: _IdOrObject = None
    channel: _IdOrObject = None
    authorizations: list[_Shape] | None = None
    response_urls: list[_Shape] | None = None
    command: str | None = None
    callback_id: str | None = None


class _EventCallback(_Envelope):
    event: _Event


class _Actions(_Envelope):
    actions: Annotated[list[_Shape], Field(min_length=1)]


class _State(_Shape):
    values: dict[str, dict[str, _Shape]]


class _View(_Identified):
    callback_id: str
    state: _State


class _ClosedView(_Identified):
    callback_id: str


class _ViewSubmission(_Envelope):
    view: _View


class _ViewClosed(_Envelope):
    view: _ClosedView


class _MessageAction(_Envelope):
    message: _Message


_BY_TYPE: dict[str, type[_Envelope]] = {
    "event_callback": _EventCallback,
    "block_actions": _Actions,
    "interactive_message": _Actions,
    "view_submission": _ViewSubmission,
    "view_closed": _ViewClosed,
    "message_action": _MessageAction,
}


def check_payload(body: object) -> None:
    """Raise :class:`MalformedPayload` unless ``body`` is shaped as Slack documents it."""
    if not isinstance(body, dict):
        raise MalformedPayload("Slack payload: body must be a JSON object", field="body")
    kind = body.get("type")
    model = _BY_TYPE.get(kind, _Envelope) if isinstance(kind, str) else _Envelope
    try:
        model.model_validate(body)
    except ValidationError as exc:
        field, problem = _first_problem(body, exc)
        raise MalformedPayload(f"Slack payload: {field} {problem}", field=field) from None


_WANTED = {
    "missing": "is missing",
    "model_type": "must be an object",
    "dict_type": "must be an object",
    "list_type": "must be a list",
    "string_type": "must be a string",
    "too_short": "must not be empty",
}


def _first_problem(body: dict[str, Any], exc: ValidationError) -> tuple[str, str]:
    """The deepest field pydantic complains about, and what it should be. A member that may
    be a string or an object gets one error per alternative: they are said together."""
    found: dict[str, list[str]] = {}
    for error in exc.errors():
        wanted = _WANTED.get(error["type"], error["msg"])
        found.setdefault(_field_name(body, error["loc"], error["type"]), []).append(wanted)
    field = max(found, key=lambda name: name.count(".") + (name != "body"))
    first, *others = dict.fromkeys(found[field])
    return field, " or ".join([first, *(p.removeprefix("must be ") for p in others)])


def _field_name(body: dict[str, Any], loc: tuple[int | str, ...], kind: str) -> str:
    """``loc`` as far as it exists in ``body``, plus a missing member's name (pydantic's
    locations also name union members, ``team.str``, which are no field)."""
    path: list[str] = []
    value: object = body
    for step in loc:
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and isinstance(step, int) and step < len(value):
            value = value[step]
        elif kind == "missing" and isinstance(step, str):
            path.append(step)  # a required member that is not there
            break
        else:
            continue  # a union member's name
        path.append(str(step))
    return ".".join(path) or "body"
