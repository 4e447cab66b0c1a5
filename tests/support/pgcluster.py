"""A throwaway PostgreSQL 15 cluster for the test session.

``initdb`` into a temporary directory, ``pg_ctl start`` on a free 127.0.0.1 port with a socket
directory of its own, trust authentication for the ``postgres`` role, no fsync (nothing here
must survive a crash). PostgreSQL refuses to run as root, so under root the directory belongs
to the ``postgres`` system user (created if missing) and every server command runs through
``runuser -u postgres --``.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

logger = logging.getLogger(__name__)

PG_MAJOR = "15"
SERVER_USER = "postgres"


class ClusterUnavailable(Exception):
    """No PostgreSQL server could be started here (binaries missing, start failed)."""


def find_bindir() -> Path:
    """The PostgreSQL 15 server binaries: Debian's path first, then ``pg_config --bindir``."""
    candidates = [Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")]
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            candidates.append(Path(out))
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    raise ClusterUnavailable(
        f"PostgreSQL {PG_MAJOR} server binaries not found (looked in "
        f"{', '.join(str(c) for c in candidates)}; apt-get install postgresql-{PG_MAJOR})"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ensure_server_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        # Not checked: a test process running beside this one may have added it first
        # (pytest-xdist); getpwnam below says whether the user is there.
        subprocess.run(["useradd", "--system", SERVER_USER], check=False, timeout=30)
        return pwd.getpwnam(SERVER_USER)


@dataclass(frozen=True, slots=True)
class PostgresCluster:
    """A running throwaway cluster. ``url(db)`` gives the app's ``postgresql://`` URL."""

    bindir: Path
    base: Path
    port: int
    as_user: str | None  # run server commands as this user (when we are root)
    host: str = "127.0.0.1"

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def socketdir(self) -> Path:
        return self.base / "sock"

    @property
    def logfile(self) -> Path:
        return self.base / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SERVER_USER}@{self.host}:{self.port}/{database}"

    def conninfo(self, database: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user={SERVER_USER} dbname={database}"

    @classmethod
    def start(cls, bindir: Path | None = None, attempts: int = 3) -> PostgresCluster:
        """initdb + start; retries on another port if the one picked was taken meanwhile."""
        bindir = bindir or find_bindir()
        as_user = SERVER_USER if os.geteuid() == 0 else None
        # Under root the server user must reach the directory: /tmp, not a private $TMPDIR.
        base = Path(tempfile.mkdtemp(prefix="spoc-pg-", dir="/tmp" if as_user else None))
        try:
            (base / "sock").mkdir()
            if as_user is not None:
                account = _ensure_server_user()
                for path in (base, base / "sock"):
                    os.chown(path, account.pw_uid, account.pw_gid)
            cluster = cls(bindir=bindir, base=base, port=0, as_user=as_user)
            cluster._run(cluster._initdb_args(), what="initdb")
            last_error: ClusterUnavailable | None = None
            for _ in range(attempts):
                started = cls(bindir=bindir, base=base, port=free_port(), as_user=as_user)
                try:
                    started._run(started._start_args(), what="pg_ctl start")
                except ClusterUnavailable as exc:
                    last_error = exc
                    continue
                return started
            raise last_error or ClusterUnavailable("PostgreSQL did not start")
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise

    def stop(self) -> None:
        """Immediate shutdown (nothing to keep) and remove the directory."""
        try:
            self._run(
                [str(self.bindir / "pg_ctl"), "stop", "-D", str(self.datadir), "-m", "immediate"],
                what="pg_ctl stop",
            )
        except ClusterUnavailable:
            logger.warning("could not stop the test PostgreSQL cluster in %s", self.base)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def halt(self) -> None:
        """Stop the server but keep its data: a database outage, to be ended by ``resume``."""
        self._run(
            [str(self.bindir / "pg_ctl"), "stop", "-D", str(self.datadir), "-m", "fast", "-w"],
            what="pg_ctl stop",
        )

    def resume(self) -> None:
        """Start a halted server again on the same port."""
        self._run(self._start_args(), what="pg_ctl start")

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex}"
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def _initdb_args(self) -> list[str]:
        return [
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            SERVER_USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]

    def _start_args(self) -> list[str]:
        # Throwaway data: no fsync (DROP DATABASE's checkpoint costs ~0.1 s per test with it).
        options = (
            f"-p {self.port} -k {self.socketdir} -c listen_addresses={self.host} "
            "-c max_connections=100 -c shared_buffers=32MB -c fsync=off -c full_page_writes=off"
        )
        return [
            str(self.bindir / "pg_ctl"),
            "start",
            "-D",
            str(self.datadir),
            "-l",
            str(self.logfile),
            "-w",
            "-t",
            "30",
            "-o",
            options,
        ]

    def _run(self, args: list[str], what: str) -> None:
        command = ["runuser", "-u", self.as_user, "--", *args] if self.as_user else args
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ClusterUnavailable(f"{what} failed: {exc}") from exc
        if result.returncode != 0:
            log = ""
            if self.logfile.exists():
                log = self.logfile.read_text(errors="replace")[-2000:]
            raise ClusterUnavailable(
                f"{what} exited {result.returncode}: {result.stderr.strip()[-2000:]} {log}"
            )


def wait_until_ready(cluster: PostgresCluster, timeout: float = 10.0) -> None:
    """pg_ctl -w already waits; this guards against a server that accepts no TCP yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(cluster.conninfo(), connect_timeout=2):
                return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise ClusterUnavailable(f"PostgreSQL on port {cluster.port}: {exc}") from exc
            time.sleep(0.05)
