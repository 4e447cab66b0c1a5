"""``spoc serve`` as a real process: listeners logged, health and readiness, signals, config check.

Every gateway here is ``python -m gateway serve`` in a subprocess with a config written under
``tmp_path`` (the shipped ``config.toml`` with free ports, SQLite in ``tmp_path`` and the outbound
relay at a closed port), except the one test that runs the shipped file untouched on its real
default ports. Every wait is bounded: a gateway that does not come up, or does not stop, fails
the test with the tail of its log instead of hanging it.

The helpers (:class:`ServeProcess`, :func:`start_gateway`, :func:`send_mail`) are shared with
``tests/reliability/test_kill_under_load.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from normalizer.refs import format_ref
from tests.support.services import require_service
from tests.support.sql import query

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = REPO_ROOT / "config.toml"
DESK = "servicedesk@example.com"
HOST = "127.0.0.1"
READY_SECONDS = 30.0
STOP_SECONDS = 30.0
SOCKET_SECONDS = 15.0
_READY_LINE = re.compile(r"spoc ready: SMTP on (\S+):(\d+), HTTP on (\S+):(\d+), database (\w+)")
_QUEUED_AS = re.compile(r"queued as (\S+)")


# --- helpers shared with tests/reliability (kill -9 under load) -----------------------------------


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether a server could bind ``127.0.0.1:port`` now (TIME_WAIT does not count as taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def child_environment() -> dict[str, str]:
    """Our environment without any ``SPOC_*`` setting, and with this checkout importable first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOC_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


