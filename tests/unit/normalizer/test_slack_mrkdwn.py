"""Slack's message format <-> plain text: what people wrote, not Slack's escapes and markup."""

from __future__ import annotations

import pytest

from normalizer.mrkdwn import escape, mentioned_users, to_plain

NAMES = {"U123": "Dana Scully"}

# (as Slack sends it, as its author saw it) -- shapes from Slack's "Formatting text" docs.
TABLE = [
    ("&lt;img src=x&gt; &amp; more", "<img src=x> & more"),
    ("a &amp;lt; b", "a &lt; b"),  # someone typed "&lt;": unescaped once, not twice
    ("ask <@U123> please", "ask @Dana Scully please"),
    ("ask <@U999>", "ask @U999"),  # the lookup failed: the id is kept
    ("see <#C123|general>", "see #general"),
    ("see <#C123>", "see #C123"),
    ("read <https://example.com|the wiki>", "read the wiki (https://example.com)"),
    ("read <https://example.com>", "read https://example.com"),
    ("<https://x.org/?a=1&amp;b=2|q &amp; a>", "q & a (https://x.org/?a=1&b=2)"),
    ("mail <mailto:bob@example.com|bob@example.com>", "mail bob@example.com"),
    ("<!here> <!channel> <!everyone>", "@here @channel @everyone"),
    ("<!here|here> wake up", "@here wake up"),
    ("page <!subteam^S1|@oncall>", "page @oncall"),
    ("due <!date^1392734382^{date_short}|Feb 18, 2014>", "due Feb 18, 2014"),
]


@pytest.mark.parametrize(("slack", "plain"), TABLE)
def test_slack_markup_becomes_what_its_author_saw(slack: str, plain: str) -> None:
    assert to_plain(slack, NAMES) == plain


@pytest.mark.parametrize(
    "plain", ["<img src=x> & more", "a &lt; b", "<@U123> is not a mention", "x > y && y < z"]
)
def test_plain_text_round_trips_through_slack_escaping(plain: str) -> None:
    sent = escape(plain)
    assert "<" not in sent and ">" not in sent  # nothing Slack could read as markup
    assert to_plain(sent) == plain


def test_escaping_is_exactly_the_three_characters_slack_names() -> None:
    assert escape("<b> & *bold* _it_") == "&lt;b&gt; &amp; *bold* _it_"


def test_mentioned_users_are_listed_once_in_order() -> None:
    assert mentioned_users("<@U2> hi <@U1|x> and <@U2> <#C1> <!here>") == ("U2", "U1")
