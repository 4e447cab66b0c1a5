"""STARTTLS on the desk's own SMTP listener, against a real gateway and real TLS clients.

Each test makes a throwaway self-signed certificate with the ``openssl`` command, starts a whole
gateway on SQLite with ``[smtp] tls_cert_file`` / ``tls_key_file`` and speaks to it with stdlib
``smtplib``, a raw socket wrapped by ``ssl``, and swaks (its TLS needs Debian's
``libnet-ssleay-perl``; ``.ci/run`` installs it). A missing tool skips with the reason, or fails
under ``SPOC_REQUIRE_SERVICES=1``. ``spoc check-config`` is run on broken settings.
"""

from __future__ import annotations

import asyncio
import shutil
import smtplib
import socket
import ssl
import subprocess
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest

from channels import smtp_tls
from gateway.cli import main as spoc
from tests.integration.gateway_harness import DESK, WAIT_SECONDS, running_gateway, write_config
from tests.integration.test_smtp_channel import RecordingIntake
from tests.support.services import require_service
from tests.support.smtp_channel import channel_starter

OPENSSL = shutil.which("openssl")
SWAKS = shutil.which("swaks")


@dataclass(frozen=True)
class TLSFiles:
    cert: Path
    key: Path

    @property
    def smtp_keys(self) -> str:
        return f'tls_cert_file = "{self.cert}"\ntls_key_file = "{self.key}"\n'

    def client_context(self) -> ssl.SSLContext:
        """A client that trusts only this certificate (and checks the name 127.0.0.1)."""
        return ssl.create_default_context(cafile=str(self.cert))


def make_tls_files(directory: Path, name: str = "mx", *extra: str) -> TLSFiles:
    if OPENSSL is None:
        require_service("the openssl command is not installed (needed to make a certificate)")
    directory.mkdir(parents=True, exist_ok=True)
    files = TLSFiles(directory / f"{name}-cert.pem", directory / f"{name}-key.pem")
    subprocess.run(
        [
            *(OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-keyout", str(files.key), "-out", str(files.cert), "-days", "1"),
            *("-subj", "/CN=mx.example.com", "-addext", "subjectAltName=IP:127.0.0.1"),
            *(extra or ("-noenc",)),
        ],
        check=True,
        capture_output=True,
    )
    return files


def swaks_can_tls() -> bool:
    """swaks does STARTTLS through Perl's Net::SSLeay, a separate Debian package."""
    return subprocess.run(["perl", "-MNet::SSLeay", "-e", "1"], capture_output=True).returncode == 0


@pytest.fixture
def tls(tmp_path: Path) -> TLSFiles:
    return make_tls_files(tmp_path / "tls")


def mail(subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Alice <alice@example.org>"
    msg["To"] = DESK
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '-')}@example.org>"
    msg.set_content("My laptop will not start.\n")
    return msg.as_bytes()


def send_over_starttls(port: int, context: ssl.SSLContext, raw: bytes) -> dict[str, object]:
    """EHLO, STARTTLS, EHLO again, one mail; what the server said along the way."""
    with smtplib.SMTP("127.0.0.1", port, timeout=WAIT_SECONDS) as client:
        client.ehlo("client.test")
        before = dict(client.esmtp_features)
        client.starttls(context=context)
        assert isinstance(client.sock, ssl.SSLSocket)
        version = client.sock.version()
        client.ehlo("client.test")
        after = dict(client.esmtp_features)
        client.mail("alice@example.org")
        client.rcpt(DESK)
        code, reply = client.data(raw)
        return {"before": before, "after": after, "version": version, "data": (code, reply)}


async def test_mail_over_starttls_is_committed_before_250(tmp_path: Path, sqlite_url: str) -> None:
    tls = make_tls_files(tmp_path / "tls")
    async with running_gateway(tmp_path, sqlite_url, smtp_keys=tls.smtp_keys) as gw:
        said = await asyncio.to_thread(
            send_over_starttls, gw.gw.smtp_port, tls.client_context(), mail("over tls")
        )
        assert "starttls" in said["before"]  # type: ignore[operator]
        assert "starttls" not in said["after"]  # type: ignore[operator]
        assert "auth" not in said["before"] and "auth" not in said["after"]  # type: ignore[operator]
        assert said["version"] in ("TLSv1.2", "TLSv1.3")
        code, reply = said["data"]  # type: ignore[misc]
        assert code == 250, reply
        ref = reply.decode().rpartition(" ")[2]
        ticket = await gw.ticket(ref)
        assert ticket["subject"] == "over tls"
    [added] = [e["detail"] for e in ticket["events"] if e["type"] == "contact.added"]
    assert added["tls"].startswith(f"{said['version']} ")  # e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384"


