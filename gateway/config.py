"""Load and validate ``config.toml``: the one place where the operator's file enters the code.

Every section of the contract's config block is modelled here with pydantic, strictly: an unknown
key, a value of the wrong type or a bad regex is an error that names the dotted key and the bad
value (``smtp.port: 70000 is not a valid port (1-65535)``). Secrets never come from the file; they
come from the environment (``SPOC_TWILIO_AUTH_TOKEN``, ``SPOC_API_TOKEN`` ...) and live in
:class:`Secrets`, which never prints them.

``load_config(path)`` returns a frozen :class:`Config` or raises :class:`ConfigError` holding one
line per problem. Components get only their own section; the router gets
:meth:`Config.router_settings`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from normalizer.contact import Channel, Kind
from router.settings import AckSettings, Group, RouterSettings, RoutingRule, TriageSettings

# Sections that validate today but whose feature is not built yet: ``serve`` logs each once.
NOT_YET_ACTIVE = ("imap", "fax", "forward")

_SECRET_KEYS = frozenset(
    {"password", "passwd", "token", "tokens", "secret", "api_key", "auth_token", "signing_secret"}
)
_SECRET_SUFFIXES = ("_password", "_token", "_tokens", "_secret")
_SECRET_ENV = {
    ("twilio", "auth_token"): "SPOC_TWILIO_AUTH_TOKEN",
    ("api", "token"): "SPOC_API_TOKEN",
    ("api", "tokens"): "SPOC_API_TOKEN",
    ("database", "password"): "SPOC_DATABASE_URL",
}
_PREFIX_RE = re.compile(r"^[A-Z][A-Z0-9]{0,9}$")
_ADDRESS_RE = re.compile(r"^[^@\s]+@[^@\s]+$")
_DOMAIN_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
_DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres")


class ConfigError(Exception):
    """The config cannot be used; ``problems`` holds one line per problem, each naming a key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# --- value checks: each message names the bad value (the key is added by the caller) ---------


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
    if not _ADDRESS_RE.match(value):
        raise ValueError(f"{value!r} is not an email address")
    return value


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


def _check_prefix(value: str) -> str:
    if not _PREFIX_RE.match(value):
        raise ValueError(
            f"{value!r} must be 1-10 capital letters or digits, starting with a letter"
        )
    return value


def _check_domain(value: str) -> str:
    if not _DOMAIN_RE.match(value):
        raise ValueError(f"{value!r} is not a domain name")
    return value


