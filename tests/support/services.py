"""Skip-or-fail for tests whose real server is missing.

A test that needs a server it cannot find skips with the reason; with ``SPOC_REQUIRE_SERVICES=1``
(CI sets it) the same situation is a failure, so a green CI run never hides a skipped server.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE_SERVICES_ENV = "SPOC_REQUIRE_SERVICES"


def services_required() -> bool:
    return os.environ.get(REQUIRE_SERVICES_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def require_service(reason: str) -> NoReturn:
    """Skip the test for ``reason``; fail it instead when SPOC_REQUIRE_SERVICES=1."""
    if services_required():
        pytest.fail(f"{reason} ({REQUIRE_SERVICES_ENV}=1 turns this skip into a failure)")
    pytest.skip(reason)
