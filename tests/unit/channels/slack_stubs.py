"""Stand-ins for the Slack Web API client in unit tests (no sockets)."""

from __future__ import annotations

import asyncio
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse


def response(data: dict[str, Any], status: int = 200) -> AsyncSlackResponse:
    return AsyncSlackResponse(
        client=None,
        http_verb="POST",
        api_url="http://slack.invalid/api/x",
        req_args={},
        data=data,
        headers={},
        status_code=status,
    )


def api_error(error: str, status: int = 200, **extra: Any) -> SlackApiError:
    return SlackApiError(
        "The request to the Slack API failed.",
        response({"ok": False, "error": error, **extra}, status),
    )  # type: ignore[no-untyped-call]


class StubClient:
    """Answers each method from ``answers[method]``: a dict (ok) or an exception (raised).

    A method in ``held`` answers only once its event is set (Slack being slow).
    """

    def __init__(self, **answers: Any) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.held: dict[str, asyncio.Event] = {}

    async def _answer(self, method: str, kwargs: dict[str, Any]) -> AsyncSlackResponse:
        self.calls.append((method, kwargs))
        release = self.held.get(method)
        if release is not None:
            await release.wait()
        answer = self.answers.get(method, {"ok": True})
        if isinstance(answer, list):
            answer = answer.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return response(answer)

    async def users_info(self, **kwargs: Any) -> AsyncSlackResponse:
        return await self._answer("users.info", kwargs)

    async def chat_postMessage(self, **kwargs: Any) -> AsyncSlackResponse:
        return await self._answer("chat.postMessage", kwargs)

    async def chat_getPermalink(self, **kwargs: Any) -> AsyncSlackResponse:
        return await self._answer("chat.getPermalink", kwargs)
