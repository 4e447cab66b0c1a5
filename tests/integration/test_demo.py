"""``spoc demo`` as a real process: ``python -m gateway demo`` in an empty directory, with none of
the caller's ``SPOC_*`` variables. It must drive one contact through every channel over real
sockets (SMTP, signed Twilio and Slack webhooks, the web form, the API), print the tickets, hand
out a dashboard link that logs in exactly once, and exit 0 on SIGINT/SIGTERM. Every wait is
bounded: a demo that hangs fails with what it printed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHANNELS = ("email", "fax", "phone", "sms", "slack", "web", "api")
RUN_SECONDS = 90.0
_ROW = re.compile(r"^(SD-\d+)\s+new\s+P\d\s+(\w+)\s", re.M)
_LINK = re.compile(r"Dashboard \(this link logs in once\): (http://127\.0\.0\.1:\d+)(/\S+)")


def demo_env() -> dict[str, str]:
    """The caller's environment without any spoc setting: the demo must need none."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SPOC_")}


def assert_a_ticket_per_channel(output: str) -> None:
    rows = _ROW.findall(output)
    assert sorted(channel for _, channel in rows) == sorted(CHANNELS), output
    assert len({ref for ref, _ in rows}) == len(CHANNELS), output


def test_demo_once_prints_a_ticket_from_every_channel_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "demo", "--once"],
        cwd=tmp_path,
        env=demo_env(),
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert_a_ticket_per_channel(done.stdout)
    assert "Acknowledgements sent: email 3" in done.stdout  # email, web, api; never the fax
    assert "Slack 1" in done.stdout
    assert "Quarantine: 1 automatic mail kept" in done.stdout  # the out-of-office reply
    assert "Press Ctrl-C" not in done.stdout
    assert list(tmp_path.iterdir()) == []  # no ./var, no database, no spool left here


class Demo:
    """A running ``spoc demo``: its output read on a thread so a wait can be bounded."""

    def __init__(self, cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "demo"],
            cwd=cwd,
            env=demo_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output = ""
        self._link = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output += line
            if "Press Ctrl-C" in line:
                self._link.set()
        self._link.set()

    def wait_until_ready(self) -> None:
        assert self._link.wait(RUN_SECONDS), self.output
        assert self.process.poll() is None, self.output

    def stop(self, sig: signal.Signals) -> int:
        self.process.send_signal(sig)
        try:
            code = self.process.wait(RUN_SECONDS)
        finally:
            self._reader.join(5)
        return code


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = Demo(tmp_path)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def visit(url: str, cookie: str | None = None) -> tuple[int, dict[str, str], str]:
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with opener.open(request, timeout=15) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_demo_serves_until_a_signal_and_its_dashboard_link_logs_in_once(
    demo: Demo, sig: signal.Signals
) -> None:
    demo.wait_until_ready()
    assert_a_ticket_per_channel(demo.output)
    found = _LINK.search(demo.output)
    assert found, demo.output
    base, path = found.groups()

    status, headers, _ = visit(base + path)
    assert status == 303 and headers["Location"] == "/", headers
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    status, _, overview = visit(base + "/", cookie)
    assert status == 200 and "Laptop will not charge" in overview  # the session works
    status, _, kept = visit(base + "/dashboard/quarantine", cookie)
    assert status == 200 and "Out of office: back on Monday" in kept

    status, headers, page = visit(base + path)
    assert status == 401 and "used already" in page
    assert "Set-Cookie" not in headers or "spoc_session=" not in headers["Set-Cookie"]
    status, headers, _ = visit(base + "/")  # and without the cookie: still the login
    assert status == 303 and headers["Location"].startswith("/dashboard/login")

    assert demo.stop(sig) == 0, demo.output
    assert "stopping" in demo.output
