"""Triage: category, kind, priority and the group that works a new ticket.

``[[routing]]`` rules are tried in order; the first whose every condition matches decides the
group (and may set category, kind, priority). No match: the tier-1 group. Priority comes from the
ITIL impact x urgency matrix: a VIP requester raises impact, urgency words (or the channel's
urgency hint) raise or lower urgency.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from normalizer.contact import Contact, Kind
from router.settings import Group, RouterSettings, RoutingRule

# impact (rows) x urgency (columns): high, medium, low
_MATRIX = {
    ("high", "high"): "P1",
    ("high", "medium"): "P2",
    ("high", "low"): "P3",
    ("medium", "high"): "P2",
    ("medium", "medium"): "P3",
    ("medium", "low"): "P4",
    ("low", "high"): "P3",
    ("low", "medium"): "P4",
    ("low", "low"): "P4",
}


@dataclass(frozen=True, slots=True)
class Triage:
    category: str | None
    kind: Kind
    priority: str
    group: Group
    detail: dict[str, Any]


def _domain(address: str | None) -> str | None:
    if not address or "@" not in address:
        return None
    return address.rsplit("@", 1)[1].casefold()


def rule_matches(rule: RoutingRule, contact: Contact) -> bool:
    if rule.channel is not None and contact.channel is not rule.channel:
        return False
    if rule.recipient is not None and rule.recipient.casefold() not in contact.recipients:
        return False
    if (
        rule.sender_domain is not None
        and _domain(contact.sender.email) != rule.sender_domain.casefold()
    ):
        return False
    if rule.subject_matches is not None and not rule.subject_matches.search(contact.subject):
        return False
    if rule.body_matches is not None and not rule.body_matches.search(contact.text):
        return False
    return rule.when_category is None or contact.hints.category == rule.when_category


@functools.lru_cache(maxsize=32)
def _word_pattern(words: tuple[str, ...]) -> re.Pattern[str] | None:
    if not words:
        return None
    alternatives = "|".join(re.escape(w.casefold()) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})\b")


def _words_in(text: str, words: tuple[str, ...]) -> str | None:
    """The first of ``words`` that stands as a whole word in (case-folded) ``text``."""
    pattern = _word_pattern(words)
    m = pattern.search(text) if pattern is not None else None
    return m.group(0) if m else None


def triage(contact: Contact, settings: RouterSettings, requester_keys: list[str]) -> Triage:
    detail: dict[str, Any] = {}
    rule_index, rule = next(
        ((i, r) for i, r in enumerate(settings.routing) if rule_matches(r, contact)), (None, None)
    )
    groups = {g.name: g for g in settings.groups}
    group = settings.owner_group
    if rule is not None:
        detail["rule"] = rule_index
        if rule.group is not None and rule.group in groups:
            group = groups[rule.group]

    category = contact.hints.category or (rule.set_category if rule else None)
    text = f"{contact.subject}\n{contact.text}".casefold()

    kind = contact.hints.kind or (rule.set_kind if rule else None)
    if kind is None and category is not None:
        kind = settings.triage.category_kinds.get(category)
    if kind is None:
        word = _words_in(text, settings.triage.service_request_words)
        kind = Kind.SERVICE_REQUEST if word else Kind.INCIDENT
        if word:
            detail["kind_word"] = word

    vip = {v.casefold() for v in settings.triage.vip}
    impact = "high" if vip.intersection(k.casefold() for k in requester_keys) else "medium"
    urgency = contact.hints.urgency if contact.hints.urgency in ("high", "medium", "low") else None
    if urgency is None:
        if word := _words_in(text, settings.triage.high_urgency_words):
            urgency, detail["urgency_word"] = "high", word
        elif word := _words_in(text, settings.triage.low_urgency_words):
            urgency, detail["urgency_word"] = "low", word
        else:
            urgency = "medium"
    priority = _MATRIX[(impact, urgency)]
    if rule is not None and rule.set_priority:
        priority = rule.set_priority
    detail.update(impact=impact, urgency=urgency)
    return Triage(category, kind, priority, group, detail)
