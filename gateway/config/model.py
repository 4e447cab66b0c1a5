"""The root :class:`Config` model: every section, the checks that span sections, and what the
environment adds (secrets, the working directory)."""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import Field, PrivateAttr, model_validator

from channels.smtp import SMTPChannelSettings
from channels.smtp_tls import TLSFileError, server_tls_context
from channels.webform.channel import max_report_bytes
from gateway.config.categories import CategoryEntry, default_categories
from gateway.config.ivr import IvrOption, IvrSection
from gateway.config.router_settings import router_settings
from gateway.config.secrets import Secrets, env_name
from gateway.config.sections import (
    AcksSection,
    ApiSection,
    DashboardSection,
    DatabaseSection,
    EmailSection,
    FaxSection,
    ForwardEntry,
    GroupEntry,
    ImapMailbox,
    OutboundSmtpSection,
    OutboxSection,
    RoutingEntry,
    Section,
    ServerSection,
    SlackSection,
    SmtpSection,
    TicketsSection,
    TriageSection,
    TwilioSection,
    WebformSection,
)
from gateway.http_budget import SMALL_BODY_HEADROOM
from normalizer.contact import ContactStep
from normalizer.email import contact_from_email
from normalizer.fax import FaxRules, FaxStep
from normalizer.forwarded import ForwardedStep
from normalizer.limits import AttachmentLimit
from router.settings import UNCATEGORISED, RouterSettings

# Sections that validate today but whose feature is not built yet: ``serve`` logs each once.
NOT_YET_ACTIVE: tuple[str, ...] = ()  # every configured section is live


