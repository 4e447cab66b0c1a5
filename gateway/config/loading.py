"""``load_config``: read ``config.toml``, refuse secrets in it, validate it, and turn every problem
into one line that names the dotted key and the bad value (:class:`ConfigError`)."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.config.model import Config
from gateway.config.secrets import Secrets, is_secret_key, secret_env_var


class ConfigError(Exception):
    """The config cannot be used; ``problems`` holds one line per problem, each naming a key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_config(path: Path, environ: Mapping[str, str] = os.environ) -> Config:
    """Read and validate the config at ``path``; :class:`ConfigError` lists every problem."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such config file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    problems = list(_strip_secrets(raw, ()))
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_format_errors(exc))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    config._secrets = Secrets.from_environ(
        environ, (m.name for m in config.imap), (f.name for f in config.forward)
    )
    config._base_dir = Path.cwd()
    return config


def _strip_secrets(table: dict[str, Any], loc: tuple[str | int, ...]) -> Iterator[str]:
    """Remove secret-looking keys (recursively), yielding a problem naming the env var for each."""
    for key in list(table):
        value = table[key]
        if isinstance(value, dict):
            yield from _strip_secrets(value, (*loc, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    yield from _strip_secrets(item, (*loc, key, index))
        elif is_secret_key(key):
            del table[key]
            var = secret_env_var((*loc, key), table)
            yield (
                f"{_dotted((*loc, key))}: secrets are not read from the config file; "
                f"set {var} in the environment"
            )


def _dotted(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _format_errors(exc: ValidationError) -> Iterator[str]:
    for error in exc.errors(include_url=False):
        key = _dotted(error["loc"]) or "config"
        kind, msg = error["type"], error["msg"]
        if kind == "extra_forbidden":
            yield f"{key}: unknown key"
        elif kind == "missing":
            yield f"{key}: required key is missing"
        elif kind == "value_error":
            text = msg.removeprefix("Value error, ")
            if error["loc"]:
                yield f"{key}: {text}"
            else:  # cross-section checks already name their keys, one per line
                yield from text.splitlines()
        else:
            shown = repr(error["input"])
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            yield f"{key}: {msg[:1].lower()}{msg[1:]}, got {shown}"
