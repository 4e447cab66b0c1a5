"""schemathesis against a real ``spoc serve`` (SQLite): no 500s, every answer as documented.

The gateway runs as a child process with the shipped config (free ports, relay closed, so acks
stay pending in the outbox), holding a ticket (``SD-1``, the document's example ref) and a
quarantined auto-reply (item 1), so the examples and the stateful links reach real rows, not
only 404s. schemathesis reads ``/api/openapi.json`` from the gateway itself, with the token, and
runs every phase (examples, coverage, fuzzing, stateful) with a bounded number of examples and
a fixed seed, so a run takes seconds and a failure can be replayed.

Checks: all of schemathesis' except ``positive_data_acceptance``: the API refuses with 400 what
JSON Schema cannot say (an address that is not one, a number no phone has, blank text, a cursor
this server did not give out), and that check would count each such 400 as a failure.
"""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_serve_process import (
    HOST,
    SOCKET_SECONDS,
    Gateway,
    child_environment,
    running_gateways,
    send_mail,
    start_gateway,
)

__all__ = ["running_gateways"]  # a fixture, used by name

pytestmark = pytest.mark.slow

TOKEN = "schemathesis-token-0123456789"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "email"
MAX_EXAMPLES = 40  # per operation and phase: about 1000 requests, well under a minute
SEED = 20261201
RUN_SECONDS = 240


@pytest.fixture
def gateway(tmp_path: Path, running_gateways: list[Gateway]) -> Iterator[Gateway]:
    started = start_gateway(
        tmp_path, f"sqlite:///{tmp_path / 'spoc.db'}", extra_env={"SPOC_API_TOKEN": TOKEN}
    )
    running_gateways.append(started)
    yield started
    assert started.process.stop() == 0, started.process.log_tail()


def api(gateway: Gateway, path: str, body: object) -> dict[str, object]:
    request = urllib.request.Request(
        f"http://{HOST}:{gateway.ready.http_port}{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=SOCKET_SECONDS) as response:
        answer: dict[str, object] = json.loads(response.read())
        return answer


def seed(gateway: Gateway) -> None:
    ticket = api(gateway, "/api/contacts", {"from": {"email": "alice@example.org"}, "text": "x"})
    assert ticket["ref"] == "SD-1"
    with smtplib.SMTP(HOST, gateway.ready.smtp_port, timeout=SOCKET_SECONDS) as smtp:
        raw = (FIXTURES / "auto_reply.eml").read_bytes()
        assert send_mail(smtp, "bob@example.org", raw)[0] == 250


def test_schemathesis_finds_no_500_and_no_answer_off_the_schema(
    gateway: Gateway, tmp_path: Path
) -> None:
    seed(gateway)
    url = f"http://{HOST}:{gateway.ready.http_port}/api/openapi.json"
    options = {
        "--header": f"Authorization: Bearer {TOKEN}",
        "--max-examples": str(MAX_EXAMPLES),
        "--seed": str(SEED),
        "--workers": "1",
        "--exclude-checks": "positive_data_acceptance",
        "--generation-database": "none",
        "--request-timeout": "10",
    }
    command = [sys.executable, "-m", "schemathesis.cli", "run", url, "--no-color"]
    run = subprocess.run(
        [*command, *(part for option in options.items() for part in option)],
        cwd=tmp_path,
        env=child_environment(),
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
        check=False,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, f"{report[-12000:]}\ngateway log:\n{gateway.process.log_tail()}"
    assert "Operations:       11 selected / 11 total" in report, report[-3000:]
    assert " 0 passed" not in report