class Config(Section):
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
    dashboard: DashboardSection = DashboardSection()
    webform: WebformSection = WebformSection()
    groups: tuple[GroupEntry, ...] = (GroupEntry(name="service-desk", tier=1.0),)
    routing: tuple[RoutingEntry, ...] = ()
    forward: tuple[ForwardEntry, ...] = ()
    ivr: IvrSection | None = None
    categories: tuple[CategoryEntry, ...] = Field(default_factory=default_categories)

    _secrets: Secrets = PrivateAttr(default_factory=Secrets)
    _base_dir: Path | None = PrivateAttr(default=None)
    _smtp_tls: ssl.SSLContext | None = PrivateAttr(default=None)  # set by the checks below

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
    def smtp_tls_context(self) -> ssl.SSLContext | None:
        """STARTTLS's context, built from ``[smtp] tls_cert_file`` and ``tls_key_file`` when
        the config was checked (None without them): ``spoc serve`` hands it to the SMTP
        channel, so the files are read once."""
        return self._smtp_tls

    @property
    def database_url(self) -> str:
        """``SPOC_DATABASE_URL`` or ``database.url``; relative SQLite paths made absolute."""
        url = self._secrets.database_url or self.database.url
        return resolve_sqlite_url(url, self._base_dir or Path.cwd())

    def inert_sections(self) -> list[str]:
        """Sections configured whose feature is not active yet (``serve`` logs each once)."""
        configured = {
            "fax": self.fax is not None,
            "twilio": self.twilio.enabled,
            "slack": self.slack.enabled,
            "forward": bool(self.forward),
            "ivr": self.ivr is not None,
        }
        return [name for name in NOT_YET_ACTIVE if configured.get(name)]

    def mail_steps(self) -> tuple[ContactStep, ...]:
        """What every mail channel (SMTP, IMAP, ``spoc replay``) does after conversion."""
        steps: list[ContactStep] = []
        if self.email.agent_addresses:
            ours = (self.email.address, *self.email.aliases)
            steps.append(
                ForwardedStep(
                    self.email.agent_addresses,
                    convert=lambda raw: contact_from_email(
                        raw, our_addresses=ours, loop_marker=self.email.address
                    ),
                )
            )
        if self.fax is not None and self.fax.senders:
            rules = FaxRules(
                senders=self.fax.senders,
                subject_pattern=re.compile(self.fax.subject_pattern),
                default_region=self.fax.default_region,
            )
            steps.append(FaxStep(rules))
        steps.append(AttachmentLimit(self.email.max_attachment_bytes))  # last: the steps before
        return tuple(steps)  # may read the files (a fax's pages, a forwarded message)

    def router_settings(self) -> RouterSettings:
        """The router's settings, built exactly as ``router.settings`` defines them."""
        return router_settings(self)

    def smtp_settings(self) -> SMTPChannelSettings:
        """The SMTP channel's settings: every ``[smtp]`` key as it is, and the desk's
        addresses from ``[email]``."""
        return SMTPChannelSettings(
            desk_address=self.email.address,
            aliases=tuple(self.email.aliases),
            trusted_authserv_ids=tuple(i.casefold() for i in self.email.trusted_authserv_ids),
            **self.smtp.model_dump(),
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
    yield from _category_problems(config, names)
    yield from _smtp_tls_problems(config)
    yield from _body_budget_problems(config)


def _body_budget_problems(config: Config) -> Iterator[str]:
    """The HTTP body budget takes one web-form report with its files at their limit."""
    files = config.webform.max_attachment_bytes
    needed = max_report_bytes(files) + SMALL_BODY_HEADROOM
    if config.webform.enabled and config.server.max_inflight_body_bytes < needed:
        yield (
            f"server.max_inflight_body_bytes ({config.server.max_inflight_body_bytes}) cannot "
            f"take one web-form report with webform.max_attachment_bytes ({files}) of files "
            f"and its text; raise it to at least {needed}"
        )


def _smtp_tls_problems(config: Config) -> Iterator[str]:
    """STARTTLS's keys go together, and their files hold a certificate and its key; the
    context read from them is kept (:attr:`Config.smtp_tls_context`)."""
    try:
        settings = config.smtp_settings()
    except ValueError as exc:  # the channel's own checks name the key
        yield str(exc)
        return
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        try:
            config._smtp_tls = server_tls_context(settings.tls_cert_file, settings.tls_key_file)
        except TLSFileError as exc:
            yield f"smtp.{exc.key}: {exc.problem}"


def _ivr_categories(key: str, options: Iterable[IvrOption]) -> Iterator[tuple[str, str]]:
    for index, option in enumerate(options):
        yield f"{key}[{index}].category", option.category
        yield from _ivr_categories(f"{key}[{index}].options", option.options)


def _category_problems(config: Config, groups: set[str]) -> Iterator[str]:
    """Every category named anywhere is a ``[[categories]]`` name; their groups exist."""
    yield from _duplicates("categories", (c.name for c in config.categories), "name")
    if not config.categories:
        yield "categories: at least one category is needed (leave the table out for the defaults)"
    known = {c.name for c in config.categories}
    for index, category in enumerate(config.categories):
        if category.group is not None and category.group not in groups:
            yield f"categories[{index}].group: {category.group!r} is not a [[groups]] name"
    used: list[tuple[str, str | None]] = []
    if config.ivr is not None:
        used += _ivr_categories("ivr.options", config.ivr.options)
    for index, rule in enumerate(config.routing):
        used += [(f"routing[{index}].when.category", rule.when.category)]
        used += [(f"routing[{index}].category", rule.category)]
    for index, fwd in enumerate(config.forward):
        if fwd.when.category != UNCATEGORISED:  # forwarding what triage left open is fine
            used += [(f"forward[{index}].when.category", fwd.when.category)]
    for key, name in used:
        if name is not None and name not in known:
            yield f"{key}: {name!r} is not a [[categories]] name"


def resolve_sqlite_url(url: str, base_dir: Path) -> str:
    """``sqlite:///var/spoc.db`` -> ``sqlite:////<base_dir>/var/spoc.db``; others unchanged."""
    scheme, sep, rest = url.partition(":///")
    if not sep or not scheme.startswith("sqlite"):
        return url
    path, query_sep, query = rest.partition("?")
    if not path or path == ":memory:" or path.startswith("/"):
        return url
    return f"{scheme}:///{(base_dir / path).resolve()}{query_sep}{query}"
