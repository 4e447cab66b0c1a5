"""normalizer.headers: header values as compat32 gives them become clean text, ids, addresses."""

from __future__ import annotations

import random

import pytest

from normalizer.headers import (
    MAX_ADDRESS_CHARS,
    MAX_REFERENCES,
    addresses,
    decode_header,
    decode_text,
    first_message_id,
    message_ids,
    references,
    valid_address,
)

ID_BREAKERS = frozenset("<> \t\r\n\x00")

# --- decode_header ---------------------------------------------------------------------------


def test_a_utf8_sequence_split_across_adjacent_encoded_words_is_joined() -> None:
    assert decode_header("=?utf-8?q?=C3?= =?utf-8?q?=A9t=C3=A9?=") == "été"


def test_text_around_an_encoded_word_is_kept_with_its_spaces() -> None:
    assert decode_header("Re: =?utf-8?q?caf=C3=A9?= ok") == "Re: café ok"


def test_adjacent_encoded_words_in_different_charsets_decode_each_in_its_own() -> None:
    assert decode_header("=?utf-8?q?a?= =?iso-8859-1?q?=E9?=") == "aé"


def test_base64_encoded_words_without_padding_are_decoded() -> None:
    assert decode_header("=?UTF-8?B?R3LDvMOfZQ?=") == "Grüße"


def test_an_rfc2231_language_suffix_on_the_charset_is_ignored() -> None:
    assert decode_header("=?utf-8*de?q?Gr=C3=BC=C3=9Fe?=") == "Grüße"


@pytest.mark.parametrize("word", ["=?utf-8?q?café?=", "=?utf-8?b?A?="])
def test_an_undecodable_encoded_word_is_kept_as_written(word: str) -> None:
    assert decode_header(word) == word


@pytest.mark.parametrize(
    ("word", "expected"),
    [("=?x-unknown?q?caf=C3=A9?=", "café"), ("=?x-unknown?q?caf=E9?=", "café")],
)
def test_an_unknown_charset_falls_back_to_utf8_then_latin1(word: str, expected: str) -> None:
    assert decode_header(word) == expected


@pytest.mark.parametrize("escaped", ["Ren\udcc3\udca9e", "Ren\udce9e"])
def test_raw_8bit_header_bytes_are_read_as_utf8_else_latin1(escaped: str) -> None:
    assert decode_header(escaped) == "Renée"


def test_plain_ascii_headers_come_back_unchanged() -> None:
    assert decode_header("Printer on floor 3 =? broken") == "Printer on floor 3 =? broken"


# --- decode_text -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "charset", "expected"),
    [
        (b"\x80", "iso-8859-1", "€"),  # labelled Latin-1 is really Windows-1252
        ("中".encode("gb18030"), "gb2312", "中"),  # GB2312 labels cover GB18030 text
        ("é".encode(), "us-ascii", "é"),  # "ASCII" that is really UTF-8
        (b"\xe9", "base64", "é"),  # a non-text codec name: guessed, Latin-1 here
        (b"caf\xc3\xa9", '"UTF-8"', "café"),  # quoted and upper-case labels
        (b"caf\xc3\xa9", None, "café"),
    ],
)
def test_bytes_decode_with_their_charset_or_a_safe_fallback(
    data: bytes, charset: str | None, expected: str
) -> None:
    assert decode_text(data, charset) == expected


def test_codecs_that_yield_lone_surrogates_still_give_utf8_encodable_text() -> None:
    text = decode_text(b"+2D0-", "utf-7")
    assert text.encode("utf-8") == b"?"


# --- message ids -----------------------------------------------------------------------------


def test_bracketed_ids_are_returned_bare_in_order_without_duplicates() -> None:
    assert message_ids("<a@b> <c@d>\r\n <a@b> junk@x") == ("a@b", "c@d")


def test_ids_without_brackets_are_split_on_space_and_comma_keeping_those_with_an_at() -> None:
    assert message_ids("a@b, junk c@d") == ("a@b", "c@d")


def test_an_empty_id_list_gives_no_ids() -> None:
    assert message_ids("") == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("<x@y> <z@w>", "x@y"), ("abc123", "abc123"), ("", None), ("  \t", None)],
)
def test_the_first_message_id_is_bracketed_or_else_the_first_token(
    value: str, expected: str | None
) -> None:
    assert first_message_id(value) == expected


def test_a_long_references_chain_keeps_the_root_and_the_newest_ids() -> None:
    chain = " ".join(f"<id{n}@x>" for n in range(MAX_REFERENCES + 50))
    refs = references(chain)
    assert len(refs) == MAX_REFERENCES
    assert refs[0] == "id0@x"
    assert refs[1] == "id51@x"
    assert refs[-1] == f"id{MAX_REFERENCES + 49}@x"


def test_a_short_references_chain_is_kept_whole() -> None:
    assert references("<r@x> <p@x>") == ("r@x", "p@x")


# --- addresses -------------------------------------------------------------------------------


def test_a_valid_address_is_stripped_and_case_folded() -> None:
    assert valid_address("  Bob@Example.ORG ") == "bob@example.org"


@pytest.mark.parametrize(
    "addr", ["", "no-at", "a b@c", "a@b,c@d", "a@\x00b", "a@" + "b" * MAX_ADDRESS_CHARS]
)
def test_things_that_are_not_one_address_are_refused(addr: str) -> None:
    assert valid_address(addr) is None


def test_a_plain_address_list_gives_names_and_folded_addresses() -> None:
    assert addresses(["Bob <Bob@X.org>, carol@x.org"]) == [
        ("Bob", "bob@x.org"),
        ("", "carol@x.org"),
    ]


def test_a_quoted_display_name_with_a_comma_stays_one_mailbox() -> None:
    assert addresses(['"Doe, Jane" <Jane@x.org>']) == [("Doe, Jane", "jane@x.org")]


def test_raw_8bit_display_names_are_decoded() -> None:
    assert addresses(["Ren\udcc3\udca9e <r@x.org>"]) == [("Renée", "r@x.org")]


def test_entries_without_a_usable_address_are_dropped() -> None:
    assert addresses(["undisclosed-recipients:;", "Bob <not an address>", ""]) == []


def test_random_junk_in_headers_never_raises_and_gives_well_formed_results() -> None:
    rng = random.Random(2047)
    alphabet = 'ab@<>",;:()\\=?qQbB \t\r\n\x00é' + "\udce9\udcc3"
    for _ in range(2000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        decode_header(value).encode("utf-8")  # no lone surrogates left
        for found in (*message_ids(value), *references(value), first_message_id(value) or "x"):
            assert found
            assert not ID_BREAKERS.intersection(found)
        for _, addr in addresses([value]):
            assert valid_address(addr) == addr
