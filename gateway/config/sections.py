"""The pydantic models of ``config.toml``'s sections (the IVR menu is in ``ivr``).

Every model forbids unknown keys and is frozen; defaults here are the documented defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from channels.networks import IPNetwork, ip_networks
from channels.outbound.email import OutboundSMTPSettings
from channels.outbound.email_text import DEFAULT_SINGLE_ADDRESS_NOTICE, EmailWording
from channels.smtp import SMTPChannelSettings
from gateway.config.values import (
    Address,
    ChannelName,
    HttpUrl,
    KindName,
    Name,
    Networks,
    Port,
    PositiveFloat,
    PositiveInt,
    Priority,
    Regex,
    check_database_url,
    check_domain,
    check_prefix,
)
from gateway.dispatcher import DispatcherSettings
from gateway.http_budget import (
    CLIENT_MAX_SIZE,
    DEFAULT_BODY_TIMEOUT_SECONDS,
    DEFAULT_MAX_INFLIGHT_BODY_BYTES,
    MIN_INFLIGHT_BODY_BYTES,
    SMALL_BODY_HEADROOM,
)
from router.retry import RetryPolicy
from router.settings import TriageSettings


class Section(BaseModel):
    """A config table: unknown keys are errors and the parsed value is frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSection(Section):
    http_host: StrictStr = "127.0.0.1"
    http_port: Port = 8080
    public_base_url: HttpUrl | None = None  # default: http://<http_host>:<http_port>
    log_format: Literal["text", "json"] = "text"  # json: one JSON object per log line
    # Reverse proxies (addresses or CIDR blocks) whose X-Forwarded-For names the client;
    # empty: the header is never believed (gateway.client_address).
    trusted_proxies: Networks = ()

    def proxy_networks(self) -> tuple[IPNetwork, ...]:
        """``trusted_proxies`` as networks."""
        return ip_networks(self.trusted_proxies)

    # Request-body bytes all HTTP requests may hold at once (gateway.http_budget); beyond: 503.
    max_inflight_body_bytes: PositiveInt = DEFAULT_MAX_INFLIGHT_BODY_BYTES
    # A request body must arrive whole within this of its reservation, else its connection closes.
    body_timeout_seconds: PositiveFloat = DEFAULT_BODY_TIMEOUT_SECONDS

    @field_validator("max_inflight_body_bytes")
    @classmethod
    def _budget_holds_one_body(cls, value: int) -> int:
        if value < MIN_INFLIGHT_BODY_BYTES:
            raise ValueError(
                f"max_inflight_body_bytes ({value}) is below {MIN_INFLIGHT_BODY_BYTES}: the "
                f"{CLIENT_MAX_SIZE}-byte per-request limit plus the {SMALL_BODY_HEADROOM} bytes "
                "kept for small webhook bodies; a request of the largest size could never be taken"
            )
        return value

    @property
    def base_url(self) -> str:
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        host = f"[{self.http_host}]" if ":" in self.http_host else self.http_host
        return f"http://{host}:{self.http_port}"


class DatabaseSection(Section):
    url: Annotated[StrictStr, AfterValidator(check_database_url)] = "sqlite:///var/spoc.db"


class TicketsSection(Section):
    prefix: Annotated[StrictStr, AfterValidator(check_prefix)] = "SD"
    reopen_window_days: Annotated[StrictFloat, Field(ge=0)] = 14.0
    # The same requester on another channel joins their open ticket within this (0: never).
    link_window_minutes: Annotated[StrictFloat, Field(ge=0)] = 30.0


def _check_notice(value: str) -> str:
    try:
        value.format(address="desk@example.com", legacy="old@example.com")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"only {{address}} and {{legacy}} can be filled in ({exc!r})") from None
    return value