async def test_spoc_serve_reads_the_certificate_and_key_once(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The config check builds the context and the channel is handed it: the files are not
    read a second time when the SMTP channel starts."""
    tls = make_tls_files(tmp_path / "tls")
    reads: list[str] = []
    read = smtp_tls._read

    def counted(key: str, path: str) -> str:
        reads.append(key)
        return read(key, path)

    monkeypatch.setattr(smtp_tls, "_read", counted)
    async with running_gateway(tmp_path, sqlite_url, smtp_keys=tls.smtp_keys) as gw:
        said = await asyncio.to_thread(
            send_over_starttls, gw.gw.smtp_port, tls.client_context(), mail("read once")
        )
    assert said["data"][0] == 250  # type: ignore[index]
    assert reads == ["tls_cert_file", "tls_key_file"]


async def test_a_channel_started_alone_reads_its_own_certificate(tmp_path: Path) -> None:
    """Without a context handed in (tests, a channel used on its own), the channel builds one
    from its settings' files when it starts."""
    tls = make_tls_files(tmp_path / "tls")
    intake = RecordingIntake()
    async with channel_starter(intake, tls_cert_file=str(tls.cert)) as start:
        channel = await start(tls_key_file=str(tls.key))
        said = await asyncio.to_thread(
            send_over_starttls, channel.port, tls.client_context(), mail("alone")
        )
    assert said["data"][0] == 250  # type: ignore[index]
    assert said["version"] in ("TLSv1.2", "TLSv1.3")
    assert [c.subject for c in intake.contacts] == ["alone"]


async def test_ehlo_offers_starttls_only_with_a_certificate(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with running_gateway(tmp_path, sqlite_url) as gw:

        def talk() -> tuple[dict[str, str], int]:
            with smtplib.SMTP("127.0.0.1", gw.gw.smtp_port, timeout=WAIT_SECONDS) as client:
                client.ehlo("client.test")
                return dict(client.esmtp_features), client.docmd("STARTTLS")[0]

        features, starttls_code = await asyncio.to_thread(talk)
        sent = await gw.send_mail(mail("in plaintext"))
        ticket = await gw.ticket(sent.queued_as)
    assert "starttls" not in features
    assert starttls_code != 220
    [added] = [e["detail"] for e in ticket["events"] if e["type"] == "contact.added"]
    assert "tls" not in added


async def test_require_starttls_refuses_mail_in_plaintext_with_530(
    tmp_path: Path, sqlite_url: str
) -> None:
    tls = make_tls_files(tmp_path / "tls")
    keys = tls.smtp_keys + "require_starttls = true\n"
    async with running_gateway(tmp_path, sqlite_url, smtp_keys=keys) as gw:

        def plaintext() -> tuple[int, bytes]:
            with smtplib.SMTP("127.0.0.1", gw.gw.smtp_port, timeout=WAIT_SECONDS) as client:
                client.ehlo("client.test")
                assert client.has_extn("starttls")
                return client.docmd("MAIL", "FROM:<alice@example.org>")

        code, reply = await asyncio.to_thread(plaintext)
        assert (code, reply) == (530, b"5.7.0 Must issue a STARTTLS command first")
        said = await asyncio.to_thread(
            send_over_starttls, gw.gw.smtp_port, tls.client_context(), mail("required tls")
        )
        assert said["data"][0] == 250  # type: ignore[index]


def _replies(stream: socket.socket | ssl.SSLSocket) -> list[str]:
    """One whole (possibly multi-line) SMTP reply."""
    lines: list[str] = []
    data = b""
    while not lines or lines[-1][3:4] == "-":
        chunk = stream.recv(4096)
        assert chunk, f"the server hung up after {lines!r}"
        data += chunk
        *complete, data = data.split(b"\r\n")
        lines += [line.decode() for line in complete]
    assert not data, data
    return lines


def inject_after_starttls(port: int, context: ssl.SSLContext) -> tuple[list[str], list[str]]:
    """``STARTTLS`` with plaintext commands pipelined behind it in the same packet."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_SECONDS) as plain:
        _replies(plain)  # 220 greeting
        plain.sendall(b"EHLO client.test\r\n")
        _replies(plain)
        plain.sendall(
            b"STARTTLS\r\nEHLO evil.test\r\nMAIL FROM:<mallory@example.org>\r\n"
            b"RCPT TO:<" + DESK.encode() + b">\r\n"
        )
        assert _replies(plain)[0].startswith("220")
        with context.wrap_socket(plain, server_hostname="127.0.0.1") as secure:
            secure.sendall(b"NOOP\r\n")
            first = _replies(secure)  # must answer our NOOP, not the injected EHLO
            secure.sendall(b"EHLO client.test\r\n")
            _replies(secure)
            secure.sendall(b"RCPT TO:<" + DESK.encode() + b">\r\n")
            rcpt = _replies(secure)  # no MAIL was given inside TLS
            secure.sendall(b"QUIT\r\n")
            _replies(secure)
        return first, rcpt


async def test_plaintext_pipelined_after_starttls_is_discarded(
    tmp_path: Path, sqlite_url: str
) -> None:
    tls = make_tls_files(tmp_path / "tls")
    async with running_gateway(tmp_path, sqlite_url, smtp_keys=tls.smtp_keys) as gw:
        first, rcpt = await asyncio.to_thread(
            inject_after_starttls, gw.gw.smtp_port, tls.client_context()
        )
    assert first == ["250 OK"]
    assert rcpt[0].startswith("503"), rcpt


async def test_swaks_sends_over_starttls(tmp_path: Path, sqlite_url: str) -> None:
    if SWAKS is None:
        require_service("swaks is not installed")
    if not swaks_can_tls():
        require_service("swaks cannot do TLS here: Net::SSLeay is missing (libnet-ssleay-perl)")
    tls = make_tls_files(tmp_path / "tls")
    async with running_gateway(tmp_path, sqlite_url, smtp_keys=tls.smtp_keys) as gw:
        process = await asyncio.create_subprocess_exec(
            SWAKS,
            *("--server", f"127.0.0.1:{gw.gw.smtp_port}", "--tls"),
            *("--from", "alice@example.org", "--to", DESK, "--helo", "client.test"),
            *("--header", "Subject: swaks over tls"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), WAIT_SECONDS)
        text = output.decode(errors="replace")
        assert process.returncode == 0, text
        queued = [line for line in text.splitlines() if "queued as" in line]
        assert len(queued) == 1 and queued[0].startswith("<~ "), text  # "<~": read over TLS
        ticket = await gw.ticket(queued[0].rpartition(" ")[2])
        assert ticket["subject"] == "swaks over tls"


# --- spoc check-config ----------------------------------------------------------------------


def check_config(tmp_path: Path, smtp_keys: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    path = write_config(
        tmp_path, db_url="sqlite:///var/spoc.db", relay_port=2526, smtp_keys=smtp_keys
    )
    code = spoc(["check-config", "--config", str(path)])
    problems = capsys.readouterr().err.splitlines()
    assert code == (2 if problems else 0), problems
    return problems


def test_check_config_accepts_a_certificate_and_its_key(
    tmp_path: Path, tls: TLSFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check_config(tmp_path, tls.smtp_keys + "require_starttls = true", capsys) == []


def test_check_config_wants_both_files_or_neither(
    tmp_path: Path, tls: TLSFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    only_cert = f'tls_cert_file = "{tls.cert}"'
    assert check_config(tmp_path, only_cert, capsys) == [
        "smtp.tls_key_file: needed too, since smtp.tls_cert_file is set"
    ]
    only_key = f'tls_key_file = "{tls.key}"'
    assert check_config(tmp_path, only_key, capsys) == [
        "smtp.tls_cert_file: needed too, since smtp.tls_key_file is set"
    ]
    [problem] = check_config(tmp_path, "require_starttls = true", capsys)
    assert problem.startswith("smtp.require_starttls: needs smtp.tls_cert_file")


def test_check_config_names_the_unusable_file(
    tmp_path: Path, tls: TLSFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.pem"
    keys = f'tls_cert_file = "{tls.cert}"\ntls_key_file = "{missing}"'
    [problem] = check_config(tmp_path, keys, capsys)
    assert problem.startswith("smtp.tls_key_file: cannot read") and str(missing) in problem

    garbage = tmp_path / "garbage.pem"
    garbage.write_text("this is not a certificate\n")
    keys = f'tls_cert_file = "{garbage}"\ntls_key_file = "{tls.key}"'
    [problem] = check_config(tmp_path, keys, capsys)
    assert problem.startswith("smtp.tls_cert_file:") and "no PEM certificate" in problem

    other = make_tls_files(tmp_path / "other", "other")
    keys = f'tls_cert_file = "{tls.cert}"\ntls_key_file = "{other.key}"'
    [problem] = check_config(tmp_path, keys, capsys)
    assert problem.startswith("smtp.tls_key_file:") and "not the PEM private key" in problem

    locked = make_tls_files(tmp_path / "locked", "locked", "-passout", "pass:secret")
    keys = f'tls_cert_file = "{locked.cert}"\ntls_key_file = "{locked.key}"'
    [problem] = check_config(tmp_path, keys, capsys)
    assert problem == (
        "smtp.tls_key_file: the private key is encrypted; give spoc an unencrypted key"
    )


async def test_a_failed_handshake_is_logged_without_error_and_the_next_client_is_served(
    tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    tls = make_tls_files(tmp_path / "tls")
    async with running_gateway(tmp_path, sqlite_url, smtp_keys=tls.smtp_keys) as gw:

        def not_tls() -> bytes:
            with socket.create_connection(("127.0.0.1", gw.gw.smtp_port), WAIT_SECONDS) as sock:
                _replies(sock)
                sock.sendall(b"EHLO client.test\r\n")
                _replies(sock)
                sock.sendall(b"STARTTLS\r\n")
                assert _replies(sock)[0].startswith("220")
                sock.sendall(b"this is not a TLS ClientHello\r\n" * 4)
                return sock.recv(4096)  # the server hangs up

        with caplog.at_level("INFO", logger="channels.smtp"):
            assert await asyncio.to_thread(not_tls) == b""
            said = await asyncio.to_thread(
                send_over_starttls, gw.gw.smtp_port, tls.client_context(), mail("after failure")
            )
    assert said["data"][0] == 250  # type: ignore[index]
    smtp_records = [r for r in caplog.records if r.name == "channels.smtp"]
    assert not [r for r in smtp_records if r.levelname in ("ERROR", "CRITICAL")]
    assert any("STARTTLS handshake failed" in r.getMessage() for r in smtp_records)
    assert any(
        "queued as" in r.getMessage() and " over TLSv1." in r.getMessage() for r in smtp_records
    )


async def test_starttls_forgets_the_plaintext_transaction_and_its_recipient_count(
    tmp_path: Path, sqlite_url: str
) -> None:
    tls = make_tls_files(tmp_path / "tls")
    keys = tls.smtp_keys + "max_recipients = 2\n"
    async with running_gateway(tmp_path, sqlite_url, smtp_keys=keys) as gw:

        def talk() -> list[int]:
            codes: list[int] = []
            with smtplib.SMTP("127.0.0.1", gw.gw.smtp_port, timeout=WAIT_SECONDS) as client:
                client.ehlo("client.test")
                codes.append(client.docmd("MAIL", "FROM:<alice@example.org>")[0])
                codes += [client.docmd("RCPT", f"TO:<{DESK}>")[0] for _ in range(2)]
                client.starttls(context=tls.client_context())
                client.ehlo("client.test")
                codes.append(client.docmd("RCPT", f"TO:<{DESK}>")[0])  # no MAIL inside TLS yet
                codes.append(client.docmd("MAIL", "FROM:<alice@example.org>")[0])
                codes += [client.docmd("RCPT", f"TO:<{DESK}>")[0] for _ in range(2)]
                codes.append(client.data(mail("counted afresh"))[0])
            return codes

        codes = await asyncio.to_thread(talk)
    assert codes == [250, 250, 250, 503, 250, 250, 250, 250]
