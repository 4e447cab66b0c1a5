"""The ``spoc`` command line (also ``python -m gateway``).

``spoc [--config F] COMMAND``; the config path comes from ``--config``, else ``$SPOC_CONFIG``, else
``./config.toml``. Commands: ``serve [--workers N]`` (``gateway.workers``), ``check-config``,
``tickets list|show``, ``db upgrade``, ``replay FILE.eml...``, ``demo``, ``outbox list|retry``
(``gateway.cli_outbox``). Exit codes: 0 success, 1 the thing asked for failed (unknown ticket,
database error), 2 usage or config error (one line per problem on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from gateway.config import Config, ConfigError, load_config
from gateway.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from router.tickets import CHANNELS, STATUSES

if TYPE_CHECKING:
    from router.store import Store
    from router.tickets import TicketService

SUBJECT_WIDTH = 50
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``spoc`` command and return its exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    standalone: Callable[[argparse.Namespace], int] | None = getattr(args, "standalone", None)
    if standalone is not None:  # needs no config file (``demo``)
        return standalone(args)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    path = config_path(args.config, os.environ)
    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    run: Callable[[argparse.Namespace, Config, Path], int] = args.run
    return run(args, config, path)


def config_path(given: str | None, environ: Mapping[str, str]) -> Path:
    """``--config``, else ``$SPOC_CONFIG``, else ``./config.toml``."""
    return Path(given or environ.get("SPOC_CONFIG") or "config.toml")


def _parser() -> argparse.ArgumentParser:
    config_help = "config file (default: $SPOC_CONFIG, else ./config.toml)"
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="F", default=argparse.SUPPRESS, help=config_help)
    parser = argparse.ArgumentParser(
        prog="spoc", description="Single point of contact intake gateway for IT service desks."
    )
    parser.add_argument("--config", metavar="F", default=None, help=config_help)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = commands.add_parser("serve", parents=[common], help="run every enabled channel")
    serve.add_argument(
        "--workers",
        metavar="N",
        type=_positive_int,
        default=1,
        help="N processes sharing the SMTP and HTTP ports (SO_REUSEPORT); PostgreSQL only",
    )
    serve.set_defaults(run=_serve)
    check = commands.add_parser("check-config", parents=[common], help="validate the config")
    check.set_defaults(run=_check_config)

    tickets = commands.add_parser("tickets", parents=[common], help="look at tickets")
    ticket_commands = tickets.add_subparsers(title="tickets commands", metavar="COMMAND")
    listing = ticket_commands.add_parser("list", parents=[common], help="newest tickets first")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--channel", choices=CHANNELS)
    listing.add_argument("--group", metavar="G")
    listing.add_argument("--limit", metavar="N", type=_positive_int, default=50)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=_tickets_list)
    show = ticket_commands.add_parser("show", parents=[common], help="one ticket in full")
    show.add_argument("ref", metavar="REF")
    show.add_argument("--json", action="store_true", help="print the ticket JSON")
    show.set_defaults(run=_tickets_show)

    db = commands.add_parser("db", parents=[common], help="database schema")
    db_commands = db.add_subparsers(title="db commands", metavar="COMMAND")
    upgrade = db_commands.add_parser("upgrade", parents=[common], help="migrate to the head")
    upgrade.set_defaults(run=_db_upgrade)

    replay = commands.add_parser("replay", parents=[common], help="re-ingest saved messages")
    replay.add_argument("files", metavar="FILE.eml", nargs="+", type=Path)
    replay.set_defaults(run=_replay)
    demo = commands.add_parser(
        "demo",
        help="a throwaway gateway with one contact through every channel (ignores --config)",
    )
    demo.add_argument("--once", action="store_true", help="exit after printing the tickets")
    demo.set_defaults(standalone=_demo)
    from gateway.quarantine_cli import add_quarantine_commands  # it imports this module

    add_quarantine_commands(commands, common)

    from gateway.cli_outbox import add_outbox_commands  # it uses this module's helpers

    add_outbox_commands(commands, common)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


# --- commands ------------------------------------------------------------------------------------


def _check_config(args: argparse.Namespace, config: Config, path: Path) -> int:
    print(f"config OK: {path}")
    return EXIT_OK


def _serve(args: argparse.Namespace, config: Config, path: Path) -> int:
    if args.workers > 1:
        from gateway.workers import run_workers, workers_refused

        refused = workers_refused(config.database_url, args.workers)
        if refused is not None:
            print(f"spoc: {refused}", file=sys.stderr)
            return EXIT_USAGE
        return run_workers(config, args.workers)
    from gateway.serve import serve

    return asyncio.run(serve(config))


def _db_upgrade(args: argparse.Namespace, config: Config, path: Path) -> int:
    from gateway.migrate import upgrade

    upgrade(config.database_url)
    print("database at head")
    return EXIT_OK


def _replay(args: argparse.Namespace, config: Config, path: Path) -> int:
    from gateway.replay import replay_files

    return asyncio.run(replay_files(config, args.files))


def _demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return asyncio.run(run_demo(once=args.once))


def _tickets_list(args: argparse.Namespace, config: Config, path: Path) -> int:
    return asyncio.run(_with_tickets(config, lambda service: _list(service, args, sys.stdout)))


def _tickets_show(args: argparse.Namespace, config: Config, path: Path) -> int:
    return asyncio.run(_with_tickets(config, lambda service: _show(service, args, sys.stdout)))


async def _with_tickets(config: Config, action: Callable[[TicketService], Awaitable[int]]) -> int:
    """Run ``action(TicketService)`` on the store; an unknown ref exits 1."""
    from router.tickets import TicketNotFound, TicketService

    async def run(store: Store) -> int:
        try:
            return await action(TicketService(store, config.router_settings()))
        except TicketNotFound as exc:
            print(f"spoc: no such ticket: {clean(exc)}", file=sys.stderr)
            return EXIT_FAILED

    return await with_store(config, run)


async def with_store(config: Config, action: Callable[[Store], Awaitable[int]]) -> int:
    """Open the store, run ``action(store)``, close the store; database failures exit 1."""
    from sqlalchemy.exc import SQLAlchemyError

    from normalizer.intake import TemporaryIntakeError
    from router.store import Store

    store = Store.from_url(config.database_url)
    try:
        await store.start()
        return await action(store)
    except (SQLAlchemyError, TemporaryIntakeError) as exc:
        print(f"spoc: database error: {clean(exc, 300)}", file=sys.stderr)
        print("spoc: is the schema current? try `spoc db upgrade`", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await store.close()


async def _list(service: TicketService, args: argparse.Namespace, out: TextIO) -> int:
    from router.tickets import TicketQuery

    query = TicketQuery(
        status=args.status, channel=args.channel, group=args.group, limit=args.limit
    )
    page = await service.list(query)
    if args.json:
        json.dump({"tickets": page.items, "next": page.next}, out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        out.write(render_table(page.items))
    return EXIT_OK


async def _show(service: TicketService, args: argparse.Namespace, out: TextIO) -> int:
    ticket = await service.get(args.ref)
    if args.json:
        json.dump(ticket, out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        out.write(render_ticket(ticket))
    return EXIT_OK


# --- rendering -----------------------------------------------------------------------------------


def clean(value: object, width: int | None = None) -> str:
    """Safe to put on a terminal: no control characters, one line, at most ``width`` chars."""
    text = "" if value is None else str(value)
    text = " ".join(_CONTROL_RE.sub(" ", text).split())
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def _when(value: object) -> str:
    """``2026-11-22T15:00:00Z`` -> ``2026-11-22 15:00:00Z`` (readable, still sortable)."""
    return clean(value).replace("T", " ", 1)


def render_table(items: Sequence[Mapping[str, Any]]) -> str:
    """The aligned ``tickets list`` table, newest first as the service returned them."""
    if not items:
        return "no tickets\n"
    header = ("REF", "STATUS", "PRIO", "CHANNEL", "GROUP", "CREATED", "SUBJECT")
    rows = [header] + [
        (
            clean(item.get("ref")),
            clean(item.get("status")),
            clean(item.get("priority")),
            clean(item.get("channel")),
            clean(item.get("group")),
            _when(item.get("created_at"))[:16],
            clean(item.get("subject"), SUBJECT_WIDTH),
        )
        for item in items
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = [
        "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def render_ticket(ticket: Mapping[str, Any]) -> str:
    """``tickets show``: header fields, requester, then contacts and events in time order."""
    kind = "/".join(clean(v) for v in (ticket.get("kind"), ticket.get("category")) if v)
    lines = [
        f"{clean(ticket.get('ref'))}  {clean(ticket.get('status'))}  "
        f"{clean(ticket.get('priority'))}  {kind}".rstrip(),
        f"Subject:   {clean(ticket.get('subject'))}",
        f"Channel:   {clean(ticket.get('channel'))}",
        f"Owner:     {clean(ticket.get('owner'))}",
        f"Group:     {clean(ticket.get('group'))} (tier {clean(ticket.get('tier'))})",
        f"Created:   {_when(ticket.get('created_at'))}",
        f"Updated:   {_when(ticket.get('updated_at'))}",
        f"Requester: {_requester(ticket.get('requester'))}",
    ]
    timeline: list[tuple[str, int, list[str]]] = []
    for contact in ticket.get("contacts") or []:
        timeline.append((clean(contact.get("received_at")), 0, _contact_lines(contact)))
    for event in ticket.get("events") or []:
        detail = event.get("detail") or {}
        text = f"  {json.dumps(detail, ensure_ascii=False, sort_keys=True)}" if detail else ""
        line = f"{_when(event.get('at'))}  event {clean(event.get('type'))}{clean(text)}"
        timeline.append((clean(event.get("at")), 1, [line]))
    if timeline:
        lines.append("")
        for _, _, entry in sorted(timeline, key=lambda t: (t[0], t[1])):
            lines.extend(entry)
    return "\n".join(lines) + "\n"


def _requester(requester: object) -> str:
    if not isinstance(requester, Mapping):
        return "-"
    parts = [clean(requester.get("name"))]
    if requester.get("email"):
        parts.append(f"<{clean(requester['email'])}>")
    if requester.get("phone"):
        parts.append(clean(requester["phone"]))
    if requester.get("slack_user_id"):
        parts.append(f"slack:{clean(requester['slack_user_id'])}")
    return " ".join(p for p in parts if p) or "-"


def _contact_lines(contact: Mapping[str, Any]) -> list[str]:
    head = (
        f"{_when(contact.get('received_at'))}  {clean(contact.get('direction'))} "
        f"{clean(contact.get('channel'))}  from {clean(contact.get('from')) or '-'}"
    )
    if contact.get("subject"):
        head += f"  {clean(contact.get('subject'))!r}"
    lines = [head]
    text = _CONTROL_RE.sub(" ", str(contact.get("text") or "")).strip()
    lines.extend(f"    {line.rstrip()}" for line in text.splitlines())
    for attachment in contact.get("attachments") or []:
        lines.append(
            f"    [attachment] {clean(attachment.get('filename'))} "
            f"({clean(attachment.get('content_type'))}, {clean(attachment.get('size'))} bytes)"
        )
    return lines
