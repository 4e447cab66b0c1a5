"""The value types the config sections share, each strictly checked.

A check's message names the bad value (``70000 is not a valid port (1-65535)``); the loader puts
the dotted key in front of it.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, StrictFloat, StrictInt, StrictStr

from channels.networks import ip_networks
from normalizer.addresses import is_email_address
from normalizer.refs import is_prefix

_DOMAIN_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
_DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres")


def _check_port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError(f"{value} is not a valid port (1-65535)")
    return value


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"{value!r} is not a valid regular expression: {exc}") from None
    return value


def _check_address(value: str) -> str:
    if not is_email_address(value):
        raise ValueError(f"{value!r} is not an email address")
    return value


def _check_networks(value: tuple[str, ...]) -> tuple[str, ...]:
    ip_networks(value)  # names the first entry that is no address or CIDR block
    return value


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


def check_prefix(value: str) -> str:
    if not is_prefix(value) or value != value.upper():
        raise ValueError(
            f"{value!r} must be 1-10 capital letters or digits, starting with a letter"
        )
    return value


def check_domain(value: str) -> str:
    if not _DOMAIN_RE.match(value):
        raise ValueError(f"{value!r} is not a domain name")
    return value


def check_database_url(value: str) -> str:
    scheme = value.partition(":")[0].partition("+")[0].lower()
    if scheme not in _DATABASE_SCHEMES or "://" not in value:
        raise ValueError(f"{value!r} is not a sqlite:/// or postgresql:// URL")
    if urlsplit(value).password:
        raise ValueError("holds a password; set SPOC_DATABASE_URL in the environment instead")
    return value


Port = Annotated[StrictInt, AfterValidator(_check_port)]
Regex = Annotated[StrictStr, AfterValidator(_check_regex)]
Address = Annotated[StrictStr, AfterValidator(_check_address)]
HttpUrl = Annotated[StrictStr, AfterValidator(_check_http_url)]
Networks = Annotated[tuple[StrictStr, ...], AfterValidator(_check_networks)]  # addresses, CIDRs
Name = Annotated[StrictStr, Field(min_length=1, max_length=100)]
PositiveInt = Annotated[StrictInt, Field(gt=0)]
PositiveFloat = Annotated[StrictFloat, Field(gt=0)]
ChannelName = Literal["email", "fax", "phone", "sms", "slack", "api", "web"]
KindName = Literal["incident", "service_request"]
Priority = Literal["P1", "P2", "P3", "P4"]
