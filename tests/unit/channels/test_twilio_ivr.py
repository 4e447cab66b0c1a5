"""The menu model: paths, prompts, speech matching, business hours, refs read aloud."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from channels.twilio.ivr import (
    BusinessHours,
    Menu,
    MenuOption,
    match_speech,
    spoken_ref,
    wants_existing_ticket,
)

BROKEN = MenuOption("1", "a broken device", "broken_device")
LOCKED = MenuOption("2", "a locked account", "locked_account", "service_request")
LAPTOP = MenuOption("1", "a new laptop", "new_hardware", "service_request")
OTHER = MenuOption("3", "something else", "other", prompt="Other requests.", options=(LAPTOP,))
MENU = Menu(greeting="Welcome.", options=(BROKEN, LOCKED, OTHER), default_digit="1")


def test_the_top_prompt_greets_and_lists_every_option() -> None:
    assert MENU.prompt("") == (
        "Welcome. For a broken device, press 1. For a locked account, press 2. "
        "For something else, press 3."
    )


def test_the_top_prompt_offers_the_open_ticket_read_aloud() -> None:
    assert "You have an open ticket, S D 4 2. To add to it, press 9." in MENU.prompt("", "SD-42")


def test_a_submenu_has_its_own_prompt_and_options() -> None:
    assert MENU.prompt("3") == "Other requests. For a new laptop, press 1."
    assert MENU.option_at("31") == LAPTOP
    assert MENU.option_at("1") == BROKEN


def test_unknown_paths_have_no_node() -> None:
    assert MENU.node("1") is None  # option 1 is not a submenu
    assert MENU.node("7") is None
    assert MENU.node("3" * 9) is None
    assert MENU.option_at("") is None
    assert MENU.option_at("39") is None


def test_the_default_option_is_the_configured_digit() -> None:
    assert MENU.default_option() == BROKEN
    assert Menu(options=(BROKEN,)).default_option() is None


@pytest.mark.parametrize(
    ("speech", "digit"),
    [
        ("My account is locked", "2"),
        ("a broken device", "1"),
        ("my device is broken", "1"),
        ("two", "2"),
        ("press 1", "1"),
        ("something else please", "3"),
    ],
)
def test_speech_is_matched_to_a_label_or_a_spoken_digit(speech: str, digit: str) -> None:
    assert match_speech(speech, MENU.options) == digit


@pytest.mark.parametrize("speech", ["", "hello", "I would like a pizza", "one or two"])
def test_unclear_speech_matches_nothing(speech: str) -> None:
    assert match_speech(speech, MENU.options) is None


def test_asking_for_the_existing_ticket_is_understood() -> None:
    assert wants_existing_ticket("add it to my open ticket")
    assert not wants_existing_ticket("a broken device")


def test_refs_are_read_one_character_at_a_time() -> None:
    assert spoken_ref("SD-42") == "S D 4 2"
    assert spoken_ref("sd-7") == "S D 7"


def test_business_hours_use_the_desks_time_zone() -> None:
    hours = BusinessHours("Europe/Berlin", frozenset(range(5)), time(8), time(18))
    # Monday 2026-11-23 07:30 UTC is 08:30 in Berlin (CET, UTC+1).
    assert hours.is_open(datetime(2026, 11, 23, 7, 30, tzinfo=UTC))
    assert not hours.is_open(datetime(2026, 11, 23, 6, 59, tzinfo=UTC))  # 07:59 local
    assert not hours.is_open(datetime(2026, 11, 23, 17, 0, tzinfo=UTC))  # 18:00 local
    assert not hours.is_open(datetime(2026, 11, 22, 12, 0, tzinfo=UTC))  # a Sunday
