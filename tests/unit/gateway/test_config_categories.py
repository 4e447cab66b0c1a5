"""``[[categories]]`` is the one table of categories: an unknown name anywhere is a config error
naming the key; without the table the nine defaults apply; the shipped config has the nine."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config
from normalizer.contact import Kind

SHIPPED = Path(__file__).parents[3] / "config.toml"
NINE = {
    "broken_device",
    "locked_account",
    "network",
    "software",
    "access_request",
    "printer",
    "email",
    "billing",
    "other",
}
TWO = """
[[categories]]
name = "printer"
description = "Printers."
group = "service-desk"
kind = "incident"
[[categories]]
name = "sap"
description = "SAP."
examples = ["short dump in ME21N"]
"""


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    return caught.value.problems


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, {})


def test_the_shipped_config_defines_the_nine_categories() -> None:
    config = load_config(SHIPPED, {})
    assert {c.name for c in config.categories} == NINE
    assert all(c.description for c in config.categories)
    settings = config.router_settings()
    assert settings.link_window_minutes == 30
    assert 0 < settings.triage.min_confidence < 1
    billing = next(c for c in settings.categories if c.name == "billing")
    assert billing.group == "customer-support" and billing.kind is Kind.SERVICE_REQUEST


def test_without_the_table_the_nine_defaults_apply(tmp_path: Path) -> None:
    config = load(tmp_path, "")
    assert {c.name for c in config.categories} == NINE
    assert config.tickets.link_window_minutes == 30.0
    assert config.triage.classifier == "wordllama"


def test_the_table_replaces_the_defaults(tmp_path: Path) -> None:
    settings = load(tmp_path, TWO).router_settings()
    assert [c.name for c in settings.categories] == ["printer", "sap"]
    assert settings.categories[1].examples == ("short dump in ME21N",)
    assert settings.triage.category_kinds == {"printer": Kind.INCIDENT}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[[ivr.options]]\ndigit = "1"\nlabel = "x"\ncategory = "hardware"\n',
            "ivr.options[0].category: 'hardware' is not a [[categories]] name",
        ),
        (
            '[[ivr.options]]\ndigit = "1"\nlabel = "x"\ncategory = "other"\nprompt = "p"\n'
            '[[ivr.options.options]]\ndigit = "1"\nlabel = "y"\ncategory = "nope"\n',
            "ivr.options[0].options[0].category: 'nope' is not a [[categories]] name",
        ),
        (
            '[[routing]]\ngroup = "service-desk"\ncategory = "nope"\n',
            "routing[0].category: 'nope' is not a [[categories]] name",
        ),
        (
            '[[routing]]\ngroup = "service-desk"\nwhen = { category = "nope" }\n',
            "routing[0].when.category: 'nope' is not a [[categories]] name",
        ),
        (
            '[[forward]]\nname = "f"\nkind = "email"\nto = "a@example.org"\n'
            'when = { category = "nope" }\n',
            "forward[0].when.category: 'nope' is not a [[categories]] name",
        ),
        (
            '[[categories]]\nname = "a"\ndescription = "A."\ngroup = "l9"\n',
            "categories[0].group: 'l9' is not a [[groups]] name",
        ),
        (
            '[[categories]]\nname = "a"\ndescription = "A."\n'
            '[[categories]]\nname = "a"\ndescription = "B."\n',
            "categories[1].name: 'a' is used twice",
        ),
    ],
)
def test_an_unknown_category_name_anywhere_names_the_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert expected in problems(tmp_path, text)


def test_uncategorised_is_reserved_but_may_be_forwarded(tmp_path: Path) -> None:
    found = problems(tmp_path, '[[categories]]\nname = "uncategorised"\ndescription = "x"\n')
    assert found[0].startswith("categories[0].name: ")
    assert "reserved" in found[0]
    load(
        tmp_path,
        '[[forward]]\nname = "f"\nkind = "email"\nto = "a@example.org"\n'
        'when = { category = "uncategorised" }\n',
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[[categories]]\nname = "a"\n', "categories[0].description"),
        ('[[categories]]\nname = "Bad Name"\ndescription = "x"\n', "categories[0].name"),
        ("[tickets]\nlink_window_minutes = -1\n", "tickets.link_window_minutes"),
        ("[triage]\nmin_confidence = 1.5\n", "triage.min_confidence"),
        ('[triage]\nclassifier = "gpt"\n', "triage.classifier"),
    ],
)
def test_bad_category_and_triage_values_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    assert any(p.startswith(f"{key}:") for p in problems(tmp_path, text))
