"""Operator sessions: who may see the dashboard, in a signed cookie.

Logging in takes one of the API's bearer tokens (``SPOC_API_TOKEN``) or the operator password
whose Argon2 hash is in ``SPOC_DASHBOARD_PASSWORD_HASH``. The session is a cookie signed with
``SPOC_DASHBOARD_SECRET`` (``itsdangerous``; without it, a secret the first gateway generated
and kept in the database, shared by every instance: ``router.shared_secrets``) holding a
session id and the session's CSRF token -- no credential. It is HttpOnly, SameSite=Strict,
Secure when the dashboard is served over https, and ends after ``[dashboard] session_hours``
or at logout (the id is revoked in the database, so on every instance: ``router.sessions``).

A one-use login link (``/dashboard/login/link/{token}``, what ``spoc demo`` prints) starts a
session without typing a credential: :meth:`Sessions.login_link` issues a random token, kept
only as its SHA-256 and only in this process; the first visit spends it, any later one is
refused. ``spoc serve`` issues none, so links need no sharing between instances.

Failed logins are limited per client address (``FAILED_LOGINS_PER_15_MINUTES``), counted in the
database by the gateway (``router.rate_limits``), so every instance shares one count: an Argon2
check costs real CPU, and guessing a token should cost the guesser, not the desk.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadData, URLSafeTimedSerializer

from channels.forms import set_private_cookie
from channels.rate_limits import MemoryRateLimiter
from gateway.auth import is_token
from normalizer.rate_limits import RateLimiter

log = logging.getLogger(__name__)

SESSION_COOKIE: Final = "spoc_session"
FAILED_LOGINS_PER_15_MINUTES: Final = 10
LOCKOUT_WINDOW_SECONDS: Final = 15 * 60.0
MAX_CREDENTIAL_CHARS: Final = 1024


@dataclass(frozen=True, slots=True)
class Operator:
    sid: str
    csrf: str
    via: str  # "token" | "password"


class Revocations(Protocol):
    """Session ids ended by logout (``router.sessions.RevokedSessions`` in the gateway)."""

    async def revoke(self, sid: str, until: datetime) -> None: ...

    async def is_revoked(self, sid: str) -> bool: ...


class MemoryRevocations:
    """Revocations in this process only: for a dashboard run without a database (tests)."""

    def __init__(self) -> None:
        self._revoked: dict[str, datetime] = {}

    async def revoke(self, sid: str, until: datetime) -> None:
        now = datetime.now(UTC)
        self._revoked = {s: t for s, t in self._revoked.items() if t > now}
        self._revoked[sid] = until

    async def is_revoked(self, sid: str) -> bool:
        return sid in self._revoked


class Sessions:
    def __init__(
        self,
        secret: bytes,
        *,
        tokens: tuple[bytes, ...],
        password_hash: str | None,
        max_age_seconds: int,
        limiter: RateLimiter | None = None,
        revocations: Revocations | None = None,
    ) -> None:
        """``limiter`` counts failed logins, ``revocations`` keeps logouts: the gateway passes
        the database's, so every instance sees the same; without them, this process's."""
        self._serializer = URLSafeTimedSerializer(secret, salt="spoc.dashboard.session")
        self.form_secret = secret  # the login form's tokens (another salt)
        self._tokens = tokens
        self._password_hash = password_hash
        self.max_age_seconds = max_age_seconds
        self._revocations = revocations if revocations is not None else MemoryRevocations()
        self._links: dict[str, float] = {}  # sha256 of an unspent login link -> its deadline
        self._hasher = PasswordHasher()
        self._failures = limiter if limiter is not None else MemoryRateLimiter()

    @property
    def can_log_in(self) -> bool:
        return bool(self._tokens or self._password_hash)

    async def locked_out(self, client: str) -> bool:
        limit, window = FAILED_LOGINS_PER_15_MINUTES, LOCKOUT_WINDOW_SECONDS
        return await self._failures.wait("login", client, limit, window) is not None

    async def login(self, credential: str, client: str) -> Operator | None:
        """A new session when ``credential`` is an API token or the operator password."""
        credential = credential.strip()[:MAX_CREDENTIAL_CHARS]
        via = None
        if not credential:
            pass
        elif is_token(credential, self._tokens):
            via = "token"
        elif await asyncio.to_thread(self._is_password, credential):
            via = "password"
        if via is None:
            limit, window = FAILED_LOGINS_PER_15_MINUTES, LOCKOUT_WINDOW_SECONDS
            await self._failures.hit("login", client, limit, window)
            log.info("dashboard: a login failed")
            return None
        log.info("dashboard: an operator logged in (%s)", via)
        return Operator(secrets.token_urlsafe(16), secrets.token_urlsafe(32), via)

    def login_link(self, ttl_seconds: float = 3600.0) -> str:
        """A token for one login without a credential, valid once within ``ttl_seconds``."""
        token = secrets.token_urlsafe(32)
        self._links[_digest(token)] = time.monotonic() + ttl_seconds
        return token

    def spend_link(self, token: str) -> Operator | None:
        """A new session for an unspent, unexpired link token; the token is spent either way."""
        deadline = self._links.pop(_digest(token[:MAX_CREDENTIAL_CHARS]), None)
        if deadline is None or deadline < time.monotonic():
            log.info("dashboard: a login link was refused (unknown, spent or expired)")
            return None
        log.info("dashboard: an operator logged in (link)")
        return Operator(secrets.token_urlsafe(16), secrets.token_urlsafe(32), "link")

    def _is_password(self, credential: str) -> bool:
        if not self._password_hash:
            return False
        try:
            return self._hasher.verify(self._password_hash, credential)
        except (VerificationError, InvalidHashError):
            return False

    async def read(self, request: web.Request) -> Operator | None:
        """The request's session, or None (no cookie, forged, expired, logged out)."""
        value = request.cookies.get(SESSION_COOKIE)
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=self.max_age_seconds)
        except BadData:
            return None
        if not isinstance(data, dict):
            return None
        sid, csrf, via = data.get("sid"), data.get("csrf"), data.get("via")
        if not (isinstance(sid, str) and isinstance(csrf, str) and isinstance(via, str)):
            return None
        if await self._revocations.is_revoked(sid):
            return None
        return Operator(sid, csrf, via)

    def start(self, response: web.StreamResponse, operator: Operator, *, secure: bool) -> None:
        value = self._serializer.dumps(
            {"sid": operator.sid, "csrf": operator.csrf, "via": operator.via}
        )
        set_private_cookie(
            response, SESSION_COOKIE, value, secure=secure, max_age=self.max_age_seconds
        )

    async def end(self, response: web.StreamResponse, operator: Operator | None) -> None:
        if operator is not None:
            until = datetime.now(UTC) + timedelta(seconds=self.max_age_seconds)
            await self._revocations.revoke(operator.sid, until)
        response.del_cookie(SESSION_COOKIE, path="/")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
