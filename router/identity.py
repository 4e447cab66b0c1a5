"""Who is this? One requester per person across channels, never a silent merge.

A requester owns identities ``(kind, value)``: ``email`` (case-folded), ``phone`` (E.164),
``slack`` (user id) and ``sender`` (a caller id that is no number: a short code, ``ACME``,
``client:alice``), each unique. A ``sender`` identity is the channel's own and only ever finds
the requester it made: no other contact names it, so it is never merged with anybody. Only
identifiers the channel vouches for count: the caller id on a call, the Slack user (and the
email Slack verified for them), the sender of an email, the first identifier an API client
names. Anything else a contact claims -- a phone number typed
into a web form next to an email -- is recorded as unverified and never finds, creates or links
a requester, so nobody can attach their number to someone else's requester and reach their
tickets.

The vouched identifiers either all point at nobody (a new requester), at one requester
(unknown ones are linked to them), or at several different requesters -- then nothing is
merged: the contact goes to the requester of the channel's own identifier and the conflict is
recorded.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from normalizer.contact import Channel, Party
from router import prepared
from router.schema import identities, requesters

# Which identifier a channel itself vouches for, in order of preference.
_PRIMARY: dict[Channel, tuple[str, ...]] = {
    Channel.EMAIL: ("email", "phone", "slack", "sender"),
    Channel.FAX: ("phone", "email", "slack", "sender"),
    Channel.PHONE: ("phone", "sender", "email", "slack"),
    Channel.SMS: ("phone", "sender", "email", "slack"),
    Channel.SLACK: ("slack", "email", "phone", "sender"),
    Channel.API: ("email", "phone", "slack", "sender"),
    Channel.WEB: ("email", "phone", "slack", "sender"),
}


# What each channel has verified itself (the API: only the first identifier it names).
_VOUCHED: dict[Channel, frozenset[str]] = {
    Channel.EMAIL: frozenset({"email"}),
    Channel.FAX: frozenset({"phone"}),
    Channel.PHONE: frozenset({"phone", "sender"}),
    Channel.SMS: frozenset({"phone", "sender"}),
    Channel.SLACK: frozenset({"slack", "email"}),
    Channel.WEB: frozenset({"email"}),  # whatever else a form says is hearsay
}


@functools.cache
def _known(count: int) -> sa.Select[tuple[str, str, int]]:
    """Built once per number of identifiers. Both IN lists hit the unique (kind, value) index;
    exact pairs are kept in Python (an email, an E.164 number and a Slack id never look alike
    anyway). A bind per value, not an expanding one: the statement is prepared once."""
    return sa.select(identities.c.kind, identities.c.value, identities.c.requester_id).where(
        identities.c.kind.in_([sa.bindparam(f"kind{n}") for n in range(count)]),
        identities.c.value.in_([sa.bindparam(f"value{n}") for n in range(count)]),
    )


_NEW_REQUESTER = sa.insert(requesters).returning(requesters.c.id)
_NEW_IDENTITY = sa.insert(identities)
_FILL_NAME = (
    sa.update(requesters)
    .where(requesters.c.id == sa.bindparam("requester_id"), requesters.c.name.is_(None))
    .values(name=sa.bindparam("new_name"))
)


@dataclass(frozen=True, slots=True)
class Resolved:
    requester_id: int
    created: bool
    linked: tuple[str, ...]  # identity kinds newly linked to an existing requester
    conflict: tuple[int, ...]  # other requesters the contact's identifiers belong to
    unverified: tuple[str, ...] = ()  # identity kinds the contact claimed, left unused


def party_keys(party: Party) -> list[tuple[str, str]]:
    keys: list[tuple[str, str]] = []
    if party.email:
        keys.append(("email", party.email.casefold()))
    if party.phone:
        keys.append(("phone", party.phone))
    if party.slack_user_id:
        keys.append(("slack", party.slack_user_id))
    if party.sender_id:
        keys.append(("sender", party.sender_id))
    return keys


def vouched_keys(
    party: Party, channel: Channel, api_links_identities: bool = False
) -> list[tuple[str, str]]:
    """The party's identifiers that ``channel`` vouches for (never empty if the party isn't)."""
    keys = party_keys(party)
    if channel is Channel.API and api_links_identities:
        return keys
    trusted = _VOUCHED.get(channel) or frozenset(k for k, _ in keys[:1])
    return [key for key in keys if key[0] in trusted] or keys[:1]


def resolve_requester(
    conn: Connection,
    party: Party,
    channel: Channel,
    now: datetime,
    api_links_identities: bool = False,
) -> Resolved:
    keys = vouched_keys(party, channel, api_links_identities)
    assert keys, "caller checks that the party has an identifier"
    unverified = tuple(kind for kind, value in party_keys(party) if (kind, value) not in keys)
    params = {f"kind{n}": k for n, (k, _) in enumerate(keys)}
    params.update((f"value{n}", v) for n, (_, v) in enumerate(keys))
    rows = prepared.rows(conn, _known(len(keys)), params)
    wanted = set(keys)
    owner_of = {kind: rid for kind, value, rid in rows if (kind, value) in wanted}

    if not owner_of:
        rid = prepared.value(conn, _NEW_REQUESTER, {"name": party.name, "created_at": now})
        prepared.run(
            conn, _NEW_IDENTITY, [{"requester_id": rid, "kind": k, "value": v} for k, v in keys]
        )
        return Resolved(rid, created=True, linked=(), conflict=(), unverified=unverified)

    distinct = set(owner_of.values())
    if len(distinct) == 1:
        rid = distinct.pop()
        missing = [(k, v) for k, v in keys if k not in owner_of]
        if missing:
            prepared.run(
                conn,
                _NEW_IDENTITY,
                [{"requester_id": rid, "kind": k, "value": v} for k, v in missing],
            )
        _fill_name(conn, rid, party.name)
        linked = tuple(k for k, _ in missing)
        return Resolved(rid, created=False, linked=linked, conflict=(), unverified=unverified)

    # Identifiers of two different people in one contact: keep them apart.
    primary = next(kind for kind in _PRIMARY[channel] if kind in owner_of)
    rid = owner_of[primary]
    others = tuple(sorted(r for r in distinct if r != rid))
    return Resolved(rid, created=False, linked=(), conflict=others, unverified=unverified)


def _fill_name(conn: Connection, requester_id: int, name: str | None) -> None:
    if name:
        prepared.run(conn, _FILL_NAME, {"requester_id": requester_id, "new_name": name})