def _check_database_url(value: str) -> str:
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
Name = Annotated[StrictStr, Field(min_length=1, max_length=100)]
PositiveInt = Annotated[StrictInt, Field(gt=0)]
PositiveFloat = Annotated[StrictFloat, Field(gt=0)]
ChannelName = Literal["email", "fax", "phone", "sms", "slack", "api"]
KindName = Literal["incident", "service_request"]
Priority = Literal["P1", "P2", "P3", "P4"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- the sections ------------------------------------------------------------------------------


class ServerSection(_Section):
    http_host: StrictStr = "127.0.0.1"
    http_port: Port = 8080
    public_base_url: HttpUrl | None = None  # default: http://<http_host>:<http_port>

    @property
    def base_url(self) -> str:
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        host = f"[{self.http_host}]" if ":" in self.http_host else self.http_host
        return f"http://{host}:{self.http_port}"


class DatabaseSection(_Section):
    url: Annotated[StrictStr, AfterValidator(_check_database_url)] = "sqlite:///var/spoc.db"


class TicketsSection(_Section):
    prefix: Annotated[StrictStr, AfterValidator(_check_prefix)] = "SD"
    reopen_window_days: Annotated[StrictFloat, Field(ge=0)] = 14.0


class EmailSection(_Section):
    address: Address = "servicedesk@example.com"
    aliases: tuple[Address, ...] = ()
    from_name: StrictStr = "IT Service Desk"
    message_id_domain: Annotated[StrictStr, AfterValidator(_check_domain)] | None = None

    @property
    def id_domain(self) -> str:
        """The right-hand side of the Message-IDs we write (default: the desk's domain)."""
        return self.message_id_domain or self.address.rpartition("@")[2]


class SmtpSection(_Section):
    host: StrictStr = "127.0.0.1"
    port: Port = 2525
    max_message_bytes: PositiveInt = 26_214_400
    max_recipients: PositiveInt = 50
    max_connections: PositiveInt = 200
    idle_timeout_seconds: PositiveFloat = 300.0


class OutboundSmtpSection(_Section):
    host: StrictStr = "127.0.0.1"
    port: Port = 2526
    starttls: StrictBool = False
    tls: StrictBool = False
    username: StrictStr | None = None  # password from SPOC_OUTBOUND_SMTP_PASSWORD
    timeout_seconds: PositiveFloat = 30.0

    @model_validator(mode="after")
    def _one_tls_mode(self) -> OutboundSmtpSection:
        if self.starttls and self.tls:
            raise ValueError("starttls and tls are both true; choose one")
        return self


class AcksSection(_Section):
    enabled: StrictBool = True
    per_sender_per_hour: Annotated[StrictInt, Field(ge=0)] = 5
    global_per_minute: Annotated[StrictInt, Field(ge=0)] = 120


_TRIAGE = TriageSettings()


class TriageSection(_Section):
    high_urgency_words: tuple[StrictStr, ...] = _TRIAGE.high_urgency_words
    low_urgency_words: tuple[StrictStr, ...] = _TRIAGE.low_urgency_words
    service_request_words: tuple[StrictStr, ...] = _TRIAGE.service_request_words
    vip: tuple[StrictStr, ...] = ()  # emails or E.164 phone numbers


class OutboxSection(_Section):
    max_attempts: PositiveInt = 8
    poll_interval_seconds: PositiveFloat = 1.0


class ImapMailbox(_Section):
    name: Name
    host: StrictStr
    port: Port = 993
    tls: StrictBool = True
    username: StrictStr  # password from SPOC_IMAP_<NAME>_PASSWORD or SPOC_IMAP_PASSWORD
    folder: StrictStr = "INBOX"
    processed_folder: StrictStr = "spoc/processed"
    failed_folder: StrictStr = "spoc/failed"
    poll_interval_seconds: PositiveFloat = 60.0


class FaxSection(_Section):
    senders: tuple[Annotated[StrictStr, Field(min_length=1)], ...] = ()
    subject_pattern: Regex = r"(?i)fax from (?P<number>[+0-9][0-9 ()-]{5,})"


class TwilioSection(_Section):
    enabled: StrictBool = False  # auth token from SPOC_TWILIO_AUTH_TOKEN
    account_sid: Annotated[StrictStr, Field(pattern=r"^AC[0-9a-fA-F]{32}$")] | None = None
    phone_number: Annotated[StrictStr, Field(pattern=r"^\+[1-9][0-9]{6,14}$")] | None = None
    api_base_url: HttpUrl = "https://api.twilio.com"  # Messages API and recordings
    sms_window_hours: PositiveFloat = 24.0  # a text joins the sender's open SMS ticket within this
    download_recordings: StrictBool = False  # else the recording URL is kept on the ticket
    spool_dir: Annotated[StrictStr, Field(min_length=1)] = "var/spool/twilio"
    spool_retry_seconds: PositiveFloat = 5.0
    default_region: Annotated[StrictStr, Field(pattern=r"^[A-Z]{2}$")] = "US"

    @model_validator(mode="after")
    def _download_needs_account(self) -> TwilioSection:
        if self.download_recordings and not self.account_sid:
            raise ValueError("download_recordings needs account_sid (the AC... account SID)")
        return self

    def spool_path(self, base_dir: Path) -> Path:
        """``spool_dir``; a relative one is relative to ``base_dir`` (the working directory)."""
        path = Path(self.spool_dir)
        return path if path.is_absolute() else base_dir / path


class SlackSection(_Section):
    enabled: StrictBool = False  # secrets from SPOC_SLACK_*
    mode: Literal["http", "socket"] = "http"
    api_base_url: HttpUrl = "https://slack.com/api/"
    # An emoji name (no colons) whose reaction turns a message into a ticket; "" = off.
    reaction: Annotated[StrictStr, Field(pattern=r"^[a-z0-9_+'-]{0,100}$")] = ""
    users_cache_ttl_seconds: PositiveFloat = 3600.0


class ApiSection(_Section):
    enabled: StrictBool = True  # bearer token(s) from SPOC_API_TOKEN


class GroupEntry(_Section):
    name: Name
    tier: PositiveFloat


class RoutingWhen(_Section):
    channel: ChannelName | None = None
    recipient: Address | None = None
    sender_domain: Annotated[StrictStr, AfterValidator(_check_domain)] | None = None
    subject_matches: Regex | None = None
    body_matches: Regex | None = None
    category: StrictStr | None = None


class RoutingEntry(_Section):
    when: RoutingWhen = RoutingWhen()
    group: Name
    category: StrictStr | None = None
    kind: KindName | None = None
    priority: Priority | None = None


class ForwardWhen(_Section):
    group: StrictStr | None = None
    channel: ChannelName | None = None
    category: StrictStr | None = None
    kind: KindName | None = None
    priority: Priority | None = None


class ForwardEntry(_Section):
    name: Name  # secret from SPOC_FORWARD_<NAME>_SECRET
    kind: Literal["webhook", "email", "jira", "servicenow", "zendesk"]
    url: HttpUrl | None = None  # webhook, jira, servicenow, zendesk
    to: Address | None = None  # email
    when: ForwardWhen = ForwardWhen()
    allow_private_network: StrictBool = False

    @model_validator(mode="after")
    def _target_given(self) -> ForwardEntry:
        if self.kind == "email" and not self.to:
            raise ValueError("an email forward needs `to` (an email address)")
        if self.kind != "email" and not self.url:
            raise ValueError(f"a {self.kind} forward needs `url`")
        return self


Digit = Annotated[StrictStr, Field(pattern=r"^[0-9]$")]
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ClockTime = Annotated[StrictStr, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


def _check_timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
    return value


class IvrOption(_Section):
    digit: Digit
    label: Annotated[StrictStr, Field(min_length=1)]
    category: Annotated[StrictStr, Field(min_length=1)]
    kind: KindName = "incident"
    action: Literal["voicemail", "dial"] = "voicemail"  # what choosing it does (no submenu)
    number: Annotated[StrictStr, Field(pattern=r"^\+[1-9][0-9]{6,14}$")] | None = None  # dial
    prompt: StrictStr | None = None  # a submenu's introduction
    options: tuple[IvrOption, ...] = ()  # a submenu

    @model_validator(mode="after")
    def _consistent(self) -> IvrOption:
        if self.action == "dial" and not self.options and not self.number:
            raise ValueError(f'option {self.digit}: action = "dial" needs number (E.164)')
        digits = [o.digit for o in self.options]
        if len(digits) != len(set(digits)):
            raise ValueError(f"option {self.digit}: two submenu options use the same digit")
        return self

    def to_option(self) -> Any:
        """This option as the IVR's ``channels.twilio.MenuOption``."""
        from channels.twilio import MenuOption

        return MenuOption(
            digit=self.digit,
            label=self.label,
            category=self.category,
            kind=self.kind,
            action=self.action,
            dial_number=self.number,
            prompt=self.prompt,
            options=tuple(o.to_option() for o in self.options),
        )


class IvrHours(_Section):
    timezone: Annotated[StrictStr, AfterValidator(_check_timezone)] = "UTC"
    days: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")
    open: ClockTime = "08:00"
    close: ClockTime = "18:00"

    @model_validator(mode="after")
    def _opens_before_closing(self) -> IvrHours:
        if self.open >= self.close:
            raise ValueError(f"open ({self.open}) must be before close ({self.close})")
        return self


class IvrSection(_Section):
    greeting: StrictStr = "Welcome to the IT service desk."
    options: tuple[IvrOption, ...] = ()
    gather_timeout_seconds: Annotated[StrictInt, Field(ge=1, le=60)] = 5
    max_retries: Annotated[StrictInt, Field(ge=0, le=10)] = 2
    default_digit: Digit | None = None  # after max_retries; none: a message without a category
    recording_notice: Annotated[StrictStr, Field(min_length=1)] = (
        "This call is recorded so that we can help you. After the tone, please describe the "
        "problem, then hang up or press the pound key."
    )
    max_recording_seconds: Annotated[StrictInt, Field(ge=5, le=3600)] = 120
    transcribe: StrictBool = True
    voice: StrictStr | None = None  # a Twilio <Say> voice, e.g. "Polly.Joanna"
    language: StrictStr = "en-US"
    hours: IvrHours | None = None  # none: always open
    after_hours_message: StrictStr = (
        "The service desk is closed right now. Please leave a message and we will call you back."
    )
    recent_ticket_hours: Annotated[StrictFloat, Field(ge=0)] = 72.0  # 0: never offer
    add_to_ticket_digit: Digit = "9"

    @model_validator(mode="after")
    def _digits_free(self) -> IvrSection:
        digits = {o.digit for o in self.options}
        if self.default_digit is not None and self.default_digit not in digits:
            raise ValueError(f"default_digit {self.default_digit!r} is not an option's digit")
        if self.recent_ticket_hours > 0 and self.add_to_ticket_digit in digits:
            raise ValueError(
                f"digit {self.add_to_ticket_digit} is add_to_ticket_digit; "
                "choose another option digit or add_to_ticket_digit"
            )
        return self

    def to_menu(self) -> Any:
        """The whole section as the IVR's ``channels.twilio.Menu``."""
        from datetime import time

        from channels.twilio import BusinessHours, Menu

        hours = None
        if self.hours is not None:
            hours = BusinessHours(
                timezone=self.hours.timezone,
                days=frozenset(_WEEKDAYS.index(d) for d in self.hours.days),
                opens=time.fromisoformat(self.hours.open),
                closes=time.fromisoformat(self.hours.close),
            )
        return Menu(
            greeting=self.greeting,
            options=tuple(o.to_option() for o in self.options),
            gather_timeout_seconds=self.gather_timeout_seconds,
            max_retries=self.max_retries,
            default_digit=self.default_digit,
            recording_notice=self.recording_notice,
            max_recording_seconds=self.max_recording_seconds,
            transcribe=self.transcribe,
            voice=self.voice,
            language=self.language,
            hours=hours,
            after_hours_message=self.after_hours_message,
            recent_ticket_hours=self.recent_ticket_hours,
            add_to_ticket_digit=self.add_to_ticket_digit,
        )


def env_name(name: str) -> str:
    """A config name as it appears inside an env var: ``l2-jira`` -> ``L2_JIRA``."""
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


@dataclass(frozen=True, slots=True)
class Secrets:
    """Everything secret, read only from the environment. ``repr`` never shows a value."""

    twilio_auth_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_app_token: str | None = field(default=None, repr=False)
    api_tokens: tuple[str, ...] = field(default=(), repr=False)
    database_url: str | None = field(default=None, repr=False)
    outbound_smtp_password: str | None = field(default=None, repr=False)
    imap_default_password: str | None = field(default=None, repr=False)
    imap_passwords: Mapping[str, str] = field(default_factory=dict, repr=False)
    forward_secrets: Mapping[str, str] = field(default_factory=dict, repr=False)

    def imap_password(self, mailbox: str) -> str | None:
        """``SPOC_IMAP_<NAME>_PASSWORD``, else ``SPOC_IMAP_PASSWORD``."""
        return self.imap_passwords.get(mailbox, self.imap_default_password)

    def forward_secret(self, forward: str) -> str | None:
        return self.forward_secrets.get(forward)

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str], imap_names: Iterable[str], forward_names: Iterable[str]
    ) -> Secrets:
        def get(key: str) -> str | None:
            return environ.get(key, "").strip() or None

        imap = {n: p for n in imap_names if (p := get(f"SPOC_IMAP_{env_name(n)}_PASSWORD"))}
        forward = {n: s for n in forward_names if (s := get(f"SPOC_FORWARD_{env_name(n)}_SECRET"))}
        tokens = tuple(t.strip() for t in environ.get("SPOC_API_TOKEN", "").split(",") if t.strip())
        return cls(
            twilio_auth_token=get("SPOC_TWILIO_AUTH_TOKEN"),
            slack_signing_secret=get("SPOC_SLACK_SIGNING_SECRET"),
            slack_bot_token=get("SPOC_SLACK_BOT_TOKEN"),
            slack_app_token=get("SPOC_SLACK_APP_TOKEN"),
            api_tokens=tokens,
            database_url=get("SPOC_DATABASE_URL"),
            outbound_smtp_password=get("SPOC_OUTBOUND_SMTP_PASSWORD"),
            imap_default_password=get("SPOC_IMAP_PASSWORD"),
            imap_passwords=imap,
            forward_secrets=forward,
        )