class EmailSection(Section):
    address: Address = "servicedesk@example.com"
    aliases: tuple[Address, ...] = ()
    from_name: StrictStr = "IT Service Desk"
    message_id_domain: Annotated[StrictStr, AfterValidator(check_domain)] | None = None
    # The acknowledgement of mail to a legacy alias tells the requester, once, that the desk's
    # one address is `address` ({address}, {legacy} are filled in); "" never tells.
    single_address_notice: Annotated[StrictStr, AfterValidator(_check_notice)] = (
        DEFAULT_SINGLE_ADDRESS_NOTICE
    )
    # An attachment bigger than this is kept as metadata only (its bytes stay in the raw mail).
    max_attachment_bytes: PositiveInt = 10 * 1024 * 1024
    # Staff whose forwards of a user's mail make the user the requester ("*@it.example.com").
    agent_addresses: tuple[Annotated[StrictStr, Field(min_length=3)], ...] = ()
    # The authserv-id(s) of the MX in front of spoc (RFC 8601). Set: first-time senders are
    # acknowledged only if that MX's Authentication-Results passed them (DMARC/SPF/DKIM).
    trusted_authserv_ids: tuple[Annotated[StrictStr, AfterValidator(check_domain)], ...] = ()

    @property
    def id_domain(self) -> str:
        """The right-hand side of the Message-IDs we write (default: the desk's domain)."""
        return self.message_id_domain or self.address.rpartition("@")[2]

    def wording(self) -> EmailWording:
        """How the desk's mails read (the outbound email transport's wording settings)."""
        return EmailWording(single_address_notice=self.single_address_notice or None)


# The SMTP channel declares its settings and their defaults once; [smtp] takes them from there
# and Config.smtp_settings() hands the section back to it whole.
_SMTP = SMTPChannelSettings(desk_address="")


class SmtpSection(Section):
    host: StrictStr = _SMTP.host
    port: Port = _SMTP.port
    max_message_bytes: PositiveInt = _SMTP.max_message_bytes
    max_recipients: PositiveInt = _SMTP.max_recipients
    max_connections: PositiveInt = _SMTP.max_connections
    max_connections_per_client: PositiveInt = _SMTP.max_connections_per_client
    client_limit_exceptions: Networks = _SMTP.client_limit_exceptions
    max_errors: PositiveInt = _SMTP.max_errors
    max_inflight_bytes: PositiveInt = _SMTP.max_inflight_bytes
    idle_timeout_seconds: PositiveFloat = _SMTP.idle_timeout_seconds
    data_timeout_seconds: PositiveFloat = _SMTP.data_timeout_seconds
    accept_abuse: StrictBool = _SMTP.accept_abuse  # abuse@ too (postmaster@ always)
    # STARTTLS: a PEM certificate chain and its key (both or neither; checked by Config).
    tls_cert_file: Annotated[StrictStr, Field(min_length=1)] | None = _SMTP.tls_cert_file
    tls_key_file: Annotated[StrictStr, Field(min_length=1)] | None = _SMTP.tls_key_file
    require_starttls: StrictBool = _SMTP.require_starttls  # 530 to MAIL before STARTTLS

    @model_validator(mode="after")
    def _budget_holds_one_message(self) -> SmtpSection:
        if self.max_inflight_bytes < self.max_message_bytes:
            raise ValueError(
                f"max_inflight_bytes ({self.max_inflight_bytes}) is below max_message_bytes "
                f"({self.max_message_bytes}): a message of the advertised size could never "
                "be accepted"
            )
        return self


class OutboundSmtpSection(Section):
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

    def sender_settings(self, password: str | None) -> OutboundSMTPSettings:
        """The relay as the email transport takes it (password from the environment)."""
        return OutboundSMTPSettings(password=password, **self.model_dump())


class AcksSection(Section):
    enabled: StrictBool = True
    per_sender_per_hour: Annotated[StrictInt, Field(ge=0)] = 5
    global_per_minute: Annotated[StrictInt, Field(ge=0)] = 120


_TRIAGE = TriageSettings()


class TriageSection(Section):
    high_urgency_words: tuple[StrictStr, ...] = _TRIAGE.high_urgency_words
    low_urgency_words: tuple[StrictStr, ...] = _TRIAGE.low_urgency_words
    service_request_words: tuple[StrictStr, ...] = _TRIAGE.service_request_words
    vip: tuple[StrictStr, ...] = ()  # emails or E.164 phone numbers
    classifier: Literal["wordllama", "off"] = "wordllama"  # triage by meaning (README)
    min_confidence: Annotated[StrictFloat, Field(ge=0, le=1)] = _TRIAGE.min_confidence
    timeout_seconds: Annotated[StrictFloat, Field(gt=0, le=30)] = 0.5  # well inside Slack's 3 s ack
    link_similarity: Annotated[StrictFloat, Field(ge=0, le=1)] = 0.65


