"""How hard the reliability suite pushes: small counts by default (CI), full counts on demand.

``SPOC_RELIABILITY_FULL=1`` switches every test of the suite to its full counts (more messages,
more kills, longer outages); anything else, or unset, keeps the small ones CI runs.
"""

from __future__ import annotations

import os

FULL = os.environ.get("SPOC_RELIABILITY_FULL") == "1"


def scaled(small: int, full: int) -> int:
    """``full`` under ``SPOC_RELIABILITY_FULL=1``, else ``small``."""
    return full if FULL else small
