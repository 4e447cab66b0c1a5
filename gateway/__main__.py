"""``python -m gateway``: the same as the ``spoc`` console script."""

from gateway.cli import main

raise SystemExit(main())
