"""``spoc serve`` with ``[server] log_format = "json"``: every line it logs is one JSON object."""

from __future__ import annotations

import json
import signal
import smtplib
from pathlib import Path

from tests.integration.test_serve_process import (
    HOST,
    SOCKET_SECONDS,
    ServeProcess,
    _replace_once,
    free_port,
    write_config,
)


def test_serve_logs_one_json_object_per_line_with_a_clients_junk_escaped(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'spoc.db'}", free_port(), free_port())
    text = config.read_text(encoding="utf-8")
    config.write_text(_replace_once(text, r'^log_format = "text"', 'log_format = "json"'))
    process = ServeProcess(tmp_path, config, tmp_path / "serve.log")
    try:
        ready = process.wait_ready()
        assert ready is not None, process.log_tail()
        with smtplib.SMTP(HOST, ready.smtp_port, timeout=SOCKET_SECONDS) as smtp:
            smtp.docmd("XJUNK\x1b[2J")  # aiosmtpd logs the command it did not recognise
        assert process.stop(signal.SIGTERM) == 0
    finally:
        process.kill()

    lines = [json.loads(line) for line in process.log().splitlines()]
    assert lines, "spoc serve logged nothing"
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
    messages = [line["message"] for line in lines]
    assert any(m.startswith("spoc ready: SMTP on") for m in messages)
    assert any("unrecognised: XJUNK\\x1b[2J" in m for m in messages)
    assert not any("\x1b" in m for m in messages)
