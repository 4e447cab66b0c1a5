"""One IMAP poller as a process of its own, for the kill -9 tests (test_imap_crash.py).

``python -m tests.integration.imap_poller_child DB_URL PORT USER PASSWORD STAGE`` polls INBOX
of USER on the Dovecot at 127.0.0.1:PORT into DB_URL with the real router, exactly as
``spoc serve`` wires it. STAGE says where it stops dead, printing ``PAUSED <stage>`` and then
waiting for the SIGKILL the test sends:

``fetched``    the first message is fetched and converted, nothing committed yet
``committed``  its contact is committed, the message not yet moved
``moved``      it is moved to the processed folder, the checkpoint not yet saved
``none``       never: poll until SIGTERM, then stop cleanly (exit 0)
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from channels.imap import IMAPChannel
from gateway.config.sections import ImapMailbox
from gateway.migrate import upgrade
from gateway.serve import imap_mailbox_settings
from normalizer.contact import Contact
from normalizer.intake import IntakeResult
from normalizer.mailbox import Checkpoint
from router.mailboxes import MailboxCheckpoints, poller_lock
from router.router import Router
from router.store import Store
from tests.integration.imap_support import ROUTER_SETTINGS


async def pause(stage: str) -> None:
    print(f"PAUSED {stage}", flush=True)
    await asyncio.Event().wait()  # until SIGKILL


class PausingIntake:
    def __init__(self, router: Router, stage: str) -> None:
        self.router, self.stage = router, stage

    async def submit(self, contact: Contact) -> IntakeResult:
        if self.stage == "fetched":
            await pause(self.stage)
        result = await self.router.submit(contact)
        if self.stage == "committed":
            await pause(self.stage)
        return result


class PausingCheckpoints(MailboxCheckpoints):
    def __init__(self, store: Store, stage: str) -> None:
        super().__init__(store)
        self.stage = stage

    async def save(self, mailbox: str, folder: str, checkpoint: Checkpoint) -> None:
        if self.stage == "moved" and checkpoint.last_uid > 0:
            await pause(self.stage)
        await super().save(mailbox, folder, checkpoint)


async def main(db_url: str, port: int, user: str, password: str, stage: str) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    upgrade(db_url)
    store = Store.from_url(db_url)
    await store.start()
    mailbox = ImapMailbox(
        name=user,
        host="127.0.0.1",
        port=port,
        tls=False,
        username=user,
        poll_interval_seconds=0.2,
        reconnect_max_seconds=1.0,
    )
    channel = IMAPChannel(
        imap_mailbox_settings(mailbox, password, ROUTER_SETTINGS),
        PausingIntake(Router(store, ROUTER_SETTINGS), stage),
        PausingCheckpoints(store, stage),
        poller_lock(store, user),
        quarantine=None,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await channel.start()
    print("STARTED", flush=True)
    await stop.wait()
    await channel.stop(grace_seconds=10)
    await store.close()
    print("STOPPED", flush=True)
    return 0


if __name__ == "__main__":
    db, port_text, username, secret, where = sys.argv[1:6]
    sys.exit(asyncio.run(main(db, int(port_text), username, secret, where)))
