"""Inbound IMAP: existing mailboxes (``[[imap]]``) polled into the desk like mail sent to it.

What it does
    One :class:`IMAPChannel` per ``[[imap]]`` table. It logs in (TLS, STARTTLS or plain),
    selects ``folder`` and takes in every message above its checkpoint, oldest first: fetch
    with ``BODY.PEEK[]`` (nothing is marked read), convert with
    ``normalizer.email.contact_from_email`` as sent to the desk address (or to the mailbox's own
    address, a legacy one, when that is where it was written), commit through the
    intake, and only then move it to ``processed_folder`` (``MOVE``; without it ``COPY`` +
    ``\\Deleted`` + ``UID EXPUNGE``). Then it waits in ``IDLE`` (re-issued every
    ``idle_seconds``, at most 10 minutes) or, where the server has no IDLE, polls every
    ``poll_interval_seconds``. All IMAP runs on one worker thread per mailbox
    (:class:`~channels.imap.session.MailboxSession`); the event loop never blocks.

Config keys (:class:`IMAPMailboxSettings`)
    ``name``, ``host``, ``port``, ``tls`` (implicit TLS, port 993), ``starttls``, ``ca_file``
    (a private CA), ``username``, ``folder``, ``processed_folder``, ``failed_folder`` (both
    created if missing), ``poll_interval_seconds``, ``idle_seconds``,
    ``max_messages_per_cycle``, ``max_failures``, ``max_message_bytes`` (bigger messages go
    to ``failed_folder`` unfetched), ``reconnect_max_seconds`` (the cap of the
    doubling reconnect delay), ``timeout_seconds`` (socket). The password comes from
    ``SPOC_IMAP_<NAME>_PASSWORD`` or ``SPOC_IMAP_PASSWORD``; without one the gateway does not
    start this mailbox and logs why.

Checkpoints
    Per mailbox and folder, UIDVALIDITY and the last UID taken in (``router.mailboxes``),
    advanced only past messages that are committed and moved. ``UID n:*`` also answers the
    folder's last message when its UID is below n; such UIDs are ignored. A changed
    UIDVALIDITY takes the folder in again from UID 1: what was committed before is
    recognised by its Message-ID and only moved.

Failures
    A message the intake refuses for good (``ContactRejectedError``) is kept in the quarantine
    and moved to ``failed_folder`` at once; one that fails otherwise ``max_failures`` times in
    a row likewise (counted in the database, ``Checkpoints.count_failure``, whichever gateway
    made the attempts). The messages behind it go on meanwhile. A database outage
    (``TemporaryIntakeError``) counts against no message: the poller backs off and retries.

One poller per mailbox
    A ``PollerLock`` (PostgreSQL advisory lock; a file lock beside a SQLite database) keeps
    other gateways on the same database off a mailbox that one of them polls. They try it
    every ``LOCK_RETRY_SECONDS`` (5 s) and take the mailbox over when its poller dies.

Idempotency key
    The Message-ID (``(channel email, external_id)``), shared with SMTP: a message that came by
    SMTP and again through a journal mailbox is one contact. Without a Message-ID the
    synthetic id hashes the message without its trace fields (``normalizer.delivery``), the
    same on both paths. A kill -9 between fetch, commit and move leaves the message in
    ``folder``; the next run finds it committed (a duplicate) and moves it.
"""

from channels.imap.channel import IMAPChannel, IMAPMailboxSettings

__all__ = ["IMAPChannel", "IMAPMailboxSettings"]