class Config(_Section):
    """The whole validated ``config.toml`` plus the environment's secrets (``.secrets``)."""

    server: ServerSection = ServerSection()
    database: DatabaseSection = DatabaseSection()
    tickets: TicketsSection = TicketsSection()
    email: EmailSection = EmailSection()
    smtp: SmtpSection = SmtpSection()
    outbound_smtp: OutboundSmtpSection = OutboundSmtpSection()
    acks: AcksSection = AcksSection()
    triage: TriageSection = TriageSection()
    outbox: OutboxSection = OutboxSection()
    imap: tuple[ImapMailbox, ...] = ()
    fax: FaxSection | None = None
    twilio: TwilioSection = TwilioSection()
    slack: SlackSection = SlackSection()
    api: ApiSection = ApiSection()
    groups: tuple[GroupEntry, ...] = (GroupEntry(name="service-desk", tier=1.0),)
    routing: tuple[RoutingEntry, ...] = ()
    forward: tuple[ForwardEntry, ...] = ()
    ivr: IvrSection | None = None

    _secrets: Secrets = PrivateAttr(default_factory=Secrets)
    _base_dir: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _cross_check(self) -> Config:
        problems = list(_cross_problems(self))
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def secrets(self) -> Secrets:
        return self._secrets

    @property
    def database_url(self) -> str:
        """``SPOC_DATABASE_URL`` or ``database.url``; relative SQLite paths made absolute."""
        url = self._secrets.database_url or self.database.url
        return resolve_sqlite_url(url, self._base_dir or Path.cwd())

    def inert_sections(self) -> list[str]:
        """Sections configured whose feature is not active yet (``serve`` logs each once)."""
        configured = {
            "imap": bool(self.imap),
            "fax": self.fax is not None,
            "twilio": self.twilio.enabled,
            "slack": self.slack.enabled,
            "forward": bool(self.forward),
            "ivr": self.ivr is not None,
        }
        return [name for name in NOT_YET_ACTIVE if configured.get(name)]

    def router_settings(self) -> RouterSettings:
        """The router's settings, built exactly as ``router.settings`` defines them."""
        category_kinds = {o.category: Kind(o.kind) for o in self.ivr.options} if self.ivr else {}
        return RouterSettings(
            ticket_prefix=self.tickets.prefix,
            desk_address=self.email.address.casefold(),
            desk_aliases=tuple(a.casefold() for a in self.email.aliases),
            from_name=self.email.from_name,
            message_id_domain=self.email.id_domain,
            reopen_window_days=float(self.tickets.reopen_window_days),
            groups=tuple(Group(g.name, float(g.tier)) for g in self.groups),
            routing=tuple(_routing_rule(r) for r in self.routing),
            triage=TriageSettings(
                high_urgency_words=self.triage.high_urgency_words,
                low_urgency_words=self.triage.low_urgency_words,
                vip=tuple(v.casefold() for v in self.triage.vip),
                service_request_words=self.triage.service_request_words,
                category_kinds=category_kinds,
            ),
            acks=AckSettings(
                enabled=self.acks.enabled,
                per_sender_per_hour=self.acks.per_sender_per_hour,
                global_per_minute=self.acks.global_per_minute,
            ),
        )


