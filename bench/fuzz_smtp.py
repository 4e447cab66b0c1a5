"""Fuzz the email intake: mutated corpus mail through a real ``spoc serve`` over SMTP.

Two passes over the same mutations (``bench/mail_mutations.py``, seeded):

``normalise``
    ``contact_from_email`` in this process on every mutated message: the slowest time (budget
    2 s) and, for every 25th message, the peak memory it allocated against the message's size
    (tracemalloc). The baseline, measured in the same run, is the same on the unmutated seeds:
    the script prints the mutated/seed ratio of the median time.
``smtp``
    the real ``python -m gateway serve`` (SQLite) as a child process; the mutated messages sent
    over ``--connections`` smtplib sessions. Every DATA must be answered ``250`` or a ``5xx``
    with a reason -- a ``451`` (the intake failed unexpectedly), a ``500`` or a dropped
    connection counts as a failure, as does a reply that takes longer than ``--timeout`` (a
    hang). Afterwards the gateway must still answer ``/healthz``, and the database must hold the
    exact raw bytes of every ``250`` of a new message: as a contact, or in the quarantine.

    python bench/fuzz_smtp.py --count 10000 --connections 4 --seed 1
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import smtplib
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.mail_mutations import mutations, seed_messages
from bench.ports import free_ports
from bench.spoc_config import DESK, config_text, serve_command
from normalizer.email import contact_from_email

HERE = Path(__file__).resolve().parent


def normalise_pass(messages: list[bytes], seeds: list[bytes]) -> dict[str, float]:
    def times(batch: list[bytes]) -> list[float]:
        out = []
        for raw in batch:
            start = time.perf_counter()
            contact_from_email(raw, recipients=(DESK,))
            out.append(time.perf_counter() - start)
        return out

    seed_times = times(seeds)
    fuzz_times = times(messages)
    worst_ratio = 0.0
    for raw in messages[::25]:
        tracemalloc.start()
        contact_from_email(raw, recipients=(DESK,))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        worst_ratio = max(worst_ratio, peak / max(len(raw), 1024))
    return {
        "seed_median_ms": statistics.median(seed_times) * 1000,
        "fuzz_median_ms": statistics.median(fuzz_times) * 1000,
        "fuzz_max_ms": max(fuzz_times) * 1000,
        "ratio_median": statistics.median(fuzz_times) / statistics.median(seed_times),
        "peak_memory_per_message_byte": worst_ratio,
    }


def write_config(directory: Path, smtp_port: int, http_port: int) -> Path:
    config = directory / "config.toml"
    config.write_text(
        config_text(
            directory / "fuzz.db",
            smtp_port,
            http_port,
            smtp="max_connections = 64",
            extra="[api]\nenabled = true\n",
        )
    )
    return config


def send_one(port: int, raw: bytes, timeout: float) -> tuple[str, int, str]:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as client:
            client.ehlo("fuzz.test")
            code, _ = client.mail("fuzzer@example.org")
            if code != 250:
                return "mail-refused", code, ""
            code, _ = client.rcpt(DESK)
            if code != 250:
                return "rcpt-refused", code, ""
            code, reply = client.data(raw)
            return "data", code, reply.decode("ascii", "replace")[:200]
    except smtplib.SMTPDataError as exc:  # smtplib raises for a reply other than 354 to DATA
        return "data", exc.smtp_code, str(exc.smtp_error)[:200]
    except TimeoutError:
        return "hang", 0, ""
    except (smtplib.SMTPException, OSError) as exc:
        return "connection", 0, type(exc).__name__


def smtp_pass(
    messages: list[bytes], connections: int, timeout: float, keep: Path | None
) -> dict[str, object]:
    directory = Path(tempfile.mkdtemp(prefix="spoc-fuzz-", dir=keep))
    smtp_port, http_port = free_ports(2)
    config = write_config(directory, smtp_port, http_port)
    log = (directory / "serve.log").open("w")
    env = {**os.environ, "SPOC_API_TOKEN": "fuzz"}
    child = subprocess.Popen(
        serve_command(config),
        cwd=HERE.parent,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while child.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        if child.poll() is not None:
            raise SystemExit(f"spoc serve did not start: see {directory / 'serve.log'}")
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(connections) as pool:
            results = list(pool.map(lambda raw: send_one(smtp_port, raw, timeout), messages))
        elapsed = time.monotonic() - started
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=5) as r:
            healthy = r.status == 200
        alive = child.poll() is None
    finally:
        child.terminate()
        child.wait(30)
        log.close()
    outcomes = Counter(
        "250" if (kind == "data" and code == 250) else f"{kind}:{code}" for kind, code, _ in results
    )
    failures = [
        (i, kind, code, reply)
        for i, (kind, code, reply) in enumerate(results)
        if not (kind == "data" and (code == 250 or 500 < code < 600))
        and kind not in ("mail-refused", "rcpt-refused")
    ]
    stored = _stored_raw(directory / "fuzz.db")
    # Only messages with a Message-ID of their own must be new contacts; the others may be an
    # MTA's resend of an earlier mutation of the same seed as far as the router can tell.
    accepted = [
        as_sent(messages[i])
        for i, (kind, code, _) in enumerate(results)
        if code == 250 and messages[i].startswith(b"Message-ID: <fuzz-")
    ]
    missing = sum(1 for raw in accepted if raw not in stored)
    text = (directory / "serve.log").read_text(errors="replace")
    return {
        "messages": len(messages),
        "seconds": round(elapsed, 1),
        "outcomes": dict(outcomes),
        "failures": len(failures),
        "first_failures": failures[:5],
        "gateway_alive": alive and healthy,
        "accepted_checked": len(accepted),
        "accepted_without_stored_raw": missing,
        "tracebacks_in_log": text.count("Traceback"),
        "directory": str(directory),
    }


def as_sent(raw: bytes) -> bytes:
    """The bytes the server keeps of what smtplib sent: as given, ending with CRLF.

    smtplib sends bytes as they are (no line-end fixing) and dot-stuffs every line start, the
    server un-stuffs those after CRLF only: a bare-LF line starting with "." arrives as "..".
    """
    raw = raw if raw.endswith(b"\r\n") else raw + b"\r\n"
    return re.sub(rb"(?<=[^\r]\n)\.", b"..", raw)


def _stored_raw(db: Path) -> set[bytes]:
    """Raw bytes kept as contacts, or in the quarantine (automatic mail matching no ticket)."""
    with sqlite3.connect(db) as conn:
        rows = [
            *conn.execute("SELECT raw FROM contacts"),
            *conn.execute("SELECT raw FROM quarantine"),
        ]
        return {bytes(row[0]) for row in rows if row[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--keep", type=Path, default=None, help="directory for the run's files")
    args = parser.parse_args()
    seeds = seed_messages()
    messages = [raw for _, raw in mutations(seeds, args.count, args.seed)]
    print(f"{len(seeds)} seed messages, {len(messages)} mutations (seed {args.seed})")
    normalised = normalise_pass(messages, seeds)
    print("normalise:", json.dumps({k: round(v, 3) for k, v in normalised.items()}))
    smtp = smtp_pass(messages, args.connections, args.timeout, args.keep)
    print("smtp:", json.dumps(smtp, default=str))
    ok = (
        smtp["failures"] == 0
        and smtp["gateway_alive"]
        and smtp["accepted_without_stored_raw"] == 0
        and normalised["fuzz_max_ms"] < 2000
    )
    print("result:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
