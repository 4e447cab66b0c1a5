"""Shared kernel: the Contact model and pure converters from channel input to a Contact."""

from normalizer.contact import (
    Attachment,
    AutoClass,
    Channel,
    Contact,
    Hints,
    Kind,
    Party,
    ThreadHints,
)
from normalizer.intake import (
    ContactRejectedError,
    Intake,
    IntakeError,
    IntakeResult,
    TemporaryIntakeError,
)

__all__ = [
    "Attachment",
    "AutoClass",
    "Channel",
    "Contact",
    "ContactRejectedError",
    "Hints",
    "Intake",
    "IntakeError",
    "IntakeResult",
    "Kind",
    "Party",
    "TemporaryIntakeError",
    "ThreadHints",
]
