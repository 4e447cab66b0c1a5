"""kill -9 while forwards are in flight: every event is delivered after a restart, and a
receiver that de-duplicates on ``webhook-id`` sees each event once.

``spoc serve`` runs as a child process with a webhook target. The receiver (a threaded HTTP
server, verifying Standard Webhooks signatures with its own HMAC code) records each delivery
and then does not answer, so the first event is *sent but not marked done* when the child is
SIGKILLed, and the events queued behind it are *committed but not sent*. A second child on
the same database takes the first one again once its lease (10 s) runs out, and sends the
others.
"""

from __future__ import annotations

import smtplib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa

from router.schema import outbox
from tests.fakes.webhook_receiver import SECRET, verify
from tests.integration.test_serve_process import (
    HOST,
    SOCKET_SECONDS,
    ServeProcess,
    _replace_once,
    build_message,
    free_port,
    ref_from_reply,
    send_mail,
    write_config,
)
from tests.support.sql import query

EVENTS = 3


class Receiver:
    def __init__(self) -> None:
        self.deliveries: list[str] = []  # webhook-id of each verified delivery, in order
        self.answer = threading.Event()  # unset: record, then hang (the sender never hears)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if not verify(SECRET, self.headers, body):
                    self.send_response(401)
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.deliveries.append(self.headers["webhook-id"])
                receiver.answer.wait(60)
                try:
                    self.send_response(204)
                    self.end_headers()
                except OSError:  # the sender was killed meanwhile
                    pass

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.server_address[1]}/spoc"

    def close(self) -> None:
        self.answer.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    fake = Receiver()
    yield fake
    fake.close()


def _wait(condition, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _start(directory: Path, db_url: str, receiver: Receiver, n: int) -> tuple[ServeProcess, int]:
    config = write_config(directory, db_url, free_port(), free_port())
    text = config.read_text(encoding="utf-8")
    text = _replace_once(
        text, r"^poll_interval_seconds = 1.0", "poll_interval_seconds = 0.2\nlease_seconds = 10.0"
    )
    text += (
        f'\n[[forward]]\nname = "crash-hook"\nkind = "webhook"\nurl = "{receiver.url}"\n'
        "allow_private_network = true\n"
    )
    config.write_text(text, encoding="utf-8")
    env = {"SPOC_FORWARD_CRASH_HOOK_SECRET": SECRET}
    process = ServeProcess(directory, config, directory / f"serve-{n}.log", env)
    ready = process.wait_ready()
    assert ready is not None, process.log_tail()
    return process, ready.smtp_port


def _forwards_pending(db_url: str) -> int:
    [(pending,)] = query(
        db_url,
        sa.select(sa.func.count())
        .select_from(outbox)
        .where(outbox.c.kind.like("forward.%"), outbox.c.status != "done"),
    )
    return int(pending)


@pytest.mark.slow
def test_kill_between_send_and_done_and_before_send_still_delivers_each_event_once(
    tmp_path: Path, db_url: str, receiver: Receiver
) -> None:
    if not db_url.startswith("sqlite"):
        from gateway.migrate import upgrade

        upgrade(db_url)
    first, smtp_port = _start(tmp_path, db_url, receiver, 1)
    refs = []
    try:
        with smtplib.SMTP(HOST, smtp_port, timeout=SOCKET_SECONDS) as smtp:
            for i in range(EVENTS):
                raw = build_message(f"crash forward {i}", f"user{i}@example.org", f"cf{i}@x.org")
                code, reply = send_mail(smtp, f"user{i}@example.org", raw)
                assert code == 250, reply
                refs.append(ref_from_reply(reply))
        _wait(lambda: receiver.deliveries, 20, "the first delivery to arrive")
    finally:
        first.kill()  # SIGKILL: the first event was sent, nothing was marked done
    sent_before_kill = list(receiver.deliveries)
    receiver.answer.set()

    second, _ = _start(tmp_path, db_url, receiver, 2)
    expected = {f"forward:crash-hook:{ref}:created" for ref in refs}
    try:
        _wait(lambda: _forwards_pending(db_url) == 0, 40, "every forward to be marked done")
    finally:
        second.stop()

    assert len(sent_before_kill) < EVENTS  # some events were still only committed
    assert set(receiver.deliveries) == expected  # everything arrived, nothing else
    assert len(receiver.deliveries) > EVENTS  # the one in flight was sent again ...
    assert len(set(receiver.deliveries)) == EVENTS  # ... and de-duplicates to one per event