def _routing_rule(entry: RoutingEntry) -> RoutingRule:
    when = entry.when
    return RoutingRule(
        group=entry.group,
        channel=Channel(when.channel) if when.channel else None,
        recipient=when.recipient.casefold() if when.recipient else None,
        sender_domain=when.sender_domain.casefold() if when.sender_domain else None,
        subject_matches=re.compile(when.subject_matches) if when.subject_matches else None,
        body_matches=re.compile(when.body_matches) if when.body_matches else None,
        when_category=when.category,
        set_category=entry.category,
        set_kind=Kind(entry.kind) if entry.kind else None,
        set_priority=entry.priority,
    )


def _duplicates(key: str, names: Iterable[str], what: str) -> Iterator[str]:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            yield f"{key}[{index}].{what}: {name!r} is used twice"
        seen.add(name)


def _cross_problems(config: Config) -> Iterator[str]:
    """Checks that span sections: names unique, references resolve, one owner group."""
    names = {g.name for g in config.groups}
    yield from _duplicates("groups", (g.name for g in config.groups), "name")
    lowest = min((g.tier for g in config.groups), default=None)
    owners = [g.name for g in config.groups if g.tier == lowest]
    if not config.groups:
        yield "groups: at least one group is needed (the tier-1 service desk)"
    elif len(owners) > 1:
        shared = ", ".join(owners)
        yield f"groups: {shared} share the lowest tier {lowest:g}; exactly one may own tickets"
    for index, rule in enumerate(config.routing):
        if rule.group not in names:
            yield f"routing[{index}].group: {rule.group!r} is not a [[groups]] name"
    for index, fwd in enumerate(config.forward):
        if fwd.when.group is not None and fwd.when.group not in names:
            yield f"forward[{index}].when.group: {fwd.when.group!r} is not a [[groups]] name"
    yield from _duplicates("imap", (env_name(m.name) for m in config.imap), "name")
    yield from _duplicates("forward", (env_name(f.name) for f in config.forward), "name")
    if config.ivr is not None:
        yield from _duplicates("ivr.options", (o.digit for o in config.ivr.options), "digit")


