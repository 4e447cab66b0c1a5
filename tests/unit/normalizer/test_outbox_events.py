"""Outbox event names are defined once, in ``normalizer.outbox_events``: the router, which writes
them, and the outbound transports, which read them, never spell one out, so the two cannot drift
apart (a renamed event read under its old name would go unworded, or unforwarded)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from normalizer.outbox_events import FORWARD_EVENTS, REQUESTER_EVENTS

ROOT = Path(__file__).resolve().parents[3]
SOURCES = sorted([*ROOT.glob("router/*.py"), *ROOT.glob("channels/outbound/*.py")])
# Where an event name is written or read: the payload's "event", a comparison with an event,
# queue_forwards' event argument and Said's.
EVENT_CALLS = frozenset({"queue_forwards", "Said", "cls"})


def _is_event(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id == "event") or (
        isinstance(node, ast.Attribute) and node.attr == "event"
    )


def _names(node: ast.expr) -> Iterator[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.Tuple | ast.List | ast.Set):
        for element in node.elts:
            yield from _names(element)


def spelled_out_events(source: str) -> Iterator[str]:
    """Event names written as literals where an event is written or read in ``source``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Dict):  # a payload's "event"
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "event":
                    yield from _names(value)
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_is_event(side) for side in sides):  # not a vendor's event names
                for side in sides:
                    yield from (v for v in _names(side) if v in REQUESTER_EVENTS | FORWARD_EVENTS)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in EVENT_CALLS:
                for argument in node.args:
                    yield from (
                        v for v in _names(argument) if v in REQUESTER_EVENTS | FORWARD_EVENTS
                    )
        elif isinstance(node, ast.IfExp):
            yield from (
                v for side in (node.body, node.orelse) for v in _names(side) if v in FORWARD_EVENTS
            )


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_router_or_transport_module_spells_out_an_event_name(path: Path) -> None:
    assert list(spelled_out_events(path.read_text(encoding="utf-8"))) == []


def test_the_check_finds_each_way_an_event_name_was_spelled_out() -> None:
    source = """
payload = {"event": "ack"}
if job.event == "contact.added": pass
if event in ("ticket.created", "ticket.escalated"): pass
queue_forwards(conn, settings, ticket_id, "ticket.escalated", now)
said = cls("reply", text)
kind = "ticket.created" if created else "contact.added"
"""
    assert sorted(spelled_out_events(source)) == sorted(
        [
            "ack",
            "contact.added",
            "ticket.created",
            "ticket.escalated",
            "ticket.escalated",
            "reply",
            "ticket.created",
            "contact.added",
        ]
    )
