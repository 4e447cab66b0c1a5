"""Who is this? One requester per person across channels, never a silent merge.

A requester owns identities ``(kind, value)``: ``email`` (case-folded), ``phone`` (E.164) and
``slack`` (user id), each unique. A contact's identifiers either all point at nobody (a new
requester), at one requester (unknown identifiers are linked to them: they arrived together, so
they are the same person), or at several different requesters -- then nothing is merged: the
contact goes to the requester of the channel's own identifier and the conflict is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from normalizer.contact import Channel, Party
from router.schema import identities, requesters

# Which identifier a channel itself vouches for, in order of preference.
_PRIMARY: dict[Channel, tuple[str, ...]] = {
    Channel.EMAIL: ("email", "phone", "slack"),
    Channel.FAX: ("phone", "email", "slack"),
    Channel.PHONE: ("phone", "email", "slack"),
    Channel.SMS: ("phone", "email", "slack"),
    Channel.SLACK: ("slack", "email", "phone"),
    Channel.API: ("email", "phone", "slack"),
}


# Built once. Both IN lists hit the unique (kind, value) index; exact pairs are kept in Python
# (an email, an E.164 number and a Slack id never look alike anyway).
_KNOWN = sa.select(identities.c.kind, identities.c.value, identities.c.requester_id).where(
    identities.c.kind.in_(sa.bindparam("kinds", expanding=True)),
    identities.c.value.in_(sa.bindparam("values", expanding=True)),
)
_NEW_REQUESTER = sa.insert(requesters).returning(requesters.c.id)
_NEW_IDENTITY = sa.insert(identities)


@dataclass(frozen=True, slots=True)
class Resolved:
    requester_id: int
    created: bool
    linked: tuple[str, ...]  # identity kinds newly linked to an existing requester
    conflict: tuple[int, ...]  # other requesters the contact's identifiers belong to


def party_keys(party: Party) -> list[tuple[str, str]]:
    keys: list[tuple[str, str]] = []
    if party.email:
        keys.append(("email", party.email.casefold()))
    if party.phone:
        keys.append(("phone", party.phone))
    if party.slack_user_id:
        keys.append(("slack", party.slack_user_id))
    return keys


def resolve_requester(conn: Connection, party: Party, channel: Channel, now: datetime) -> Resolved:
    keys = party_keys(party)
    assert keys, "caller checks that the party has an identifier"
    rows = conn.execute(
        _KNOWN, {"kinds": [k for k, _ in keys], "values": [v for _, v in keys]}
    ).all()
    wanted = set(keys)
    owner_of = {kind: rid for kind, value, rid in rows if (kind, value) in wanted}

    if not owner_of:
        rid = conn.execute(_NEW_REQUESTER, {"name": party.name, "created_at": now}).scalar_one()
        conn.execute(_NEW_IDENTITY, [{"requester_id": rid, "kind": k, "value": v} for k, v in keys])
        return Resolved(rid, created=True, linked=(), conflict=())

    distinct = set(owner_of.values())
    if len(distinct) == 1:
        rid = distinct.pop()
        missing = [(k, v) for k, v in keys if k not in owner_of]
        if missing:
            conn.execute(
                _NEW_IDENTITY, [{"requester_id": rid, "kind": k, "value": v} for k, v in missing]
            )
        _fill_name(conn, rid, party.name)
        return Resolved(rid, created=False, linked=tuple(k for k, _ in missing), conflict=())

    # Identifiers of two different people in one contact: keep them apart.
    primary = next(kind for kind in _PRIMARY[channel] if kind in owner_of)
    rid = owner_of[primary]
    others = tuple(sorted(r for r in distinct if r != rid))
    return Resolved(rid, created=False, linked=(), conflict=others)


def _fill_name(conn: Connection, requester_id: int, name: str | None) -> None:
    if name:
        conn.execute(
            sa.update(requesters)
            .where(requesters.c.id == requester_id, requesters.c.name.is_(None))
            .values(name=name)
        )
