"""The config.toml of one benchmarked ``spoc serve`` on SQLite, and how it is started.

Each benchmark adds what it measures (``server``, ``smtp`` keys, ``extra`` sections) to the same
small base: loopback listeners, the desk address, a SQLite file, acknowledgements off unless
``extra`` says otherwise.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DESK = "servicedesk@example.com"


def config_text(
    db: Path, smtp_port: int, http_port: int, *, server: str = "", smtp: str = "", extra: str = ""
) -> str:
    """``server`` and ``smtp``: more lines for those sections; ``extra``: more sections."""
    acks = "" if "[acks]" in extra else "[acks]\nenabled = false\n"
    return f"""[server]
http_host = "127.0.0.1"
http_port = {http_port}
{server}
[database]
url = "sqlite:///{db}"
[email]
address = "{DESK}"
[smtp]
host = "127.0.0.1"
port = {smtp_port}
{smtp}
{acks}{extra}"""


def serve_command(config: Path) -> list[str]:
    """``python -m gateway serve`` on ``config``."""
    return [sys.executable, "-m", "gateway", "serve", "--config", str(config)]


def clean_environment() -> dict[str, str]:
    """This environment without ``SPOC_*``: the config file alone decides."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SPOC_")}