class OutboxSection(Section):
    """Outbound deliveries (``gateway.dispatcher``, ``router.retry``)."""

    max_attempts: PositiveInt = 3  # permanent failures are dead after this many attempts
    lifetime_hours: PositiveFloat = 120.0  # temporary failures retry this long (Postfix: 5d)
    backoff_base_seconds: PositiveFloat = 1.0
    backoff_max_seconds: PositiveFloat = 900.0
    lease_seconds: Annotated[StrictFloat, Field(ge=10)] = 120.0  # a send gets 90% of it
    batch_size: PositiveInt = 20
    poll_interval_seconds: PositiveFloat = 1.0

    @model_validator(mode="after")
    def _backoff_in_order(self) -> OutboxSection:
        if self.backoff_max_seconds < self.backoff_base_seconds:
            raise ValueError(
                f"backoff_max_seconds ({self.backoff_max_seconds:g}) is shorter than "
                f"backoff_base_seconds ({self.backoff_base_seconds:g})"
            )
        return self

    def dispatcher_settings(self) -> DispatcherSettings:
        return DispatcherSettings(
            retry=RetryPolicy(
                backoff_base_seconds=self.backoff_base_seconds,
                backoff_max_seconds=self.backoff_max_seconds,
                lifetime_seconds=self.lifetime_hours * 3600.0,
                permanent_max_attempts=self.max_attempts,
            ),
            poll_interval_seconds=self.poll_interval_seconds,
            batch_size=self.batch_size,
            lease_seconds=self.lease_seconds,
        )


Folder = Annotated[StrictStr, Field(min_length=1, max_length=1000)]


class ImapMailbox(Section):
    """One mailbox the IMAP channel polls (channels/imap); keys as in README's IMAP section."""

    name: Name
    host: Annotated[StrictStr, Field(min_length=1)]
    port: Port = 993
    tls: StrictBool = True  # implicit TLS (IMAPS)
    starttls: StrictBool = False  # plain port, then STARTTLS (set tls = false)
    ca_file: Annotated[StrictStr, Field(min_length=1)] | None = None  # else the system CAs
    username: StrictStr  # password from SPOC_IMAP_<NAME>_PASSWORD or SPOC_IMAP_PASSWORD
    folder: Folder = "INBOX"
    processed_folder: Folder = "spoc/processed"
    failed_folder: Folder = "spoc/failed"
    poll_interval_seconds: PositiveFloat = 60.0  # servers without IDLE
    idle_seconds: Annotated[StrictFloat, Field(gt=0, le=600)] = 540.0  # IDLE re-issued this often
    max_messages_per_cycle: PositiveInt = 100
    max_failures: PositiveInt = 3  # then quarantine + failed_folder
    max_message_bytes: PositiveInt = 26_214_400  # bigger: failed_folder without fetching
    reconnect_max_seconds: PositiveFloat = 300.0
    timeout_seconds: PositiveFloat = 60.0

    @model_validator(mode="after")
    def _consistent(self) -> ImapMailbox:
        if self.tls and self.starttls:
            raise ValueError(
                "tls and starttls are both true; choose one (starttls needs tls = false)"
            )
        folders = (self.folder, self.processed_folder, self.failed_folder)
        if len(set(folders)) < len(folders):
            raise ValueError("folder, processed_folder and failed_folder must all differ")
        return self


class FaxSection(Section):
    senders: tuple[Annotated[StrictStr, Field(min_length=1)], ...] = ()  # "*@fax.example.net"
    subject_pattern: Regex = r"(?i)fax from (?P<number>[+0-9][0-9 ()-]{5,})"
    default_region: Annotated[StrictStr, Field(pattern=r"^[A-Z]{2}$")] = "US"  # national numbers


class TwilioSection(Section):
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


class SlackSection(Section):
    enabled: StrictBool = False  # secrets from SPOC_SLACK_*
    mode: Literal["http", "socket"] = "http"
    api_base_url: HttpUrl = "https://slack.com/api/"
    # An emoji name (no colons) whose reaction turns a message into a ticket; "" = off.
    reaction: Annotated[StrictStr, Field(pattern=r"^[a-z0-9_+'-]{0,100}$")] = ""
    users_cache_ttl_seconds: PositiveFloat = 3600.0
    # users.info + chat.getPermalink before the ack share this bound (Slack allows 3 s in all).
    lookup_timeout_seconds: Annotated[StrictFloat, Field(gt=0, lt=3)] = 1.5


