"""``spoc demo``: the whole desk on one machine, needing no account anywhere.

``run.py`` starts a :class:`~gateway.serve.Gateway` on free loopback ports with a SQLite
database in a temporary directory (``config.py`` writes its ``config.toml`` and throwaway
secrets), with Slack's Web API, Twilio's Messages API and the outbound mail relay played by
``fakes.py``; ``drive.py`` sends one real contact through every channel, signed as Twilio and
Slack sign. Then it prints the tickets, a one-use dashboard login link, and serves until
Ctrl-C (SIGINT/SIGTERM exit 0). ``--once`` exits right after printing.
"""

from gateway.demo.run import run_demo

__all__ = ["run_demo"]
