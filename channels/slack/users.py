"""Who a Slack user is: ``users.info`` -> :class:`Party`, cached for a while.

With the ``users:read.email`` scope Slack tells us the user's email, so the Slack user becomes
the same requester as their email (and phone) identity. Without that scope, or when Slack
cannot be asked right now, the party is the Slack id alone; a warning names the missing scope
(once per process). Answers are cached for ``ttl_seconds``; failures are not cached;
concurrent look-ups of one user share one call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from slack_sdk.errors import SlackApiError, SlackClientError

from normalizer.addresses import is_email_address
from normalizer.contact import Party

log = logging.getLogger(__name__)

EMAIL_SCOPE = "users:read.email"


class UsersInfoClient(Protocol):
    """The one Web API call this module needs (``AsyncWebClient`` has it)."""

    async def users_info(self, *, user: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class _Cached:
    party: Party
    expires_at: float


class SlackUsers:
    """``await users.party("U123")`` -> ``Party(slack_user_id=, email=, name=)``."""

    def __init__(
        self,
        client: UsersInfoClient,
        ttl_seconds: float = 3600.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
    ) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._clock = clock
        self._max = max_entries
        self._cache: dict[str, _Cached] = {}
        self._warned: set[str] = set()
        self._inflight: dict[str, asyncio.Task[tuple[Party, bool]]] = {}

    async def party(self, user_id: str) -> Party:
        now = self._clock()
        hit = self._cache.get(user_id)
        if hit is not None and hit.expires_at > now:
            return hit.party
        # Events from one user often arrive together: ask Slack once for all of them.
        task = self._inflight.get(user_id)
        if task is None:
            task = asyncio.create_task(self._lookup(user_id), name=f"slack-users.info-{user_id}")
            self._inflight[user_id] = task
            task.add_done_callback(lambda _: self._inflight.pop(user_id, None))
        party, cacheable = await asyncio.shield(task)
        if cacheable:
            if len(self._cache) >= self._max:
                self._cache.clear()
            self._cache[user_id] = _Cached(party, now + self._ttl)
        return party

    async def _lookup(self, user_id: str) -> tuple[Party, bool]:
        try:
            response = await self._client.users_info(user=user_id)
        except SlackApiError as exc:
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            error = str(data.get("error") or f"HTTP {exc.response.status_code}")
            if error == "missing_scope":
                needed = str(data.get("needed") or "users:read")
                self._warn_once(
                    needed,
                    "Slack users.info refused: the app lacks the %s scope; Slack users are "
                    "known by their Slack id only (add %s and %s to the app)",
                    needed,
                    needed,
                    EMAIL_SCOPE,
                )
                return Party(slack_user_id=user_id), True
            log.warning("Slack users.info for %s failed (%s): using the Slack id", user_id, error)
            return Party(slack_user_id=user_id), False
        except (SlackClientError, OSError, TimeoutError) as exc:
            log.warning("Slack users.info for %s failed (%s): using the Slack id", user_id, exc)
            return Party(slack_user_id=user_id), False
        user = response.get("user") if hasattr(response, "get") else None
        return party_from_user(user_id, user if isinstance(user, dict) else {}, self), True

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    def note_missing_email(self, user: dict[str, Any]) -> None:
        if not (user.get("is_bot") or user.get("is_restricted") or user.get("id") == "USLACKBOT"):
            self._warn_once(
                EMAIL_SCOPE,
                "Slack users.info gave no email: grant the %s scope so Slack users are "
                "matched to their email identity; until then they are known by Slack id only",
                EMAIL_SCOPE,
            )


def party_from_user(user_id: str, user: dict[str, Any], users: SlackUsers | None = None) -> Party:
    """A ``users.info`` ``user`` object as a :class:`Party`."""
    profile = user.get("profile") if isinstance(user.get("profile"), dict) else {}
    assert isinstance(profile, dict)
    email = profile.get("email")
    email = email.strip().casefold() if isinstance(email, str) else None
    email = email if email and is_email_address(email) else None
    if email is None and users is not None:
        users.note_missing_email(user)
    name = next(
        (
            n.strip()
            for n in (profile.get("real_name"), user.get("real_name"), user.get("name"))
            if isinstance(n, str) and n.strip()
        ),
        None,
    )
    return Party(slack_user_id=user_id, email=email, name=name)
