"""``spoc quarantine list|show|replay``: what could not become a contact, kept raw.

``list [--system | --errors] [--limit N] [--json]``
    newest first; ``--system`` shows only automatic mail that matched no ticket (bounces,
    feedback reports, auto-replies), ``--errors`` only what could not be parsed or routed.
``show ID [--raw]``
    one item's fields, then its headers; ``--raw`` writes the exact bytes kept to stdout.
``replay ID... | --all [--system | --errors]``
    feed kept mail through the converter and the router again (idempotent: the router dedupes
    on the Message-ID); ``--all`` takes every item not replayed yet, oldest first, with
    progress on a terminal. A system mail that still matches no ticket stays kept.

Exit codes as ``spoc``'s: 0 done, 1 an item is unknown or a replay failed, 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import email.parser
import json
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli import clean
from gateway.config import Config
from gateway.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from router.quarantine import QuarantineStore
    from router.router import Router

SHOWN_HEADERS = 40


def add_quarantine_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Register ``spoc quarantine ...`` on the CLI's subcommands."""
    quarantine = commands.add_parser(
        "quarantine", parents=[common], help="mail that could not become a contact"
    )
    sub = quarantine.add_subparsers(title="quarantine commands", metavar="COMMAND")
    listing = sub.add_parser("list", parents=[common], help="kept items, newest first")
    _kind_flags(listing)
    listing.add_argument("--limit", metavar="N", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=_list)
    show = sub.add_parser("show", parents=[common], help="one item")
    show.add_argument("id", metavar="ID", type=int)
    show.add_argument("--raw", action="store_true", help="write the raw bytes to stdout")
    show.set_defaults(run=_show)
    replay = sub.add_parser("replay", parents=[common], help="route kept mail again")
    replay.add_argument("ids", metavar="ID", type=int, nargs="*")
    replay.add_argument("--all", action="store_true", help="every item not replayed yet")
    _kind_flags(replay)
    replay.set_defaults(run=_replay)


def _kind_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--system", dest="kind", action="store_const", const="system")
    group.add_argument("--errors", dest="kind", action="store_const", const="error")


def _list(args: argparse.Namespace, config: Config, path: Path) -> int:
    async def run(box: QuarantineStore, router: Router) -> int:
        items = await box.items(kind=args.kind, limit=max(1, args.limit))
        if args.json:
            json.dump({"items": items}, sys.stdout, indent=2, default=str, ensure_ascii=False)
            sys.stdout.write("\n")
        else:
            sys.stdout.write(render_items(items))
        return EXIT_OK

    return asyncio.run(_with_quarantine(config, run))


def _show(args: argparse.Namespace, config: Config, path: Path) -> int:
    async def run(box: QuarantineStore, router: Router) -> int:
        item = await box.get(args.id)
        if args.raw:
            sys.stdout.flush()
            sys.stdout.buffer.write(item["raw"])
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(render_item(item))
        return EXIT_OK

    return asyncio.run(_with_quarantine(config, run))


def _replay(args: argparse.Namespace, config: Config, path: Path) -> int:
    if bool(args.ids) == bool(args.all):
        print("spoc quarantine replay: give item ids or --all (not both)", file=sys.stderr)
        return EXIT_USAGE

    async def run(box: QuarantineStore, router: Router) -> int:
        from gateway.progress import progress, say

        ids = list(args.ids) if args.ids else await box.ids(kind=args.kind)
        failed = 0
        for item_id in progress(ids, total=len(ids), unit="item"):
            outcome = await box.replay(item_id, router, router.settings)
            if outcome.outcome == "failed":
                failed += 1
                say(f"quarantine {item_id}: not replayed: {clean(outcome.error)}", error=True)
                continue
            where = outcome.ticket_ref or "still kept"
            detail = f", {clean(outcome.error)}" if outcome.error else ""
            say(f"quarantine {item_id}: {where} ({outcome.outcome}{detail})")
        if not ids:
            say("nothing to replay")
        return EXIT_FAILED if failed else EXIT_OK

    return asyncio.run(_with_quarantine(config, run))


async def _with_quarantine(
    config: Config, action: Callable[[QuarantineStore, Router], Awaitable[int]]
) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.migrate import upgrade
    from normalizer.intake import TemporaryIntakeError
    from router.quarantine import QuarantineItemNotFound, QuarantineStore
    from router.router import Router
    from router.store import Store, is_sqlite

    url = config.database_url
    if is_sqlite(url):
        upgrade(url)
    store = Store.from_url(url)
    try:
        await store.start()
        return await action(QuarantineStore(store), Router(store, config.router_settings()))
    except QuarantineItemNotFound as exc:
        print(f"spoc: no such quarantine item: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (SQLAlchemyError, TemporaryIntakeError) as exc:
        print(f"spoc: database error: {clean(exc)[:300]}", file=sys.stderr)
        print("spoc: is the schema current? try `spoc db upgrade`", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await store.close()


def render_items(items: list[dict[str, Any]]) -> str:
    """One line per item: ``#ID KIND RECEIVED SOURCE REASON [-> replayed as] from "subject"``."""
    if not items:
        return "the quarantine is empty\n"
    lines = []
    for item in items:
        line = (
            f"#{item['id']}  {clean(item['kind'])}  {clean(item['received_at'])[:16]}  "
            f"{clean(item['source'])}  {_reason(item)}  from {clean(item['from']) or '-'}"
        )
        if item["subject"]:
            line += f"  {clean(item['subject'], 60)!r}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _reason(item: Mapping[str, Any]) -> str:
    reason = clean(item["reason"], 40)
    return f"{reason} -> {clean(item['replayed_as'])}" if item["replayed_as"] else reason


def render_item(item: Mapping[str, Any]) -> str:
    fields = ("id", "kind", "reason", "source", "raw_type", "size", "sha256", "from", "subject")
    lines = [f"{name + ':':<18}{clean(item.get(name))}" for name in fields]
    lines += [
        f"{'received_at:':<18}{clean(item.get('received_at'))}",
        f"{'replayed_as:':<18}{clean(item.get('replayed_as')) or '-'}",
        f"{'last_replay_error:':<18}{clean(item.get('last_replay_error')) or '-'}",
    ]
    if item.get("raw_type") == "message/rfc822":
        headers = email.parser.BytesParser().parsebytes(item["raw"], headersonly=True)
        lines.append("")
        for key, value in list(headers.raw_items())[:SHOWN_HEADERS]:
            lines.append(f"{clean(key)}: {clean(value)}")
    return "\n".join(lines) + "\n"
