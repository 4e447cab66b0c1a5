"""The router's own settings: plain frozen dataclasses the gateway builds from ``config.toml``.

The router never reads the config file; it gets exactly these values through constructors.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from normalizer.contact import Channel, Kind


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    tier: float


@dataclass(frozen=True, slots=True)
class RoutingRule:
    """One ``[[routing]]`` entry: every condition given must match (AND); first rule wins.

    Conditions: ``channel``, ``recipient`` (an accepted address or alias, case-folded),
    ``sender_domain``, ``subject_matches`` / ``body_matches`` (regexes), ``category``
    (the hint the channel gave). Results: ``group`` and optionally ``category``, ``kind``,
    ``priority`` (forces P1..P4).
    """

    group: str | None = None
    channel: Channel | None = None
    recipient: str | None = None
    sender_domain: str | None = None
    subject_matches: re.Pattern[str] | None = None
    body_matches: re.Pattern[str] | None = None
    when_category: str | None = None
    set_category: str | None = None
    set_kind: Kind | None = None
    set_priority: str | None = None


@dataclass(frozen=True, slots=True)
class Category:
    """One ``[[categories]]`` entry: what the desk calls a kind of problem, and how to know it."""

    name: str
    description: str
    examples: tuple[str, ...] = ()
    group: str | None = None
    kind: Kind | None = None


# The category a ticket gets when the classifier is not sure enough: the desk sorts it.
UNCATEGORISED = "uncategorised"


@dataclass(frozen=True, slots=True)
class TriageSettings:
    """Priority = impact x urgency (ITIL matrix). Words raise urgency; VIP requesters impact."""

    high_urgency_words: tuple[str, ...] = (
        "urgent",
        "asap",
        "emergency",
        "outage",
        "down",
        "critical",
    )
    low_urgency_words: tuple[str, ...] = ("when you have time", "no rush", "low priority", "fyi")
    vip: tuple[str, ...] = ()  # emails or E.164 phones, case-folded
    service_request_words: tuple[str, ...] = (
        "request",
        "access to",
        "new laptop",
        "install",
        "order",
        "onboard",
        "please provide",
    )
    # category -> kind for categories that imply a kind (e.g. from IVR options)
    category_kinds: dict[str, Kind] = field(default_factory=dict)
    # The classifier's top guess decides the category only at or above this score (0..1).
    min_confidence: float = 0.45


@dataclass(frozen=True, slots=True)
class ForwardRule:
    """One ``[[forward]]`` target as the router sees it: its name, its kind and its ``when``
    filter (every condition given must match the ticket as it is after the event)."""

    name: str
    kind: str  # webhook | email | jira | servicenow | zendesk
    group: str | None = None
    channel: str | None = None
    category: str | None = None
    ticket_kind: str | None = None
    priority: str | None = None
    address: str | None = None  # an email target's address: its replies are not sent back to it
    relay_replies: bool = True  # an email target's answers by mail go on to the requester


@dataclass(frozen=True, slots=True)
class AckSettings:
    enabled: bool = True
    per_sender_per_hour: int = 5
    global_per_minute: int = 120


@dataclass(frozen=True, slots=True)
class RouterSettings:
    ticket_prefix: str = "SD"
    desk_address: str = "servicedesk@example.com"
    desk_aliases: tuple[str, ...] = ()
    from_name: str = "IT Service Desk"
    message_id_domain: str = "spoc.invalid"  # right-hand side of the Message-IDs we write
    reopen_window_days: float = 14.0
    groups: tuple[Group, ...] = (Group("service-desk", 1.0),)
    routing: tuple[RoutingRule, ...] = ()
    triage: TriageSettings = field(default_factory=TriageSettings)
    acks: AckSettings = field(default_factory=AckSettings)
    categories: tuple[Category, ...] = ()  # empty: no category checks, no classifier
    # A new contact from the same requester on another channel joins their open ticket from
    # the last this many minutes when the texts match (router.linking); 0 turns it off.
    link_window_minutes: float = 30.0
    link_similarity: float = 0.65  # cosine of the two texts' embeddings that says "same problem"
    # API clients vouch for every identifier they send (router.identity); default: the first.
    api_links_identities: bool = False
    # Outbound transports the gateway runs (email always; sms with Twilio, slack with Slack).
    outbound_transports: frozenset[str] = frozenset({"email"})
    # [email] trusted_authserv_ids: the MX in front of the desk. When set, a first-time sender
    # is acknowledged only if that MX's Authentication-Results passed them (router.acks).
    trusted_authserv_ids: tuple[str, ...] = ()
    # Tell each requester whose mail reached a legacy alias, once, in the ack, that the desk has
    # one address (router.legacy); the wording is the email transport's ([email]
    # single_address_notice, "" turns telling off).
    tell_single_address: bool = True
    # [[forward]] targets (router.forwards): ticket events queue a forward.<kind> row for each.
    forwards: tuple[ForwardRule, ...] = ()

    @property
    def forward_addresses(self) -> frozenset[str]:
        """The addresses of ``kind = "email"`` targets (case-folded): mail from them is the
        tool's voice, never the requester's, and no reply is addressed to them."""
        return frozenset(r.address for r in self.forwards if r.address)

    @property
    def our_addresses(self) -> frozenset[str]:
        return _casefolded((self.desk_address, *self.desk_aliases))

    @property
    def owner_group(self) -> Group:
        """The lowest tier owns every ticket for life (the service desk)."""
        return min(self.groups, key=lambda g: g.tier)


@functools.cache  # asked several times for every contact; the settings never change
def _casefolded(addresses: tuple[str, ...]) -> frozenset[str]:
    return frozenset(a.casefold() for a in addresses)
