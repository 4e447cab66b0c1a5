"""One ``[[imap]]`` mailbox polled in the gateway's loop; the IMAP itself runs in a worker thread.

See the package docstring (``channels/imap/__init__.py``) for what it does and its keys.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from channels.base import Channel
from channels.imap.session import MailboxSession, ServerAddress
from normalizer.contact import Contact, ContactStep
from normalizer.delivery import header_field
from normalizer.email import contact_from_email
from normalizer.intake import ContactRejectedError, Intake, Quarantine, TemporaryIntakeError
from normalizer.mailbox import Checkpoint, Checkpoints, PollerLock

log = logging.getLogger(__name__)

T = TypeVar("T")

IDLE_CHECK_SECONDS = 1.0  # how soon a stop request is seen while in IDLE
LOCK_CHECK_SECONDS = 30.0  # how often the poller lock is confirmed while in IDLE
# How often a gateway waiting for another one's mailbox tries the poller lock again: the
# mailbox is taken over within about this long after its poller dies (not poll_interval_seconds,
# 60 s by default, which would make failover slower than the 30 s promised).
LOCK_RETRY_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class IMAPMailboxSettings:
    """One ``[[imap]]`` table plus what the gateway adds (password, the desk's addresses).

    No defaults here: the config model (``gateway.config.sections.ImapMailbox``) declares and
    checks them, and ``gateway.serve.imap_mailbox_settings`` builds this from it.
    """

    name: str
    host: str
    port: int
    tls: bool
    starttls: bool
    ca_file: str | None
    username: str
    password: str
    folder: str
    processed_folder: str
    failed_folder: str
    poll_interval_seconds: float
    idle_seconds: float  # at most 600 (checked by the config)
    max_messages_per_cycle: int
    max_failures: int
    max_message_bytes: int
    reconnect_max_seconds: float
    timeout_seconds: float
    desk_address: str
    our_addresses: frozenset[str]

    def __repr__(self) -> str:
        return f"IMAPMailboxSettings({self.name!r}, {self.username}@{self.host}:{self.port})"

    @property
    def server(self) -> ServerAddress:
        return ServerAddress(
            host=self.host,
            port=self.port,
            tls=self.tls,
            starttls=self.starttls,
            username=self.username,
            password=self.password,
            ca_file=self.ca_file,
            timeout_seconds=self.timeout_seconds,
        )


class _LockLost(Exception):
    """Another gateway may poll this mailbox now: stop touching it."""


class IMAPChannel(Channel):
    """Polls one mailbox folder; each message -> contact -> commit -> move (see the package doc)."""

    def __init__(
        self,
        settings: IMAPMailboxSettings,
        intake: Intake,
        checkpoints: Checkpoints,
        lock: PollerLock,
        quarantine: Quarantine | None,
        steps: Sequence[ContactStep] = (),
    ) -> None:
        self.settings = settings
        self.steps = tuple(steps)  # after conversion, as for SMTP (fax, forwards, limits)
        self.name = f"imap:{settings.name}"
        self._intake = intake
        self._checkpoints = checkpoints
        self._lock = lock
        self._quarantine = quarantine
        self._session = MailboxSession(
            settings.server,
            settings.folder,
            (settings.processed_folder, settings.failed_folder),
        )
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"spoc-imap-{settings.name}")
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Messages that failed here and are still in the folder: a hint to poll, not IDLE. The
        # counts themselves are in the database (``Checkpoints.count_failure``), shared.
        self._failing: set[tuple[int, int]] = set()
        self._checkpoint: Checkpoint | None = None
        self._backoff = min(1.0, settings.reconnect_max_seconds)
        self.cycles = 0  # completed poll cycles (tests and logs)

    @property
    def running(self) -> bool:
        """The poller task lives (it survives refused logins, dropped connections, outages)."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError(f"{self.name} already started")
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=self.name)
        log.info(
            "IMAP %s: polling %s@%s:%d folder %r",
            self.settings.name,
            self.settings.username,
            self.settings.host,
            self.settings.port,
            self.settings.folder,
        )

    async def stop(self, grace_seconds: float) -> None:
        task = self._task
        if task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace_seconds)
        except TimeoutError:
            log.warning(
                "IMAP %s: still busy after %.1fs, cancelled", self.settings.name, grace_seconds
            )
            task.cancel()
        except Exception:
            log.exception("IMAP %s: poller failed", self.settings.name)
        try:  # a call still blocked in the worker thread ends by its socket timeout at worst
            await asyncio.wait_for(self._disconnect(), grace_seconds)
        except TimeoutError:
            log.warning(
                "IMAP %s: logout did not finish; the connection is dropped", self.settings.name
            )
        await self._lock.release()
        self._executor.shutdown(wait=False)
        log.info("IMAP %s stopped", self.settings.name)

    # --- the loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        name = self.settings.name
        waiting_logged = False
        while not self._stopping.is_set():
            try:
                if not await self._lock.acquire():
                    if not waiting_logged:
                        log.info("IMAP %s: another gateway polls this mailbox; waiting", name)
                        waiting_logged = True
                    await self._sleep(min(LOCK_RETRY_SECONDS, self.settings.poll_interval_seconds))
                    continue
                if waiting_logged:
                    log.info("IMAP %s: took over the mailbox from another gateway", name)
                waiting_logged = False
                await self._connected()
            except _LockLost:
                log.warning("IMAP %s: poller lock lost; disconnecting", name)
                await self._disconnect()
            except (IMAPClientError, OSError, TemporaryIntakeError) as exc:
                # LoginError (a wrong password) is an IMAPClientError too: retried, loudly.
                level = logging.ERROR if isinstance(exc, LoginError) else logging.WARNING
                log.log(
                    level, "IMAP %s: %s; reconnecting in %.1fs", name, _describe(exc), self._backoff
                )
                await self._back_off()
            except Exception:
                log.exception(
                    "IMAP %s: unexpected failure; reconnecting in %.1fs", name, self._backoff
                )
                await self._back_off()

    async def _back_off(self) -> None:
        """Drop the connection and wait; each wait doubles, up to ``reconnect_max_seconds``."""
        await self._disconnect()
        await self._sleep(self._backoff)
        self._backoff = min(self._backoff * 2, self.settings.reconnect_max_seconds)

    async def _connected(self) -> None:
        await self._call(self._session.open)
        self._checkpoint = await self._checkpoints.load(self.settings.name, self.settings.folder)
        idle = await self._call(self._session.supports_idle)
        while not self._stopping.is_set():
            if not await self._lock.held():
                raise _LockLost
            more = await self._cycle()
            self.cycles += 1
            # Only a whole cycle resets the delay: a database that stays down keeps it growing.
            self._backoff = min(1.0, self.settings.reconnect_max_seconds)
            if more or self._stopping.is_set():
                continue
            if await self._call(self._session.arrived_meanwhile):
                continue  # announced during the cycle: IDLE would not say it again
            if idle and not self._failing:  # a failed message is retried after the interval
                await self._idle()
            else:
                await self._sleep(self.settings.poll_interval_seconds)

    async def _cycle(self) -> bool:
        """Take in up to ``max_messages_per_cycle`` messages; True when more are waiting."""
        settings = self.settings
        uidvalidity = await self._call(self._session.select)
        checkpoint = self._checkpoint
        if checkpoint is None or checkpoint.uidvalidity != uidvalidity:
            if checkpoint is not None:
                log.warning(
                    "IMAP %s: UIDVALIDITY of %r changed from %d to %d: taking the folder in "
                    "again from UID 1 (Message-IDs keep out duplicates)",
                    settings.name,
                    settings.folder,
                    checkpoint.uidvalidity,
                    uidvalidity,
                )
            checkpoint = Checkpoint(uidvalidity, 0)
            await self._save(checkpoint)
            self._failing.clear()
        uids = await self._call(self._session.pending, checkpoint.last_uid)
        batch = uids[: settings.max_messages_per_cycle]
        sizes = await self._call(self._session.sizes, batch)
        contiguous = True
        for uid in batch:
            if self._stopping.is_set():
                return False
            size = sizes.get(uid, 0)
            if size > settings.max_message_bytes:
                reason = f"{size} bytes is over max_message_bytes ({settings.max_message_bytes})"
                done = await self._give_up(uid, uidvalidity, None, reason)
            else:
                done = await self._take(uid, uidvalidity)
            contiguous = contiguous and done
            if contiguous:
                checkpoint = Checkpoint(uidvalidity, uid)
                await self._save(checkpoint)
        return len(uids) > len(batch)

    async def _take(self, uid: int, uidvalidity: int) -> bool:
        """One message: fetch, commit, move. True when it has left the folder."""
        name = self.settings.name
        try:
            raw = await self._call(self._session.fetch, uid)
        except IMAPClientAbortError:
            raise  # the connection is gone: reconnect
        except IMAPClientError as exc:
            return await self._attempt_failed(uid, uidvalidity, None, f"fetch failed: {exc}")
        if raw is None:
            log.info("IMAP %s: UID %d is gone before it was fetched", name, uid)
            return True
        try:
            contact = await asyncio.to_thread(self._to_contact, raw)
            result = await self._intake.submit(contact)
        except ContactRejectedError as exc:
            return await self._give_up(uid, uidvalidity, raw, f"refused: {exc}")
        except TemporaryIntakeError:
            raise  # the database is down: nothing counts against the message
        except Exception as exc:
            log.exception("IMAP %s: UID %d could not be taken in", name, uid)
            return await self._attempt_failed(uid, uidvalidity, raw, f"{type(exc).__name__}: {exc}")
        await self._move_out(uid, uidvalidity, self.settings.processed_folder)
        log.info(
            "IMAP %s: UID %d (%d bytes) committed as %s%s, moved to %r",
            name,
            uid,
            len(raw),
            result.ticket_ref,
            " (duplicate)" if result.duplicate else "",
            self.settings.processed_folder,
        )
        return True

    async def _attempt_failed(
        self, uid: int, uidvalidity: int, raw: bytes | None, reason: str
    ) -> bool:
        settings = self.settings
        attempts = await self._checkpoints.count_failure(
            settings.name, settings.folder, uidvalidity, uid
        )
        self._failing.add((uidvalidity, uid))
        if attempts < self.settings.max_failures:
            log.warning(
                "IMAP %s: UID %d failed (%d of %d): %s",
                self.settings.name,
                uid,
                attempts,
                self.settings.max_failures,
                reason,
            )
            return False
        return await self._give_up(uid, uidvalidity, raw, f"{reason} (after {attempts} attempts)")

    async def _give_up(self, uid: int, uidvalidity: int, raw: bytes | None, reason: str) -> bool:
        """Keep the message in the quarantine (after commit), then move it to failed_folder."""
        name = self.settings.name
        if raw is not None and self._quarantine is not None:
            receipt = await self._quarantine.keep(raw, source=self.name, reason=reason)
            where = f"quarantine #{receipt.id}"
        else:
            where = "no quarantine"
            log.error(
                "IMAP %s: UID %d is not in any quarantine (%s); it is kept only in %r",
                name,
                uid,
                "none configured" if raw is not None else "it was not fetched",
                self.settings.failed_folder,
            )
        await self._move_out(uid, uidvalidity, self.settings.failed_folder)
        log.warning(
            "IMAP %s: UID %d moved to %r (%s): %s",
            name,
            uid,
            self.settings.failed_folder,
            where,
            reason,
        )
        return True

    def _to_contact(self, raw: bytes) -> Contact:
        settings = self.settings
        return_path = header_field(raw, "return-path")
        contact = contact_from_email(
            raw,
            recipients=(settings.desk_address,),
            envelope_sender=None if return_path is None else return_path.strip("<> "),
            received_at=datetime.now(UTC),
            our_addresses=settings.our_addresses,
            loop_marker=settings.desk_address,
        )
        # Mail that was written to this legacy mailbox (not to the desk address and only
        # journalled here) reached the desk through it: the router records the mailbox's
        # address, and the acknowledgement tells the requester the desk's one address.
        mailbox = settings.username.casefold()
        desk = settings.desk_address.casefold()
        if "@" in mailbox and desk not in contact.visible_recipients:
            contact = replace(contact, recipients=(mailbox,))
        for step in self.steps:
            contact = step(contact)
        return contact

    async def _idle(self) -> None:
        session = self._session
        await self._call(session.idle_start)
        started = time.monotonic()
        lock_checked = started
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                remaining = self.settings.idle_seconds - (now - started)
                if remaining <= 0:
                    return  # re-issue IDLE (a cycle runs first)
                if now - lock_checked >= LOCK_CHECK_SECONDS:
                    lock_checked = now
                    if not await self._lock.held():
                        raise _LockLost
                if await self._call(session.idle_check, min(IDLE_CHECK_SECONDS, remaining)):
                    return
        finally:
            await self._call(session.idle_done)

    # --- helpers -------------------------------------------------------------------------

    async def _move_out(self, uid: int, uidvalidity: int, folder: str) -> None:
        await self._call(self._session.move, uid, folder)
        self._failing.discard((uidvalidity, uid))

    async def _save(self, checkpoint: Checkpoint) -> None:
        await self._checkpoints.save(self.settings.name, self.settings.folder, checkpoint)
        self._checkpoint = checkpoint

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        """Run a session method on this mailbox's own thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def _disconnect(self) -> None:
        try:
            await self._call(self._session.close)
        except RuntimeError:  # executor already shut down
            pass

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