def resolve_sqlite_url(url: str, base_dir: Path) -> str:
    """``sqlite:///var/spoc.db`` -> ``sqlite:////<base_dir>/var/spoc.db``; others unchanged."""
    scheme, sep, rest = url.partition(":///")
    if not sep or not scheme.startswith("sqlite"):
        return url
    path, query_sep, query = rest.partition("?")
    if not path or path == ":memory:" or path.startswith("/"):
        return url
    return f"{scheme}:///{(base_dir / path).resolve()}{query_sep}{query}"


# --- loading ------------------------------------------------------------------------------------


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
        elif key.lower() in _SECRET_KEYS or key.lower().endswith(_SECRET_SUFFIXES):
            del table[key]
            var = _secret_env_var((*loc, key), table)
            yield (
                f"{_dotted((*loc, key))}: secrets are not read from the config file; "
                f"set {var} in the environment"
            )


def _secret_env_var(loc: tuple[str | int, ...], table: Mapping[str, Any]) -> str:
    section, key = str(loc[0]), str(loc[-1]).lower()
    if (section, key) in _SECRET_ENV:
        return _SECRET_ENV[(section, key)]
    name = table.get("name")
    if len(loc) > 2 and isinstance(loc[1], int) and isinstance(name, str):
        return f"SPOC_{env_name(section)}_{env_name(name)}_{env_name(key)}"
    return f"SPOC_{env_name(section)}_{env_name(key)}"


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
