"""Many concurrent 25 MB messages against a real ``spoc serve``: memory stays within the budget.

Each client thread sends one 25 MB mail (a base64 attachment) over smtplib and, when it is
answered ``451`` (the ``[smtp] max_inflight_bytes`` budget is spent), waits a moment and sends it
again, until it is answered ``250``. Half the clients declare ``SIZE=`` with MAIL FROM and are
refused at DATA; the others are refused after the final dot, their bytes read and dropped.

Then: every message is answered ``250`` in the end and stored once with its exact bytes; some
were answered ``451`` first (the budget was reached); no other reply came; and the server's
peak RSS (``VmHWM``, reset after a warm-up) grew by at most ``MEMORY_PER_BUDGET_BYTE`` times
the budget plus a fixed margin. Without the budget every message arriving at once would be
held at once, about twice its size each (``bench/smtp_memory.py``).

CI sends 10 messages; ``SPOC_RELIABILITY_FULL=1`` sends the issue's 100.
"""

from __future__ import annotations

import base64
import concurrent.futures
import functools
import hashlib
import random
import smtplib
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.test_serve_process import ServeProcess, free_port
from tests.reliability.counts import scaled

pytestmark = pytest.mark.reliability

MESSAGES = scaled(10, 100)
MESSAGE_BYTES = 25_000_000
BUDGET = 4 * 26_214_400  # the default: four messages of the default max_message_bytes
MEMORY_PER_BUDGET_BYTE = 3  # bench/smtp_memory.py: one message peaks below 3x its size
MARGIN = 96 * 1024 * 1024  # interpreter, allocator slack, SQLite caches
DESK = "servicedesk@example.com"
DEADLINE_SECONDS = scaled(300, 1500)


@functools.cache
def attachment_body() -> bytes:
    """The base64 body every message carries (one copy for all clients; heads differ)."""
    raw_len = ((MESSAGE_BYTES - 600) * 57 // 78) // 3 * 3
    return base64.encodebytes(random.Random(12).randbytes(raw_len)).replace(b"\n", b"\r\n")


def message_pieces(index: int) -> tuple[bytes, bytes, bytes]:
    """A message of about 25 MB as head, body and tail: sent and hashed without joining them.
    No line starts with a dot, so nothing needs dot-stuffing."""
    head = (
        f"From: Sender {index} <sender{index}@example.org>\r\nTo: {DESK}\r\n"
        f"Subject: big {index}\r\nMessage-ID: <big-{index}@reliability.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
        "--B\r\nContent-Type: text/plain\r\n\r\nLogs attached.\r\n"
        "--B\r\nContent-Type: application/octet-stream\r\n"
        'Content-Disposition: attachment; filename="logs.bin"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode()
    return head, attachment_body(), b"\r\n--B--\r\n"


def message_digest(index: int) -> str:
    digest = hashlib.sha256()
    for piece in message_pieces(index):
        digest.update(piece)
    return digest.hexdigest()


@dataclass
class Outcome:
    replies: list[int] = field(default_factory=list)


def send_once(port: int, index: int) -> int:
    """One transaction; the reply to DATA (or to the message, once sent)."""
    pieces = message_pieces(index)
    size = sum(len(p) for p in pieces)
    # Half declare SIZE= and are refused at DATA when the budget has no room; the others are
    # refused after the final dot, their bytes read and dropped.
    declared = f" SIZE={size}" if index % 2 else ""
    with smtplib.SMTP("127.0.0.1", port, timeout=300) as client:
        client.ehlo("client.test")
        client.docmd("MAIL", f"FROM:<sender{index}@example.org>{declared}")
        client.docmd("RCPT", f"TO:<{DESK}>")
        code, _ = client.docmd("DATA")
        if code != 354:
            return code
        assert client.sock is not None
        for piece in pieces:  # in 1 MiB sends: sendall's timeout is for the whole call, and
            view = memoryview(piece)  # 100 sessions share the server's reading
            for start in range(0, len(view), 1 << 20):
                client.sock.sendall(view[start : start + (1 << 20)])
        client.sock.sendall(b".\r\n")
        code, _ = client.getreply()
        return code


def send_until_accepted(port: int, index: int, deadline: float) -> Outcome:
    outcome = Outcome()
    rng = random.Random(index)
    while time.monotonic() < deadline:
        code = send_once(port, index)
        outcome.replies.append(code)
        if code != 451:
            return outcome
        time.sleep(rng.uniform(0.2, 1.0))
    return outcome


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def write_config(directory: Path, db: Path) -> Path:
    path = directory / "config.toml"
    path.write_text(
        f"""[server]
http_host = "127.0.0.1"
http_port = {free_port()}
[database]
url = "sqlite:///{db}"
[email]
address = "{DESK}"
[smtp]
host = "127.0.0.1"
port = {free_port()}
max_inflight_bytes = {BUDGET}
[acks]
enabled = false
""",
        encoding="utf-8",
    )
    return path


def stored_digests(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT external_id, raw FROM contacts WHERE channel = 'email'")
        return {str(mid): hashlib.sha256(raw).hexdigest() for mid, raw in rows}


@pytest.mark.timeout(DEADLINE_SECONDS + 120)
def test_concurrent_big_messages_stay_within_the_memory_budget_and_none_is_lost(
    tmp_path: Path,
) -> None:
    db = tmp_path / "spoc.db"
    server = ServeProcess(tmp_path, write_config(tmp_path, db), tmp_path / "serve.log")
    try:
        ready = server.wait_ready()
        assert ready is not None, server.log_tail()
        warm_up = send_until_accepted(ready.smtp_port, 10_000, time.monotonic() + 60)
        assert warm_up.replies[-1] == 250
        time.sleep(0.5)
        Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS now
        idle = status_kib(server.pid, "VmRSS") * 1024
        deadline = time.monotonic() + DEADLINE_SECONDS
        with concurrent.futures.ThreadPoolExecutor(MESSAGES) as pool:
            outcomes = list(
                pool.map(
                    lambda i: send_until_accepted(ready.smtp_port, i, deadline), range(MESSAGES)
                )
            )
        peak = status_kib(server.pid, "VmHWM") * 1024
    finally:
        server.stop()
    growth = peak - idle
    bound = MEMORY_PER_BUDGET_BYTE * BUDGET + MARGIN
    retried = sum(1 for o in outcomes if len(o.replies) > 1)
    print(
        f"{MESSAGES} x {MESSAGE_BYTES / 1e6:.0f} MB: peak RSS growth {growth / 2**20:.0f} MiB "
        f"(bound {bound / 2**20:.0f} MiB, budget {BUDGET / 2**20:.0f} MiB); "
        f"{retried} message(s) answered 451 before their 250"
    )
    finals = [o.replies[-1] for o in outcomes]
    assert finals == [250] * MESSAGES, f"not all accepted in time: {finals}"
    every_reply = {code for o in outcomes for code in o.replies}
    assert every_reply == {250, 451}, f"replies seen: {every_reply} (451 proves the budget held)"
    stored = stored_digests(db)
    for index in range(MESSAGES):
        digest = message_digest(index)
        assert stored.get(f"big-{index}@reliability.test") == digest, f"message {index}"
    assert growth <= bound, (
        f"peak RSS grew {growth / 2**20:.0f} MiB for {MESSAGES} messages, "
        f"bound {bound / 2**20:.0f} MiB"
    )