class ApiSection(Section):
    enabled: StrictBool = True  # bearer token(s) from SPOC_API_TOKEN
    # True: API clients vouch for every identifier they send (a directory sync), so a contact's
    # email, phone and Slack id are linked to one requester. False (default): only the first
    # one counts; a phone typed into a web form next to an email is never linked.
    link_identities: StrictBool = False


class DashboardSection(Section):
    """The operators' dashboard at ``/``; the session secret and an operator password hash come
    from SPOC_DASHBOARD_SECRET and SPOC_DASHBOARD_PASSWORD_HASH."""

    enabled: StrictBool = True
    session_hours: Annotated[StrictFloat, Field(gt=0, le=720)] = 12.0
    page_size: Annotated[StrictInt, Field(ge=5, le=200)] = 25


class WebformCategory(Section):
    name: Annotated[StrictStr, Field(min_length=1, max_length=100)]
    label: Annotated[StrictStr, Field(min_length=1, max_length=200)]


class WebformSection(Section):
    """The end users' form at ``/report`` (channel ``web``)."""

    enabled: StrictBool = False
    title: Annotated[StrictStr, Field(min_length=1, max_length=200)] = "Report a problem"
    # none: the IVR menu's categories, else no category field at all
    categories: tuple[WebformCategory, ...] = ()
    max_attachments: Annotated[StrictInt, Field(ge=0, le=20)] = 5
    max_attachment_bytes: PositiveInt = 10 * 1024 * 1024  # all files of one report together
    max_reports_per_hour: PositiveInt = 5  # per client address and per email address


class GroupEntry(Section):
    name: Name
    tier: PositiveFloat


class RoutingWhen(Section):
    channel: ChannelName | None = None
    recipient: Address | None = None
    sender_domain: Annotated[StrictStr, AfterValidator(check_domain)] | None = None
    subject_matches: Regex | None = None
    body_matches: Regex | None = None
    category: StrictStr | None = None


class RoutingEntry(Section):
    when: RoutingWhen = RoutingWhen()
    group: Name
    category: StrictStr | None = None
    kind: KindName | None = None
    priority: Priority | None = None


class ForwardWhen(Section):
    group: StrictStr | None = None
    channel: ChannelName | None = None
    category: StrictStr | None = None
    kind: KindName | None = None
    priority: Priority | None = None


class ForwardEntry(Section):
    name: Name  # secret from SPOC_FORWARD_<NAME>_SECRET
    kind: Literal["webhook", "email", "jira", "servicenow", "zendesk"]
    url: HttpUrl | None = None  # webhook, jira, servicenow, zendesk
    to: Address | None = None  # email
    when: ForwardWhen = ForwardWhen()
    allow_private_network: StrictBool = False
    username: StrictStr | None = None  # jira, zendesk: the agent's email; servicenow: a user
    service_desk_id: Annotated[StrictStr, Field(pattern=r"^[0-9]+$")] | None = None  # jira
    request_type_id: Annotated[StrictStr, Field(pattern=r"^[0-9]+$")] | None = None  # jira
    timeout_seconds: PositiveFloat = 30.0
    relay_replies: StrictBool = True  # email: the target's answers by mail go to the requester

    @model_validator(mode="after")
    def _target_given(self) -> ForwardEntry:
        if self.kind == "email" and not self.to:
            raise ValueError("an email forward needs `to` (an email address)")
        if self.kind != "email" and not self.url:
            raise ValueError(f"a {self.kind} forward needs `url`")
        if self.kind != "email" and "relay_replies" in self.model_fields_set:
            raise ValueError(
                "`relay_replies` is for email forwards (a tool's public comments are relayed, "
                "its internal ones never)"
            )
        needed = {
            "jira": ("username", "service_desk_id", "request_type_id"),
            "servicenow": ("username",),
            "zendesk": ("username",),
        }.get(self.kind, ())
        missing = [key for key in needed if not getattr(self, key)]
        if missing:
            raise ValueError(f"a {self.kind} forward needs {', '.join(missing)}")
        return self
