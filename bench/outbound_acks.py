"""Event-loop CPU per acknowledgement handed to the relay: ``EmailSender.send`` alone.

The relay is a bare aiosmtpd sink in another process (``smtp_intake.py _sink PORT``). Acks
(the shape the router queues) are sent ``--concurrency`` at a time, as the dispatcher does;
prints the loop thread's CPU per ack (building the message, the SMTP dialogue, and before
sessions were kept, a connection, EHLO and QUIT each). To compare two commits, run it from each
tree in turn (``PYTHONPATH=DIR``, working directory DIR: ``git archive COMMIT | tar -x -C DIR``).

    python bench/outbound_acks.py --acks 2000 --warmup 200
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import smtp_intake as si  # bench/ is on sys.path when run as a script
from ports import free_port

from channels.outbound.email import EmailSender, OutboundSMTPSettings


def ack(n: int) -> dict[str, Any]:
    return {
        "event": "ack",
        "to": f"user{n}@example.org",
        "from_address": si.DESK,
        "from_name": "IT Service Desk",
        "ticket_subject": "Printer on fire again",
        "requester_name": "Jörg Grüße",
        "single_address_notice": None,
        "message_id": f"spoc.{n}.1.ab12@servicedesk.example.com",
        "in_reply_to": f"orig{n}@mail.example.org",
        "references": [f"orig{n}@mail.example.org"],
        "auto_submitted": "auto-replied",
        "ticket_ref": f"SD-{n}",
    }


async def run(port: int, acks: int, warmup: int, concurrency: int) -> float:
    """Loop CPU seconds for ``acks`` sends after ``warmup`` untimed ones."""
    sender = EmailSender(OutboundSMTPSettings(port=port, helo_hostname="spoc.bench"))
    slots = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with slots:
            await sender.send(ack(n))

    await asyncio.gather(*(one(n) for n in range(warmup)))
    started = time.thread_time()
    await asyncio.gather(*(one(n) for n in range(warmup, warmup + acks)))
    spent = time.thread_time() - started
    close = getattr(sender, "close", None)  # trees before kept sessions have none
    if close is not None:
        await close()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--acks", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20, help="the outbox's batch_size")
    args = parser.parse_args()
    port = free_port()
    sink = si.start_sink(port)
    try:
        spent = asyncio.run(run(port, args.acks, args.warmup, args.concurrency))
    finally:
        si.stop(sink)
    tree = Path(sys.modules[EmailSender.__module__].__file__ or "?").parents[2]
    print(f"{tree}: {1000 * spent / args.acks:.3f} ms loop CPU per ack ({args.acks} acks)")


if __name__ == "__main__":
    main()
