"""MAIL/RCPT addresses read the quick way give what aiosmtpd's header parser gives.

``AddressSMTP._getaddr`` answers plain ``<local@domain>`` addresses itself and hands every
other argument to aiosmtpd's ``SMTP._getaddr``; on generated arguments -- plain ones, and
near-misses built from the characters the RFC 5322 parser treats specially -- both must return
the same ``(address, rest)``, ``(None, None)`` for a refusal included.
"""

from __future__ import annotations

from aiosmtpd.smtp import SMTP
from hypothesis import example, given, settings
from hypothesis import strategies as st

from channels.smtp_address import AddressSMTP, plain_address


class _Handler:
    pass


ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
# Characters that make the parser take other paths: specials, spaces, comments, quotes,
# address literals, source routes, controls and non-ASCII.
SPECIAL = '<>@.()[]:;,"\\ \t\x00\x7fé'

atoms = st.text(alphabet=ATEXT, min_size=1, max_size=6)
dot_atoms = st.lists(atoms, min_size=1, max_size=3).map(".".join)
plain = st.builds(
    lambda local, domain, spaces, rest: f"<{local}@{domain}>{spaces}{rest}",
    dot_atoms,
    dot_atoms,
    st.sampled_from(["", " ", "  ", "\t", " \t "]),
    st.sampled_from(["", "SIZE=1000", "SIZE=1 BODY=8BITMIME", "(comment) SIZE=1", "x", " ("]),
)
mixed = st.text(alphabet=ATEXT[:6] + SPECIAL, max_size=24)
near_misses = st.builds(lambda a, b: a + b, plain, mixed) | st.builds(
    lambda a, b: "<" + a + b, mixed, plain
)


def _outcome(server: SMTP, arg: str, local_part_limit: int) -> object:
    """What ``_getaddr`` returns, or the type of what it raises (the parser itself trips over
    some arguments; aiosmtpd answers those through ``handle_exception``, and so must we)."""
    server.local_part_limit = local_part_limit
    try:
        return server._getaddr(arg)
    except Exception as exc:
        return type(exc)


@settings(max_examples=600, deadline=None)
@given(arg=plain | near_misses | mixed, local_part_limit=st.sampled_from([0, 3, 64]))
@example(arg="<a@b.c> SIZE=10", local_part_limit=0)
@example(arg="<a@b.> SIZE=10", local_part_limit=0)
@example(arg="<a..b@c>", local_part_limit=0)
@example(arg="<a@b> (x) SIZE=1", local_part_limit=0)
@example(arg="<>", local_part_limit=0)
@example(arg="<longlocal@b>", local_part_limit=3)
def test_quick_address_reading_matches_aiosmtpd(arg: str, local_part_limit: int) -> None:
    quick = _outcome(AddressSMTP(_Handler()), arg, local_part_limit)
    assert quick == _outcome(SMTP(_Handler()), arg, local_part_limit)


def test_plain_addresses_are_read_without_the_parser() -> None:
    # The differential test passes trivially if the quick path is never taken: make sure the
    # shapes real clients send are taken by it.
    assert plain_address("<alice.smith+desk@example.org> SIZE=4096") == (
        "alice.smith+desk@example.org",
        "SIZE=4096",
    )
    assert plain_address("<help@desk.example>") == ("help@desk.example", "")
    assert plain_address('<"quoted"@example.org>') is None
    assert plain_address("<a@b> (comment)") is None