def spoc(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one short ``python -m gateway`` command to completion (bounded)."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=cwd,
        env=dict(env) if env is not None else child_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _replace_once(text: str, pattern: str, replacement: str) -> str:
    new, count = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
    assert count == 1, f"the shipped config.toml no longer has a line matching {pattern!r}"
    return new


def write_config(directory: Path, db_url: str, smtp_port: int, http_port: int) -> Path:
    """The shipped config.toml with our ports and database, the relay at a closed port."""
    text = SHIPPED_CONFIG.read_text(encoding="utf-8")
    text = _replace_once(text, r"^http_port = 8080\b", f"http_port = {http_port}")
    text = _replace_once(
        text,
        r'^public_base_url = "http://127.0.0.1:8080"',
        f'public_base_url = "http://{HOST}:{http_port}"',
    )
    text = _replace_once(text, r'^url = "sqlite:///var/spoc.db"', f"url = {json.dumps(db_url)}")
    text = _replace_once(text, r"^port = 2525\b", f"port = {smtp_port}")
    text = _replace_once(text, r"^port = 2526\b", f"port = {free_port()}")
    path = directory / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass(frozen=True, slots=True)
class Ready:
    smtp_port: int
    http_port: int
    dialect: str


class ServeProcess:
    """One ``python -m gateway serve`` child; its stderr goes to a file we can read at any time."""

    def __init__(
        self,
        cwd: Path,
        config: Path | None,
        log_path: Path,
        extra_env: Mapping[str, str] | None = None,
        serve_args: Sequence[str] = (),
    ) -> None:
        self.log_path = log_path
        args = [sys.executable, "-m", "gateway", "serve", *serve_args]
        if config is not None:
            args += ["--config", str(config)]
        with log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                args,
                cwd=cwd,
                env={**child_environment(), **(extra_env or {})},
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the log, with the outbox's retry chatter cut to its last three."""
        all_lines = self.log().splitlines()
        retries = [line for line in all_lines if "gateway.dispatcher" in line]
        others = [line for line in all_lines if "gateway.dispatcher" not in line]
        return "\n".join(others[-lines:] + retries[-3:])

    def wait_ready(self, timeout: float = READY_SECONDS) -> Ready | None:
        """The ports from the ``spoc ready`` line; None when the process exited first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = _READY_LINE.search(self.log())
            if match:
                return Ready(int(match.group(2)), int(match.group(4)), match.group(5))
            if self.process.poll() is not None:
                return None
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"spoc serve was not ready within {timeout:.0f}s; log:\n{self.log_tail()}")

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = STOP_SECONDS) -> int:
        """Send ``sig`` and return the exit code; fails (and kills) if it does not exit in time."""
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"spoc serve did not exit within {timeout:.0f}s of {sig.name}:\n"
                        f"{self.log_tail()}")  # fmt: skip

    def kill(self) -> None:
        """SIGKILL, then reap (bounded)."""
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:  # pragma: no cover - the kernel did not reap a SIGKILL
            pass


@dataclass(frozen=True, slots=True)
class Gateway:
    process: ServeProcess
    ready: Ready
    config: Path


def start_gateway(
    directory: Path,
    db_url: str,
    attempts: int = 3,
    extra_env: Mapping[str, str] | None = None,
    serve_args: Sequence[str] = (),
) -> Gateway:
    """Start ``spoc serve`` on free ports; picks new ones if another process took them first.
    ``extra_env`` is set for the child on top of :func:`child_environment` (a token, say);
    ``serve_args`` follow ``serve`` (``--workers 2``)."""
    directory.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, attempts + 1):
        config = write_config(directory, db_url, free_port(), free_port())
        log_path = directory / f"serve-{time.monotonic_ns()}.log"
        process = ServeProcess(directory, config, log_path, extra_env, serve_args)
        ready = process.wait_ready()
        if ready is not None:
            return Gateway(process, ready, config)
        process.kill()
        if "address already in use" not in process.log().lower() or attempt == attempts:
            pytest.fail(
                f"spoc serve exited with {process.process.returncode} before it was ready:\n"
                f"{process.log_tail()}"
            )
    raise AssertionError("unreachable")  # pragma: no cover


@pytest.fixture
def running_gateways() -> Iterator[list[Gateway]]:
    """Gateways a test registers here are killed at teardown if the test left them running."""
    started: list[Gateway] = []
    yield started
    for gateway in started:
        gateway.process.kill()


def http_get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=SOCKET_SECONDS) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def build_message(key: str, sender: str, message_id: str | None, body: str = "") -> bytes:
    """A small plain-text message whose subject carries ``key``."""
    headers = [
        f"From: {sender}",
        f"To: {DESK}",
        f"Subject: {key}",
        "Date: Sun, 22 Nov 2026 15:00:00 +0000",
    ]
    if message_id is not None:
        headers.append(f"Message-ID: <{message_id}>")
    headers += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    text = body or f"My laptop does not boot ({key})."
    return ("\r\n".join(headers) + "\r\n\r\n" + text + "\r\n").encode("utf-8")


def ref_from_reply(reply: bytes) -> str:
    match = _QUEUED_AS.search(reply.decode("ascii", "replace"))
    assert match, f"a 250 without a ticket ref: {reply!r}"
    return match.group(1)


def send_mail(smtp: smtplib.SMTP, sender: str, raw: bytes) -> tuple[int, bytes]:
    """MAIL, RCPT, DATA on an open session; the final reply (``rset`` after a refusal)."""
    smtp.ehlo_or_helo_if_needed()
    code, reply = smtp.mail(sender)
    if code == 250:
        code, reply = smtp.rcpt(DESK)
    if code == 250:
        code, reply = smtp.data(raw)
    if code != 250:
        smtp.rset()
    return code, reply


def inbound_contacts(db_url: str) -> list[tuple[str, str, int]]:
    """``(external_id, subject, ticket_id)`` of every inbound email contact in the database."""
    rows = query(
        db_url,
        "SELECT external_id, subject, ticket_id FROM contacts "
        "WHERE channel = 'email' AND direction = 'in'",
    )
    return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]


# --- tests --------------------------------------------------------------------------------------


def test_serve_logs_each_listener_and_answers_health_and_readiness(
    tmp_path: Path, running_gateways: list[Gateway]
) -> None:
    gateway = start_gateway(tmp_path, f"sqlite:///{tmp_path / 'spoc.db'}")
    running_gateways.append(gateway)
    ports = gateway.ready

    log = gateway.process.log()
    assert f"SMTP listening on {HOST}:{ports.smtp_port}" in log
    assert f"HTTP listening on http://{HOST}:{ports.http_port}/" in log
    assert ports.dialect == "sqlite"
    status, body = http_get(ports.http_port, "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, _ = http_get(ports.http_port, "/readyz")
    assert status == 200
    with smtplib.SMTP(HOST, ports.smtp_port, timeout=SOCKET_SECONDS) as smtp:
        code, _ = smtp.ehlo("client.example.org")
        assert code == 250
    assert gateway.process.stop(signal.SIGTERM) == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_exits_zero_and_stops_listening_on_a_stop_signal(
    tmp_path: Path, running_gateways: list[Gateway], sig: signal.Signals
) -> None:
    gateway = start_gateway(tmp_path, f"sqlite:///{tmp_path / 'spoc.db'}")
    running_gateways.append(gateway)

    assert gateway.process.stop(sig) == 0
    log = gateway.process.log()
    assert "signal received: stopping" in log
    assert "spoc stopped" in log
    assert "Traceback" not in log
    with pytest.raises(OSError):
        socket.create_connection((HOST, gateway.ready.smtp_port), timeout=SOCKET_SECONDS).close()


def test_sigterm_right_after_concurrent_data_keeps_every_acknowledged_message(
    tmp_path: Path, running_gateways: list[Gateway]
) -> None:
    db_url = f"sqlite:///{tmp_path / 'spoc.db'}"
    gateway = start_gateway(tmp_path, db_url)
    running_gateways.append(gateway)
    clients, earlier = 8, 3
    # The last message of each client is big enough to be parsed off the loop: still in flight.
    big_body = "The attached log says the disk is failing.\r\n" * 12_000
    all_sent = threading.Barrier(clients + 1, timeout=SOCKET_SECONDS)
    acked: dict[str, str] = {}
    final_replies: dict[str, tuple[int, bytes] | BaseException] = {}
    errors: list[BaseException] = []

    def client(n: int) -> None:
        try:
            last_message(n)
        except BaseException as exc:  # surfaced by the test thread below
            errors.append(exc)
            all_sent.abort()

    def last_message(n: int) -> None:
        sender = f"user{n}@example.org"
        smtp = smtplib.SMTP(HOST, gateway.ready.smtp_port, timeout=SOCKET_SECONDS)
        try:
            for i in range(earlier):
                key = f"shutdown c{n} m{i}"
                code, reply = send_mail(smtp, sender, build_message(key, sender, f"c{n}.m{i}@t"))
                assert code == 250, reply
                acked[key] = ref_from_reply(reply)
            key = f"shutdown c{n} last"
            raw = build_message(key, sender, f"c{n}.last@t", big_body)
            assert smtp.mail(sender)[0] == 250
            assert smtp.rcpt(DESK)[0] == 250
            smtp.putcmd("data")
            assert smtp.getreply()[0] == 354
            smtp.send(raw + b".\r\n")  # the whole DATA, final dot included, is on the wire
            all_sent.wait()
            try:
                code, reply = smtp.getreply()
            except (smtplib.SMTPException, OSError) as exc:
                final_replies[key] = exc
                return
            final_replies[key] = (code, reply)
            if code == 250:
                acked[key] = ref_from_reply(reply)
        finally:
            smtp.close()  # no QUIT: the gateway may already have said 421 and hung up

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    try:
        all_sent.wait()
    except threading.BrokenBarrierError:
        pytest.fail(f"a client failed before its last DATA: {errors!r}")
    exit_code = gateway.process.stop(signal.SIGTERM)
    for thread in threads:
        thread.join(timeout=SOCKET_SECONDS * 2)
        assert not thread.is_alive(), "an SMTP client hung after SIGTERM"

    assert exit_code == 0, gateway.process.log_tail()
    assert not errors
    assert len(final_replies) == clients
    for reply in final_replies.values():  # each last message: committed, or refused for now
        assert isinstance(reply, BaseException) or reply[0] in (250, 421), reply
    assert len(acked) >= clients * earlier
    stored = {subject: format_ref("SD", ticket) for _, subject, ticket in inbound_contacts(db_url)}
    for key, ref in acked.items():
        assert stored.get(key) == ref, f"{key!r} got 250 {ref} but is not stored under it"

    listing = spoc("tickets", "list", "--json", "--limit", "100", "--config", str(gateway.config),
                   cwd=tmp_path)  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    assert set(acked.values()) <= {t["ref"] for t in json.loads(listing.stdout)["tickets"]}


def test_check_config_accepts_the_shipped_config(tmp_path: Path) -> None:
    result = spoc("check-config", "--config", str(SHIPPED_CONFIG), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "config OK" in result.stdout


@pytest.mark.parametrize(
    ("pattern", "replacement", "key"),
    [
        (r"^port = 2525\b", 'port = "twenty-five"', "smtp.port"),
        (r"^http_port = 8080\b", "http_port = 70000", "server.http_port"),
        (r'^prefix = "SD"', "prefix = 7", "tickets.prefix"),
    ],
    ids=["smtp-port-not-a-number", "http-port-out-of-range", "prefix-not-a-string"],
)
def test_check_config_exits_2_naming_the_broken_key(
    tmp_path: Path, pattern: str, replacement: str, key: str
) -> None:
    broken = _replace_once(SHIPPED_CONFIG.read_text(encoding="utf-8"), pattern, replacement)
    path = tmp_path / "config.toml"
    path.write_text(broken, encoding="utf-8")

    result = spoc("check-config", "--config", str(path), cwd=tmp_path)

    assert result.returncode == 2
    assert any(line.startswith(f"{key}:") for line in result.stderr.splitlines()), result.stderr


def test_serve_runs_with_the_shipped_config_and_nothing_else(
    tmp_path: Path, running_gateways: list[Gateway]
) -> None:
    taken = [port for port in (2525, 8080) if not port_is_free(port)]
    if taken:
        require_service(f"the shipped default port(s) {taken} are already in use on {HOST}")
    shutil.copy(SHIPPED_CONFIG, tmp_path / "config.toml")

    process = ServeProcess(tmp_path, None, tmp_path / "serve.log")
    ready = process.wait_ready()
    if ready is None:
        pytest.fail(f"spoc serve with the shipped config exited {process.process.returncode}:\n"
                    f"{process.log_tail()}")  # fmt: skip
    running_gateways.append(Gateway(process, ready, tmp_path / "config.toml"))

    assert (ready.smtp_port, ready.http_port, ready.dialect) == (2525, 8080, "sqlite")
    assert (tmp_path / "var" / "spoc.db").is_file()
    assert http_get(8080, "/readyz")[0] == 200
    with smtplib.SMTP(HOST, 2525, timeout=SOCKET_SECONDS) as smtp:
        raw = build_message("shipped config", "someone@example.org", "shipped.config@t")
        code, reply = send_mail(smtp, "someone@example.org", raw)
    assert code == 250, reply
    assert process.stop(signal.SIGTERM) == 0


def _raw_exchange(port: int, payload: bytes, greeting: bool) -> bytes:
    with socket.create_connection((HOST, port), timeout=SOCKET_SECONDS) as conn:
        if greeting:
            conn.recv(1024)
        conn.sendall(payload)
        try:
            return conn.recv(4096)
        except TimeoutError:
            return b""


def test_client_input_reaches_the_log_escaped_and_client_errors_are_no_errors(
    tmp_path: Path, running_gateways: list[Gateway]
) -> None:
    gateway = start_gateway(tmp_path, f"sqlite:///{tmp_path / 'spoc.db'}")
    running_gateways.append(gateway)
    ports = gateway.ready

    # aiosmtpd logs an unrecognised command as it arrived: ESC and a CR-forged line.
    reply = _raw_exchange(
        ports.smtp_port, b"\x1b[2JXYZZY\rINFO gateway: all good\r\nQUIT\r\n", greeting=True
    )
    assert reply.startswith(b"500")
    # An 8 KB+ request line and a header with bad bytes: the client's error, answered 400.
    long_url = b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    bad_header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: \x01\x02\r\n\r\n"
    for payload in (long_url, bad_header):
        answer = _raw_exchange(ports.http_port, payload, greeting=False)
        assert answer.split(b" ", 2)[1] == b"400", answer[:100]
    status, _ = http_get(ports.http_port, "/healthz")  # a real request, so the log has caught up
    assert status == 200
    assert gateway.process.stop(signal.SIGTERM) == 0

    log = gateway.process.log()
    assert "\x1b" not in log and "\r" not in log
    assert "unrecognised: \\x1b[2JXYZZY\\rINFO" in log
    assert " ERROR " not in log and "Traceback" not in log, log
    assert log.count("refused a malformed HTTP request (400)") == 2, log
