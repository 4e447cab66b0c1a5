"""The only code that speaks IMAP: one blocking ``imapclient`` connection to one mailbox.

:class:`MailboxSession` is confined to one worker thread (the channel runs every call on its
mailbox's single-thread executor); nothing in it touches the event loop. It knows how to log
in (TLS, STARTTLS or plain), find the messages above a UID, fetch one without marking it read
(``BODY.PEEK[]``), move it to a folder (``MOVE``; else ``COPY`` + ``\\Deleted`` + ``UID
EXPUNGE``) and wait in ``IDLE``.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from dataclasses import dataclass
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

log = logging.getLogger(__name__)

# Untagged responses that mean "something arrived or went": worth a cycle.
_ACTIVITY = frozenset({b"EXISTS", b"RECENT", b"EXPUNGE", b"FETCH"})


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """Where and how to log in; ``password`` never appears in ``repr``."""

    host: str
    port: int
    tls: bool
    starttls: bool
    username: str
    password: str
    ca_file: str | None
    timeout_seconds: float

    def __repr__(self) -> str:
        return f"ServerAddress({self.username}@{self.host}:{self.port})"


class MailboxSession:
    """One logged-in connection with ``folder`` selected. Not thread-safe: one thread only."""

    def __init__(self, server: ServerAddress, folder: str, other_folders: tuple[str, ...]) -> None:
        self._server = server
        self._folder = folder
        self._other_folders = other_folders
        self._imap: IMAPClient | None = None
        self._idling = False

    def _ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self._server.ca_file)

    @property
    def _client(self) -> IMAPClient:
        if self._imap is None:
            raise IMAPClientError("not connected")
        return self._imap

    def open(self) -> None:
        """Connect, log in and make sure the destination folders exist."""
        self.close()
        server = self._server
        imap = IMAPClient(
            server.host,
            port=server.port,
            ssl=server.tls,
            ssl_context=self._ssl_context() if server.tls else None,
            timeout=server.timeout_seconds,
        )
        try:
            if server.starttls:
                imap.starttls(self._ssl_context())
            imap.login(server.username, server.password)
            for folder in self._other_folders:
                if not imap.folder_exists(folder):
                    imap.create_folder(folder)
                    log.info("IMAP %s: created folder %r", server.username, folder)
        except BaseException:
            with contextlib.suppress(Exception):
                imap.shutdown()
            raise
        self._imap = imap

    def select(self) -> int:
        """Select the watched folder (again); returns its UIDVALIDITY."""
        info = self._client.select_folder(self._folder)
        # SELECT's own count is in ``info``; an EXISTS from here on is the server announcing
        # mail that arrived since (:meth:`arrived_meanwhile`).
        self._announced().pop("EXISTS", None)
        return int(info[b"UIDVALIDITY"])

    def arrived_meanwhile(self) -> bool:
        """Whether the server announced new mail (an untagged EXISTS) in an answer to one of
        our commands since the last SELECT, and forget it.

        Mail that arrives while a cycle runs, after its SEARCH, is announced at the end of a
        later command (SEARCH, FETCH, MOVE), and IDLE does not announce it again: without this
        look it waited for the next IDLE renewal (``idle_seconds``, 9 minutes by default).
        """
        return self._announced().pop("EXISTS", None) is not None

    def _announced(self) -> dict[str, list[Any]]:
        # imaplib keeps here the untagged responses no command took (imapclient's commands take
        # only their own, e.g. SEARCH's); imapclient has no public accessor for them.
        responses: dict[str, list[Any]] = self._client._imap.untagged_responses
        return responses

    def pending(self, after_uid: int) -> list[int]:
        """UIDs above ``after_uid`` still waiting (not flagged deleted), oldest first.

        ``UID n:*`` always matches the folder's last message, even when its UID is below ``n``
        (RFC 3501: ``*`` is the largest UID in use), so the answer is filtered here.
        """
        uids = self._client.search(["UID", f"{after_uid + 1}:*", "UNDELETED"])
        return sorted(uid for uid in uids if uid > after_uid)

    def sizes(self, uids: list[int]) -> dict[int, int]:
        """``RFC822.SIZE`` of each message (one FETCH), to refuse huge ones before fetching."""
        if not uids:
            return {}
        answer = self._client.fetch(uids, ["RFC822.SIZE"])
        return {uid: int(data.get(b"RFC822.SIZE", 0)) for uid, data in answer.items()}

    def fetch(self, uid: int) -> bytes | None:
        """The message's raw bytes, leaving ``\\Seen`` alone; None when it is gone meanwhile."""
        answer = self._client.fetch([uid], ["BODY.PEEK[]"])
        data = answer.get(uid, {}).get(b"BODY[]")
        return data if isinstance(data, bytes) else None

    def move(self, uid: int, folder: str) -> None:
        """Move one message out of the watched folder into ``folder``."""
        imap = self._client
        if imap.has_capability("MOVE"):
            imap.move([uid], folder)
            return
        imap.copy([uid], folder)
        imap.add_flags([uid], [b"\\Deleted"], silent=True)
        if imap.has_capability("UIDPLUS"):
            imap.uid_expunge([uid])
        # Without UIDPLUS the message stays, flagged \Deleted: ``pending`` skips it, and the
        # next EXPUNGE by anyone (or the server's own cleanup) removes it.

    def supports_idle(self) -> bool:
        return bool(self._client.has_capability("IDLE"))

    def idle_start(self) -> None:
        self._client.idle()
        self._idling = True

    def idle_check(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds in IDLE; True when the folder changed."""
        responses = self._client.idle_check(timeout=timeout)
        return any(len(r) > 1 and r[1] in _ACTIVITY for r in responses)

    def idle_done(self) -> None:
        if self._idling:
            self._idling = False
            self._client.idle_done()

    def close(self) -> None:
        """End IDLE, log out and close; never raises (the connection may be dead already)."""
        imap, self._imap = self._imap, None
        if imap is None:
            return
        if self._idling:
            self._idling = False
            with contextlib.suppress(Exception):
                imap.idle_done()
        try:
            imap.logout()
        except Exception:
            with contextlib.suppress(Exception):
                imap.shutdown()
