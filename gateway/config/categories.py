"""``[[categories]]``: the one table of categories for triage, the IVR, the Slack modal and the API.

Without the table, the nine defaults in ``router/data/categories.toml`` apply (the shipped
``config.toml`` spells the same nine out). Every category name used elsewhere in the config --
an IVR option, a routing rule, a forward -- must be one of these (checked in ``model``).
"""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Annotated

from pydantic import AfterValidator, Field, StrictStr

from gateway.config.sections import Section
from gateway.config.values import KindName, Name
from router.settings import UNCATEGORISED


def _check_category_name(value: str) -> str:
    if value == UNCATEGORISED:
        raise ValueError(f"{value!r} is reserved for tickets the classifier is not sure about")
    return value


CategoryName = Annotated[
    StrictStr, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$"), AfterValidator(_check_category_name)
]


class CategoryEntry(Section):
    name: CategoryName
    description: Annotated[StrictStr, Field(min_length=1, max_length=1000)]
    examples: tuple[Annotated[StrictStr, Field(min_length=1, max_length=1000)], ...] = ()
    group: Name | None = None  # a [[groups]] name: who works it when no rule says otherwise
    kind: KindName | None = None

    @property
    def label(self) -> str:
        """How menus show it (the Slack modal): ``broken_device`` -> ``broken device``."""
        return self.name.replace("_", " ")


def default_categories() -> tuple[CategoryEntry, ...]:
    text = resources.files("router").joinpath("data/categories.toml").read_text("utf-8")
    return tuple(CategoryEntry.model_validate(c) for c in tomllib.loads(text)["categories"])
