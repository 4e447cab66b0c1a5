"""A throwaway Dovecot IMAP server on 127.0.0.1 for the IMAP tests.

Debian's ``dovecot-imapd`` (``.ci/run`` installs it), started in the foreground with a config of
its own in a temporary directory: its own ``base_dir``, one password for every login (a static
passdb: each test logs in as a user name of its own and so gets an empty mailbox), Maildir
mailboxes with ``/`` as the hierarchy separator, a plain IMAP port (STARTTLS offered) and an
IMAPS port with a self-signed certificate made by ``openssl`` (``ca_file`` trusts it).

Dovecot refuses uid 0 for mail, so under root the mailboxes belong to a ``vmail`` system user
(created if missing). Ports cannot be 0: free ones are picked and the start is retried when one
was taken meanwhile. ``capabilities`` replaces what the server advertises (e.g. without MOVE,
to test the COPY fallback).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from imapclient import IMAPClient

from tests.support.pgcluster import free_port

DOVECOT = Path("/usr/sbin/dovecot")
MAIL_USER = "vmail"
HOST = "127.0.0.1"


class DovecotUnavailable(Exception):
    """No Dovecot could be started here (binary missing, start failed)."""


def _mail_account() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam(MAIL_USER)
    except KeyError:
        # Not checked: a test process running beside this one may have added it first
        # (pytest-xdist); getpwnam below says whether the user is there.
        subprocess.run(
            ["useradd", "--system", "--no-create-home", MAIL_USER], check=False, timeout=30
        )
        return pwd.getpwnam(MAIL_USER)


def _make_certificate(base: Path) -> tuple[Path, Path]:
    cert, key = base / "cert.pem", base / "key.pem"
    try:
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        raise DovecotUnavailable(f"openssl could not make a test certificate: {exc}") from exc
    return cert, key


def _config(
    base: Path,
    port: int,
    tls_port: int,
    account: pwd.struct_passwd,
    capabilities: str | None,
    password: str,
) -> str:
    internal = "dovecot" if os.geteuid() == 0 else account.pw_name
    login = "dovenull" if os.geteuid() == 0 else account.pw_name
    lines = [
        f"base_dir = {base}/run",
        f"state_dir = {base}/state",
        f"log_path = {base}/dovecot.log",
        "protocols = imap",
        f"listen = {HOST}",
        "ssl = yes",
        f"ssl_cert = <{base}/cert.pem",
        f"ssl_key = <{base}/key.pem",
        "disable_plaintext_auth = no",
        "auth_mechanisms = plain login",
        f"default_internal_user = {internal}",
        f"default_login_user = {login}",
        f"first_valid_uid = {account.pw_uid}",
        f"mail_location = maildir:{base}/mail/%u",
        "mail_fsync = never",
        "namespace inbox {\n  inbox = yes\n  separator = /\n}",
        f"passdb {{\n  driver = static\n  args = password={password}\n}}",
        "userdb {\n  driver = static\n"
        f"  args = uid={account.pw_uid} gid={account.pw_gid} home={base}/home/%u\n}}",
        "service imap-login {\n"
        f"  inet_listener imap {{\n    port = {port}\n  }}\n"
        f"  inet_listener imaps {{\n    port = {tls_port}\n    ssl = yes\n  }}\n}}",
        "service anvil {\n  chroot =\n}",
        "service imap-login {\n  chroot =\n}",
    ]
    if os.geteuid() != 0:
        lines.append("service auth {\n  user = $default_internal_user\n}")
    if capabilities is not None:
        lines.append(f"imap_capability = {capabilities}")
    return "\n".join(lines) + "\n"


@dataclass(slots=True)
class Dovecot:
    """A running Dovecot. ``client(user)`` logs in over plain IMAP for the test's own checks."""

    base: Path
    port: int
    tls_port: int
    process: subprocess.Popen[bytes]
    password: str

    @property
    def ca_file(self) -> Path:
        return self.base / "cert.pem"

    @classmethod
    def start(
        cls,
        password: str = "imap-test-pw",
        capabilities: str | None = None,
        attempts: int = 3,
    ) -> Dovecot:
        if not DOVECOT.is_file():
            raise DovecotUnavailable(
                f"{DOVECOT} not found (apt-get install --no-install-recommends dovecot-imapd)"
            )
        account = _mail_account()
        base = Path(tempfile.mkdtemp(prefix="spoc-dovecot-", dir="/tmp"))
        try:
            os.chmod(base, 0o755)
            for sub in ("run", "state", "mail", "home"):
                (base / sub).mkdir()
            for sub in ("mail", "home"):
                os.chown(base / sub, account.pw_uid, account.pw_gid)
            _make_certificate(base)
            last: DovecotUnavailable | None = None
            for _ in range(attempts):
                port, tls_port = free_port(), free_port()
                (base / "dovecot.conf").write_text(
                    _config(base, port, tls_port, account, capabilities, password)
                )
                process = subprocess.Popen(
                    [str(DOVECOT), "-F", "-c", str(base / "dovecot.conf")],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                server = cls(base, port, tls_port, process, password)
                try:
                    server._wait_ready()
                except DovecotUnavailable as exc:
                    last = exc
                    server._terminate()
                    continue
                return server
            raise last or DovecotUnavailable("Dovecot did not start")
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                err = (
                    self.process.stderr.read().decode(errors="replace")
                    if self.process.stderr
                    else ""
                )
                raise DovecotUnavailable(f"dovecot exited {self.process.returncode}: {err[-2000:]}")
            try:
                with socket.create_connection((HOST, self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise DovecotUnavailable(f"dovecot did not answer on port {self.port}")
            time.sleep(0.02)

    def _terminate(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stderr is not None:
            self.process.stderr.close()

    def restart(self) -> None:
        """Stop the server and start it again on the same ports and mailboxes (an outage)."""
        self._terminate()
        self.process = subprocess.Popen(
            [str(DOVECOT), "-F", "-c", str(self.base / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait_ready()

    def stop(self) -> None:
        self._terminate()
        shutil.rmtree(self.base, ignore_errors=True)

    def recreate_folder(self, user: str, folder: str) -> None:
        """Delete and create ``folder`` again: a new UIDVALIDITY, UIDs from 1 (a restore)."""
        with self.client(user) as imap:
            if imap.folder_exists(folder):
                imap.delete_folder(folder)
            imap.create_folder(folder)

    def uidvalidity(self, user: str, folder: str) -> int:
        with self.client(user) as imap:
            return int(imap.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    @contextlib.contextmanager
    def client(self, user: str) -> Iterator[IMAPClient]:
        """A logged-in plain-IMAP client (the test's own view of the mailbox)."""
        imap = IMAPClient(HOST, port=self.port, ssl=False, timeout=10)
        try:
            imap.login(user, self.password)
            yield imap
        finally:
            with contextlib.suppress(Exception):
                imap.logout()

    def append(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        with self.client(user) as imap:
            if not imap.folder_exists(folder):
                imap.create_folder(folder)
            imap.append(folder, raw)

    def messages(self, user: str, folder: str) -> list[bytes]:
        """The raw bytes of every message in ``folder`` (empty when it does not exist)."""
        with self.client(user) as imap:
            if not imap.folder_exists(folder):
                return []
            imap.select_folder(folder, readonly=True)
            uids = imap.search(["NOT", "DELETED"])
            fetched = imap.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
            return [fetched[uid][b"BODY[]"] for uid in sorted(fetched)]

    def flags(self, user: str, folder: str) -> list[tuple[bytes, ...]]:
        """The flags of every message in ``folder``, oldest first."""
        with self.client(user) as imap:
            imap.select_folder(folder, readonly=True)
            uids = imap.search(["NOT", "DELETED"])
            fetched = imap.fetch(uids, ["FLAGS"]) if uids else {}
            return [tuple(fetched[uid][b"FLAGS"]) for uid in sorted(fetched)]
