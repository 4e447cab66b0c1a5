"""``newest_reply``: what the writer added, without the history they quoted."""

from __future__ import annotations

import pytest

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
