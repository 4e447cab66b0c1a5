"""SMTP load for the reliability suite: the mails, the clients that send them over real
sessions, what they saw, and the duplicate check on the database afterwards."""

from __future__ import annotations

import smtplib
import threading
from dataclasses import dataclass

from tests.integration.test_serve_process import HOST, SOCKET_SECONDS, ref_from_reply, send_mail
from tests.support.sql import query


@dataclass(frozen=True, slots=True)
class Mail:
    key: str  # also the Subject, unique per message
    sender: str
    message_id: str | None
    raw: bytes


class Acks:
    """What the clients saw: ticket refs of the 250s, and anything unexpected."""

    def __init__(self) -> None:
        self.refs: dict[str, str] = {}
        self.refusals: dict[str, tuple[int, bytes]] = {}
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()

    def record(self, mail: Mail, code: int, reply: bytes) -> None:
        with self._lock:
            if code == 250:
                self.refs[mail.key] = ref_from_reply(reply)
            else:
                self.refusals[mail.key] = (code, reply)

    def count(self) -> int:
        with self._lock:
            return len(self.refs)


def send_each(port: int, mails: list[Mail], acks: Acks) -> None:
    """One session, every mail in turn; a broken connection ends the client (not acknowledged)."""
    try:
        smtp = smtplib.SMTP(HOST, port, timeout=SOCKET_SECONDS)
    except OSError as exc:
        acks.errors.append(exc)
        return
    try:
        for mail in mails:
            code, reply = send_mail(smtp, mail.sender, mail.raw)
            acks.record(mail, code, reply)
    except (smtplib.SMTPException, OSError) as exc:
        acks.errors.append(exc)
    finally:
        smtp.close()


def duplicate_keys(db_url: str) -> list[tuple[str, str, int]]:
    rows = query(
        db_url,
        "SELECT channel, external_id, count(*) FROM contacts "
        "GROUP BY channel, external_id HAVING count(*) > 1",
    )
    return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]
