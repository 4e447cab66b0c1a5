"""The conversion of a validated config into the router's :class:`RouterSettings`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from normalizer.contact import Channel, Kind
from router.settings import (
    AckSettings,
    Category,
    ForwardRule,
    Group,
    RouterSettings,
    RoutingRule,
    TriageSettings,
)

if TYPE_CHECKING:
    from gateway.config.model import Config
    from gateway.config.sections import ForwardEntry, RoutingEntry


def router_settings(config: Config) -> RouterSettings:
    """The router's settings, built exactly as ``router.settings`` defines them."""
    categories = tuple(
        Category(c.name, c.description, c.examples, c.group, Kind(c.kind) if c.kind else None)
        for c in config.categories
    )
    # A category's own kind first; an IVR option's kind for the categories without one.
    category_kinds = {o.category: Kind(o.kind) for o in config.ivr.options} if config.ivr else {}
    category_kinds.update({c.name: c.kind for c in categories if c.kind is not None})
    return RouterSettings(
        ticket_prefix=config.tickets.prefix,
        desk_address=config.email.address.casefold(),
        # Legacy addresses: the aliases, and the address of every legacy IMAP mailbox.
        desk_aliases=tuple(
            dict.fromkeys(
                a.casefold()
                for a in (*config.email.aliases, *(m.username for m in config.imap))
                if "@" in a
            )
        ),
        from_name=config.email.from_name,
        message_id_domain=config.email.id_domain,
        reopen_window_days=float(config.tickets.reopen_window_days),
        groups=tuple(Group(g.name, float(g.tier)) for g in config.groups),
        routing=tuple(_routing_rule(r) for r in config.routing),
        triage=TriageSettings(
            high_urgency_words=config.triage.high_urgency_words,
            low_urgency_words=config.triage.low_urgency_words,
            vip=tuple(v.casefold() for v in config.triage.vip),
            service_request_words=config.triage.service_request_words,
            category_kinds=category_kinds,
            min_confidence=config.triage.min_confidence,
        ),
        categories=categories,
        link_window_minutes=config.tickets.link_window_minutes,
        link_similarity=config.triage.link_similarity,
        api_links_identities=config.api.link_identities,
        trusted_authserv_ids=tuple(i.casefold() for i in config.email.trusted_authserv_ids),
        tell_single_address=bool(config.email.single_address_notice),
        acks=AckSettings(
            enabled=config.acks.enabled,
            per_sender_per_hour=config.acks.per_sender_per_hour,
            global_per_minute=config.acks.global_per_minute,
        ),
        forwards=tuple(_forward_rule(f) for f in config.forward),
    )


def _forward_rule(entry: ForwardEntry) -> ForwardRule:
    when = entry.when
    return ForwardRule(
        name=entry.name,
        kind=entry.kind,
        group=when.group,
        channel=when.channel,
        category=when.category,
        ticket_kind=when.kind,
        priority=when.priority,
        address=entry.to.casefold() if entry.to else None,
        relay_replies=entry.relay_replies,
    )


def _routing_rule(entry: RoutingEntry) -> RoutingRule:
    when = entry.when
    return RoutingRule(
        group=entry.group,
        channel=Channel(when.channel) if when.channel else None,
        recipient=when.recipient.casefold() if when.recipient else None,
        sender_domain=when.sender_domain.casefold() if when.sender_domain else None,
        subject_matches=re.compile(when.subject_matches) if when.subject_matches else None,
        body_matches=re.compile(when.body_matches) if when.body_matches else None,
        when_category=when.category,
        set_category=entry.category,
        set_kind=Kind(entry.kind) if entry.kind else None,
        set_priority=entry.priority,
    )
