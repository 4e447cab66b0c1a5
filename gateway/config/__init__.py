"""Load and validate ``config.toml``: the one place where the operator's file enters the code.

Every section of the contract's config block is modelled with pydantic, strictly: an unknown key,
a value of the wrong type or a bad regex is an error that names the dotted key and the bad value
(``smtp.port: 70000 is not a valid port (1-65535)``). Secrets never come from the file; they come
from the environment (``SPOC_TWILIO_AUTH_TOKEN``, ``SPOC_API_TOKEN`` ...) and live in
:class:`Secrets`, which never prints them.

``load_config(path)`` returns a frozen :class:`Config` or raises :class:`ConfigError` holding one
line per problem. Components get only their own section; the router gets
:meth:`Config.router_settings`.

The modules: ``values`` (the checked value types), ``sections`` and ``ivr`` (the section models),
``model`` (the root :class:`Config` and its cross-section checks), ``secrets`` (the environment's
secrets and their variable names), ``router_settings`` (the router's view) and ``loading``
(TOML parsing and the one-line error messages).
"""

from gateway.config.loading import ConfigError, load_config
from gateway.config.model import Config, resolve_sqlite_url
from gateway.config.secrets import Secrets

__all__ = ["Config", "ConfigError", "Secrets", "load_config", "resolve_sqlite_url"]
