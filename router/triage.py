"""Triage: category, kind, priority and the group that works a new ticket.

``[[routing]]`` rules are tried in order; the first whose every condition matches decides the
group (and may set category, kind, priority). No match: the tier-1 group. Priority comes from the
ITIL impact x urgency matrix: a VIP requester raises impact, urgency words (or the channel's
urgency hint) raise or lower urgency.

Category: an explicit signal wins -- the channel's hint (an IVR digit, the Slack modal, the API's
``category``) or a rule's ``category``. Only what they leave open is filled in by the classifier's
:class:`~router.meaning.Meaning`, and only when its top guess scores at least
``triage.min_confidence``; below that the ticket is ``uncategorised`` for the desk. Either way the
top three guesses go on the ticket's ``classified`` event. A category's ``group`` and ``kind``
apply when no rule chose them.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from normalizer.contact import Channel, Contact, Kind
from normalizer.intake import ContactRejectedError
from router.meaning import Meaning
from router.settings import UNCATEGORISED, Group, RouterSettings, RoutingRule

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
    classified: dict[str, Any] | None = None  # the ``classified`` event's detail


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


@functools.lru_cache(maxsize=32)
def _folded(words: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(w.casefold() for w in words)


def _words_in(text: str, words: tuple[str, ...]) -> str | None:
    """The first of ``words`` that stands as a whole word in (case-folded) ``text``.

    A text that holds none of the words anywhere cannot hold one as a whole word: that is
    asked first (a substring search per word, in C), and the word pattern, which tries its
    alternatives at every position of a long text, runs only when one is there."""
    if not any(w in text for w in _folded(words)):
        return None
    pattern = _word_pattern(words)
    m = pattern.search(text) if pattern is not None else None
    return m.group(0) if m else None


def check_category(contact: Contact, settings: RouterSettings) -> None:
    """An API client naming a category the config does not define is refused (400, field
    ``category``). Other channels only offer the configured ones (IVR, Slack modal)."""
    name = contact.hints.category
    if contact.channel is not Channel.API or name is None or not settings.categories:
        return
    known = [c.name for c in settings.categories]
    if name not in known:
        raise ContactRejectedError(
            f"unknown category {name[:100]!r}; one of: {', '.join(known)}", field="category"
        )


def summary(meaning: Meaning) -> str:
    """``classified as network (0.71), software (0.12), printer (0.05)``, or why not."""
    if meaning.failure is not None:
        return f"not classified ({meaning.failure}): the rule-based category is kept"
    shown = ", ".join(f"{g.category} ({g.score:.2f})" for g in meaning.guesses[:3])
    return f"classified as {shown}"


def classify(
    explicit: str | None, meaning: Meaning, settings: RouterSettings
) -> tuple[str | None, dict[str, Any]]:
    """The category the classifier leaves the ticket with, and the ``classified`` event."""
    threshold = settings.triage.min_confidence
    detail: dict[str, Any] = {
        "model": meaning.model,
        "summary": summary(meaning),
        "guesses": [{"category": g.category, "score": g.score} for g in meaning.guesses[:3]],
        "threshold": threshold,
    }
    if meaning.failure is not None:
        detail.update(decided_by="rules", failure=meaning.failure)
        return explicit, detail
    if explicit is not None:
        detail["decided_by"] = "explicit"
        return explicit, detail
    top = meaning.guesses[0] if meaning.guesses else None
    if top is not None and top.score >= threshold:
        detail["decided_by"] = "model"
        return top.category, detail
    detail["decided_by"] = "below-threshold"
    return UNCATEGORISED, detail


def triage(
    contact: Contact,
    settings: RouterSettings,
    requester_keys: list[str],
    meaning: Meaning | None = None,
) -> Triage:
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
    classified = None
    if meaning is not None:
        category, classified = classify(category, meaning, settings)
        classified["category"] = category
    spec = next((c for c in settings.categories if c.name == category), None)
    if (rule is None or rule.group is None) and spec is not None and spec.group in groups:
        group = groups[spec.group]
    text = f"{contact.subject}\n{contact.text}".casefold()

    kind = contact.hints.kind or (rule.set_kind if rule else None)
    if kind is None and category is not None:
        kind = settings.triage.category_kinds.get(category) or (spec.kind if spec else None)
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
    return Triage(category, kind, priority, group, detail, classified)
