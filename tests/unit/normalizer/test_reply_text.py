"""``newest_reply``: what the writer added, without the history they quoted."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from normalizer import reply_text
from normalizer.reply_text import newest_reply

OUTLOOK = (
    "We replaced the switch.\n\nACME Support\n\n-----Original Message-----\n"
    "From: Service Desk <servicedesk@example.com>\nSent: Monday, December 7, 2026 10:00 AM\n"
    "To: support@acme-vendor.example\nSubject: [SD-1] SAP is down\n\nNobody can log in.\n"
)
GMAIL = (
    "We replaced the switch.\n\n"
    "On Mon, 7 Dec 2026 at 10:00, Service Desk <servicedesk@example.com> wrote:\n"
    "> Nobody can log in.\n"
)
GERMAN = (
    "Wir haben den Switch getauscht.\n\n"
    "Am 07.12.2026 um 10:00 schrieb Service Desk <servicedesk@example.com>:\n"
    "> Nobody can log in.\n"
)


@pytest.mark.parametrize("body", [OUTLOOK, GMAIL, GERMAN], ids=["outlook", "gmail", "german"])
def test_quoted_history_is_cut_off_and_the_signature_kept(body: str) -> None:
    new = newest_reply(body)
    assert "Nobody can log in" not in new
    assert new.split("\n")[0] in ("We replaced the switch.", "Wir haben den Switch getauscht.")


def test_a_body_without_a_quote_comes_back_whole() -> None:
    assert newest_reply("Fixed.\n\nACME Support") == "Fixed.\n\nACME Support"


def test_a_parser_failure_keeps_the_whole_body(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def read(self, text: str) -> None:
            raise RuntimeError("boom")

    monkeypatch.setattr(reply_text, "_parser", lambda: Broken())
    assert newest_reply(GMAIL) == GMAIL


PLAIN = (
    "  Laptop 7 cannot reach the VPN since this morning.  \r\n"
    "Restart tried twice, colleague has the same problem: error 809.\r\n\r\n"
    "Urgent, presentation tomorrow. thanks regards\r\nAlex\r\n"
)
# Bodies each pattern family of the parser finds something in, after a plain first paragraph.
TRIGGERS = [
    "Thanks,\nAlex",
    "Thank you,\nAlex",
    "Best regards\nAlex",
    "Kind Regards\nAlex",
    "All the best\nAlex",
    "-- \nAlex Example\nIT",
    "- Alex",
    "Mit freundlichen Grüßen\nAlex",
    "Viele Grüße\nAlex",
    "Cordialement\nAlex",
    "Saludos,\nAlex",
    "Atentamente,\nAlex",
    "Sent from my iPhone",
    "Get Outlook for iOS",
    "Gesendet von meinem iPhone",
    "CAUTION: This email originated outside the organisation.",
    "Disclaimer: this mail is confidential.",
    "On Mon, 7 Dec 2026 at 10:00, Desk <desk@example.com> wrote:\n> Nobody can log in.",
    "Am 07.12.2026 um 10:00 schrieb Desk <desk@example.com>:\n> Nobody can log in.",
    "Le lun. 7 déc. 2026, Desk <desk@example.com> a écrit :\n> Nobody can log in.",
    "-----Original Message-----\nFrom: Desk\nSent: Monday\nSubject: x\n\nNobody can log in.",
    "________________________________\nFrom: Desk\nSent: Monday\n\nNobody can log in.",
    "**From:** Desk\n**Sent:** Monday\n\nNobody can log in.",
    "Von: Desk\nGesendet: Montag\n\nNobody can log in.",
    "De : Desk\nEnvoyé : lundi\n\nNobody can log in.",
    "De: Desk\nEnviado: lunes\n\nNobody can log in.",
]


def _library(body: str) -> str:
    """What the parser itself makes of ``body``, as ``newest_reply`` did before its shortcut."""
    replies = reply_text._parser().read(text=body).replies
    return replies[0].body if replies and replies[0].body.strip() else body


@pytest.mark.parametrize("tail", TRIGGERS)
def test_a_body_with_a_quote_or_signature_is_cut_exactly_as_the_parser_cuts_it(tail: str) -> None:
    body = f"Laptop 7 cannot reach the VPN.\nError 809 since this morning.\n\n{tail}\n"
    expected = _library(body)
    assert expected != body.strip()  # the parser does find something here
    assert newest_reply(body) == expected


def test_a_plain_body_skips_the_parser_and_comes_back_as_the_parser_would_give_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = _library(PLAIN)

    class Unused:
        def read(self, text: str) -> None:
            raise AssertionError("the parser ran on a body with nothing to cut")

    monkeypatch.setattr(reply_text, "_parser", lambda: Unused())
    assert (
        newest_reply(PLAIN)
        == expected
        == "\n".join(ln.strip() for ln in PLAIN.strip().split("\r\n"))
    )


# The marker-line regex as it was, with a MULTILINE "^": the "\n" form must find the same lines.
_LINE_START = re.compile(
    "^" + reply_text._MARKER_LINE.pattern.removeprefix("\\n"), flags=re.MULTILINE | re.IGNORECASE
)
_LINE_PARTS = st.sampled_from(
    ["\n", "\r\n", " ", "*", "**", "-", "_", ">", ":", " :", "From:", "de :", "À:", "Sent", "x"]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(_LINE_PARTS, st.text(max_size=6)), max_size=30).map("".join))
def test_the_look_for_markers_finds_lines_where_a_multiline_line_start_finds_them(
    text: str,
) -> None:
    folded = text.casefold()
    words = any(word in folded for word in reply_text._MARKER_WORDS)
    assert reply_text._has_markers(text) == (words or _LINE_START.search(text) is not None)
