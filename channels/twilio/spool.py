"""The degraded-mode spool: call and SMS records written to disk while the database is down.

Each record is one JSON file (``<time>-<random>.json``), written to a temporary name, fsynced,
renamed into place and the directory fsynced, so a crash leaves either the whole record or
nothing. The channel's replayer hands the records back to the intake once it works again; the
records' idempotency keys (CallSid + step, MessageSid) make a replay after a lost delete safe.
A record that the intake refuses for good is moved to ``rejected/`` with the reason logged.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from normalizer.telephony import CallEvent, SmsMessage

log = logging.getLogger(__name__)

Record = CallEvent | SmsMessage


class Spool:
    """A directory of pending records. Safe against crashes, and shared by the workers of
    ``spoc serve --workers N``: a record another worker replayed and removed meanwhile is
    skipped (one that two workers both submitted is a duplicate the intake dedupes)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def put(self, record: Record) -> Path:
        """Write ``record`` durably; returns its path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{secrets.token_hex(4)}.json"
        final = self.directory / name
        tmp = self.directory / f".{name}.tmp"
        data = json.dumps(encode(record), sort_keys=True).encode("utf-8")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        log.warning("database unavailable: spooled %s to %s", type(record).__name__, final.name)
        return final

    def pending(self) -> list[Path]:
        """Spooled records, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("[0-9]*.json"))

    def load(self, path: Path) -> Record | None:
        """Read one record; None when it is gone (another worker replayed it), ValueError when
        the file is not a record."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return decode(json.loads(data))
        except (OSError, json.JSONDecodeError, TypeError, KeyError) as exc:
            raise ValueError(f"{path.name} is not a spooled record: {exc}") from exc

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def reject(self, path: Path, reason: str) -> None:
        """Move a record the intake refuses out of the way, so it is not retried forever."""
        rejected = self.directory / "rejected"
        rejected.mkdir(exist_ok=True)
        try:
            os.replace(path, rejected / path.name)
        except FileNotFoundError:  # another worker took it first
            return
        log.error("spooled record %s refused for good (%s): moved to rejected/", path.name, reason)


def encode(record: Record) -> dict[str, Any]:
    data = asdict(record)
    data["received_at"] = record.received_at.isoformat()
    if isinstance(record, SmsMessage):
        data["media_urls"] = list(record.media_urls)
    return {"type": "call" if isinstance(record, CallEvent) else "sms", "record": data}


def decode(data: Any) -> Record:
    if not isinstance(data, dict) or not isinstance(data.get("record"), dict):
        raise ValueError("not a spool record")
    fields = dict(data["record"])
    received = datetime.fromisoformat(str(fields.pop("received_at")))
    if received.tzinfo is None:
        raise ValueError("received_at has no time zone")
    if data.get("type") == "call":
        return CallEvent(received_at=received, **fields)
    if data.get("type") == "sms":
        fields["media_urls"] = tuple(fields.get("media_urls", ()))
        return SmsMessage(received_at=received, **fields)
    raise ValueError(f"unknown record type {data.get('type')!r}")
