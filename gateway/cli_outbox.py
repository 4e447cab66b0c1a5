"""``spoc outbox list [--dead] [--limit N] [--json]`` and ``spoc outbox retry ID``.

``list`` shows deliveries waiting to be sent, newest first, or with ``--dead`` the dead letters
(given up on, each with its last error). ``retry ID`` makes one due now: a dead letter is
pending again with its attempts and lifetime starting over; the running gateway sends it within
``[outbox] poll_interval_seconds``. Exit 1 for an unknown id, a delivered row or one being sent
right now.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from gateway.cli import _positive_int, _when, clean, with_store
from gateway.config import Config
from gateway.exit_codes import EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from router.outbox_admin import OutboxAdmin
    from router.store import Store

ERROR_WIDTH = 60


def add_outbox_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    outbox = commands.add_parser("outbox", parents=[common], help="deliveries waiting or dead")
    outbox_commands = outbox.add_subparsers(title="outbox commands", metavar="COMMAND")
    listing = outbox_commands.add_parser(
        "list", parents=[common], help="deliveries waiting, newest first"
    )
    listing.add_argument("--dead", action="store_true", help="the dead letters instead")
    listing.add_argument("--limit", metavar="N", type=_positive_int, default=50)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=_outbox_list)
    retry = outbox_commands.add_parser("retry", parents=[common], help="send one again now")
    retry.add_argument("id", metavar="ID", type=_positive_int)
    retry.set_defaults(run=_outbox_retry)


def _outbox_list(args: argparse.Namespace, config: Config, path: Path) -> int:
    return asyncio.run(_with_outbox(config, lambda admin: _list(admin, args, sys.stdout)))


def _outbox_retry(args: argparse.Namespace, config: Config, path: Path) -> int:
    return asyncio.run(_with_outbox(config, lambda admin: _retry(admin, args, sys.stdout)))


async def _with_outbox(config: Config, action: Callable[[OutboxAdmin], Awaitable[int]]) -> int:
    """Run ``action(OutboxAdmin)`` on the store; an unknown or unretryable id exits 1."""
    from router.outbox_admin import OutboxAdmin, OutboxItemNotFound, OutboxRetryRefused

    async def run(store: Store) -> int:
        try:
            return await action(OutboxAdmin(store))
        except OutboxItemNotFound as exc:
            print(f"spoc: no such outbox item: {clean(exc)}", file=sys.stderr)
        except OutboxRetryRefused as exc:
            print(f"spoc: {clean(exc)}", file=sys.stderr)
        return EXIT_FAILED

    return await with_store(config, run)


async def _list(admin: OutboxAdmin, args: argparse.Namespace, out: TextIO) -> int:
    from router.outbox_admin import OutboxQuery

    page = await admin.list(
        OutboxQuery(status="dead" if args.dead else "pending", limit=args.limit)
    )
    if args.json:
        json.dump({"items": page.items, "next": page.next}, out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        out.write(render_outbox(page.items, dead=args.dead))
    return EXIT_OK


async def _retry(admin: OutboxAdmin, args: argparse.Namespace, out: TextIO) -> int:
    item = await admin.retry(args.id)
    out.write(f"outbox {item['id']}: {clean(item['kind'])} to {clean(item['target'])} queued\n")
    return EXIT_OK


def render_outbox(items: Sequence[Mapping[str, Any]], *, dead: bool) -> str:
    """The aligned ``outbox list`` table; the last error comes last, cut to one short line."""
    if not items:
        return "no dead letters\n" if dead else "nothing waiting\n"
    header = ("ID", "KIND", "TICKET", "TARGET", "TRIES", "CREATED", "DEAD" if dead else "NEXT")
    rows = [(*header, "LAST ERROR")] + [
        (
            clean(item.get("id")),
            clean(item.get("kind")),
            clean(item.get("ticket_ref")) or "-",
            clean(item.get("target"), 40),
            clean(item.get("attempts")),
            _when(item.get("created_at"))[:16],
            _when(item.get("done_at" if dead else "next_attempt_at"))[:16] or "-",
            clean(item.get("last_error"), ERROR_WIDTH) or "-",
        )
        for item in items
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"
