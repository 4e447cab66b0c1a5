"""The exit codes every ``spoc`` command uses (README, "Commands"), defined once.

``EXIT_OK`` (0): done. ``EXIT_FAILED`` (1): the work failed (the database, a worker, a replay,
a demo step); a retry may succeed once that is mended. ``EXIT_USAGE`` (2): the command line or
the configuration is wrong (argparse's own code for a bad command line); nothing was done.
"""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
