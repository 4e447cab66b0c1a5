"""The classifier the configuration asks for (``[triage] classifier``), built and started once
for ``spoc serve`` and ``spoc replay`` alike, so replayed mail is triaged as live mail is."""

from __future__ import annotations

import functools

from gateway.config import Config
from router.classifier import category_model
from router.meaning import MeaningReader
from router.settings import RouterSettings


async def start_meaning_reader(config: Config, settings: RouterSettings) -> MeaningReader | None:
    """A started reader, or None when the classifier is off or there is nothing to choose from.

    A model that cannot be built is logged by the reader and leaves classification off."""
    if config.triage.classifier == "off" or len(settings.categories) < 2:
        return None
    build = functools.partial(category_model, settings.categories)
    reader = MeaningReader(build, config.triage.timeout_seconds)
    await reader.start()
    return reader
