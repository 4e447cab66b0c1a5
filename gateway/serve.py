"""``spoc serve``: one process, one event loop, every enabled channel, the HTTP app and the
outbox dispatcher.

Start order: database (SQLite is migrated in place; PostgreSQL must be at head), router, outbox
dispatcher, SMTP, IMAP pollers, HTTP. Stop order on SIGTERM/SIGINT: stop accepting (SMTP and
HTTP listeners close, IMAP pollers finish the message in hand, leave IDLE and log out), let
in-flight contacts finish and commit, stop the dispatcher, close the store; exit 0.

A worker of ``spoc serve --workers N`` (``gateway.workers``) is the same gateway with a
:class:`WorkerRole`: its listeners share their ports with the other workers (SO_REUSEPORT), the
parent checked the schema once already, and its metrics go to the directory the workers share
(``gateway.shared_metrics``). Like every instance, it signs dashboard sessions with
``SPOC_DASHBOARD_SECRET`` or else the secret kept in the database (``router.shared_secrets``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from aiohttp import web

from channels.base import WebhookChannel
from channels.imap import IMAPChannel, IMAPMailboxSettings
from channels.inflight_budget import InflightBudget
from channels.outbound.email import EmailSender
from channels.outbound.slack import SlackSender, SlackSenderSettings
from channels.outbound.sms import TwilioSMSSender, TwilioSMSSettings
from channels.outbound.smtp_sessions import SessionLimits
from channels.slack import SlackChannel, SlackChannelSettings
from channels.smtp import SMTPChannel
from channels.twilio import Menu, TwilioChannel, TwilioSettings
from channels.webform import WebFormChannel, WebFormSettings
from gateway.auth import encode_tokens
from gateway.config import Config
from gateway.config.secrets import env_name
from gateway.config.sections import ImapMailbox
from gateway.dashboard import Dashboard, DashboardSettings
from gateway.dashboard.queues import Queues
from gateway.dashboard.session import Sessions
from gateway.dispatcher import Dispatcher, Sender
from gateway.exit_codes import EXIT_FAILED, EXIT_OK
from gateway.forwarding import ForwardSender, forwarders
from gateway.hooks import add_hook_routes
from gateway.http import bound_port, build_app, start_http
from gateway.http_budget import BODY_BUDGET_KEY
from gateway.logs import configure_logging
from gateway.metrics import MeteredIntake, MeteredQuarantine, Metrics
from gateway.migrate import check, upgrade
from gateway.triage import start_meaning_reader
from normalizer.contact import Contact
from normalizer.intake import Intake, IntakeResult
from router.calls import CallJournalStore
from router.forward_hooks import HookInbox
from router.forwards import ForwardRecords
from router.lookup import ChatLookup, PhoneLookup
from router.mailboxes import MailboxCheckpoints, poller_lock
from router.meaning import MeaningReader
from router.outbox import Outbox
from router.outbox_admin import OutboxAdmin
from router.quarantine import QuarantineStore
from router.rate_limits import RateLimits
from router.revisions import ContactRevisions
from router.router import Router
from router.sessions import RevokedSessions
from router.settings import RouterSettings
from router.shared_secrets import shared_secret
from router.stats import Stats
from router.store import Store, is_sqlite
from router.tickets import TicketService

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 30.0


class StartupError(Exception):
    """The gateway cannot start; the message says what to do."""


@dataclass(frozen=True, slots=True)
class WorkerRole:
    """What makes a gateway one of the workers of ``spoc serve --workers N``."""

    index: int  # 1..N, for the logs
    ready: Callable[[], None]  # tells the parent this worker is listening
    metrics_dir: Path  # where the workers share their metrics (gateway.shared_metrics)


@dataclass(slots=True)
class _WakeDispatcher:
    """Wakes the dispatcher as soon as a contact may have queued something to send."""

    intake: Intake
    dispatcher: Dispatcher

    async def submit(self, contact: Contact) -> IntakeResult:
        result = await self.intake.submit(contact)
        if result.queued:  # an ack, a forward or a relayed answer waits in the outbox
            self.dispatcher.wake()
        return result


class Gateway:
    """Everything ``spoc serve`` runs, startable in-process (tests, ``spoc demo``)."""

    def __init__(self, config: Config, worker: WorkerRole | None = None) -> None:
        self.config = config
        self.worker = worker
        self.metrics = Metrics(worker.metrics_dir if worker is not None else None)
        self.store: Store | None = None
        self.router: Router | None = None
        self.meaning: MeaningReader | None = None
        self.tickets: TicketService | None = None
        self.smtp: SMTPChannel | None = None
        self.dispatcher: Dispatcher | None = None
        self.webhook_channels: list[WebhookChannel] = []
        self.imap_channels: list[IMAPChannel] = []
        self._http: web.AppRunner | None = None
        self.dashboard: Dashboard | None = None
        # Signs dashboard sessions and form tokens: SPOC_DASHBOARD_SECRET, else the one kept
        # in the database (the same on every instance); set in start().
        self._form_secret = b""

    @property
    def smtp_port(self) -> int:
        assert self.smtp is not None
        return self.smtp.port

    @property
    def http_port(self) -> int:
        assert self._http is not None
        return bound_port(self._http)

    @property
    def http_app(self) -> web.Application:
        """The HTTP application being served."""
        assert self._http is not None
        return self._http.app

    @property
    def body_budget(self) -> InflightBudget:
        """The HTTP server's budget of request-body bytes in flight (``gateway.http_budget``)."""
        return self.http_app[BODY_BUDGET_KEY]

    async def start(self) -> None:
        config = self.config
        url = config.database_url
        for section in config.inert_sections():
            log.info("[%s] is configured but not active in this version; it is ignored", section)
        if self.worker is None:  # a worker's parent did this once for all of them
            await asyncio.to_thread(bring_schema_up, url)
        self.store = Store.from_url(url)
        await self.store.start()
        self._form_secret = await self._signing_secret(self.store)
        relay = EmailSender(
            config.outbound_smtp.sender_settings(config.secrets.outbound_smtp_password),
            config.email.wording(),
            SessionLimits(max_sessions=config.outbox.batch_size),  # the dispatcher's concurrency
        )
        senders = self._outbound_senders(relay)
        # Agents may reply only on transports that actually run (router.replies).
        settings = replace(config.router_settings(), outbound_transports=frozenset(senders))
        self.meaning = await start_meaning_reader(config, settings)
        self.router = Router(self.store, settings, meaning=self.meaning)
        self.tickets = TicketService(self.store, settings)
        # [[forward]]: forward.<kind> rows and POST /hooks/<name>; email ones use the relay
        targets = forwarders(config, relay)
        records = ForwardRecords(self.store)
        senders["forward"] = ForwardSender(targets, records, self.tickets).send
        self.dispatcher = Dispatcher(
            Outbox(self.store),
            senders,
            self.metrics,
            config.outbox.dispatcher_settings(),
            closers=(relay.close,),
        )
        self.dispatcher.start()
        intake = _WakeDispatcher(MeteredIntake(self.router, self.metrics), self.dispatcher)
        self.webhook_channels = self._webhook_channels(intake)
        for channel in self.webhook_channels:
            await channel.start()
        shared_ports = self.worker is not None
        self.smtp = SMTPChannel(
            replace(config.smtp_settings(), reuse_port=shared_ports),
            intake,
            MeteredQuarantine(QuarantineStore(self.store), self.metrics),
            steps=config.mail_steps(),
            tls_context=config.smtp_tls_context,  # read by the config check; not read again
        )
        await self.smtp.start()
        self.imap_channels = self._imap_channels(intake)
        for imap in self.imap_channels:
            await imap.start()
        self.dashboard = self._dashboard(intake)
        app = build_app(
            store=self.store,
            tickets=self.tickets,
            intake=intake,
            metrics=self.metrics,
            api_tokens=config.secrets.api_tokens,
            api_enabled=config.api.enabled,
            channels=self.webhook_channels,
            dashboard=self.dashboard,
            trusted_proxies=config.server.proxy_networks(),
            max_inflight_body_bytes=config.server.max_inflight_body_bytes,
            body_timeout_seconds=config.server.body_timeout_seconds,
        )
        add_hook_routes(app, targets, HookInbox(self.store, settings), self.dispatcher.wake)
        self._http = await start_http(
            app, config.server.http_host, config.server.http_port, reuse_port=shared_ports
        )
        log.info(
            "spoc ready: SMTP on %s:%d, HTTP on %s:%d, database %s",
            config.smtp.host,
            self.smtp_port,
            config.server.http_host,
            self.http_port,
            self.store.dialect,
        )

    async def _signing_secret(self, store: Store) -> bytes:
        configured = self.config.secrets.dashboard_secret
        if configured:
            return configured.encode("utf-8")
        log.info(
            "SPOC_DASHBOARD_SECRET is not set: dashboard sessions and form tokens are signed "
            "with a secret kept in the database, shared by every instance"
        )
        return await shared_secret(store, "dashboard")

    def _imap_channels(self, intake: Intake) -> list[IMAPChannel]:
        """One poller per ``[[imap]]`` mailbox that has a password; the others stay off, loudly."""
        config, store = self.config, self.store
        assert store is not None
        settings = config.router_settings()
        channels: list[IMAPChannel] = []
        for mailbox in config.imap:
            password = config.secrets.imap_password(mailbox.name)
            if not password:
                log.error(
                    "[[imap]] %r has no password: set SPOC_IMAP_%s_PASSWORD or "
                    "SPOC_IMAP_PASSWORD; this mailbox is NOT polled",
                    mailbox.name,
                    env_name(mailbox.name),
                )
                continue
            channels.append(
                IMAPChannel(
                    imap_mailbox_settings(mailbox, password, settings),
                    intake,
                    MailboxCheckpoints(store),
                    poller_lock(store, mailbox.name),
                    MeteredQuarantine(QuarantineStore(store), self.metrics),
                    steps=config.mail_steps(),
                )
            )
        return channels

    @property
    def _secure_cookies(self) -> bool:
        return self.config.server.base_url.startswith("https://")

    def _dashboard(self, intake: Intake) -> Dashboard | None:
        config = self.config
        if not config.dashboard.enabled:
            return None
        assert self.store is not None and self.tickets is not None
        sessions = Sessions(
            self._form_secret,
            tokens=encode_tokens(config.secrets.api_tokens),
            password_hash=config.secrets.dashboard_password_hash,
            max_age_seconds=int(config.dashboard.session_hours * 3600),
            limiter=RateLimits(self.store),  # failed logins counted across instances
            revocations=RevokedSessions(self.store),  # a logout ends the session everywhere
        )
        if not sessions.can_log_in:
            log.warning(
                "[dashboard]: neither SPOC_API_TOKEN nor SPOC_DASHBOARD_PASSWORD_HASH is set: "
                "nobody can log in"
            )
        settings = DashboardSettings(
            page_size=config.dashboard.page_size,
            secure_cookies=self._secure_cookies,
            groups=tuple(g.name for g in config.groups),
        )
        queues = Queues(
            QuarantineStore(self.store), OutboxAdmin(self.store), intake, self.tickets.settings
        )
        return Dashboard(settings, sessions, self.tickets, Stats(self.store), queues=queues)

    def _webform(self, intake: Intake) -> WebFormChannel:
        config = self.config
        form = config.webform
        if form.categories:
            categories = tuple((c.name, c.label) for c in form.categories)
        else:
            options = config.ivr.options if config.ivr else ()
            categories = tuple(dict.fromkeys((o.category, o.label) for o in options))
        settings = WebFormSettings(
            secret=self._form_secret,
            desk_address=config.email.address,
            title=form.title,
            categories=categories,
            max_attachments=form.max_attachments,
            max_attachment_bytes=form.max_attachment_bytes,
            max_reports_per_hour=form.max_reports_per_hour,
            secure_cookies=self._secure_cookies,
        )
        assert self.store is not None
        return WebFormChannel(settings, intake, limiter=RateLimits(self.store))

    def _outbound_senders(self, email: EmailSender) -> dict[str, Sender]:
        """Outbound transports by outbox kind prefix (``email`` serves email.ack, email.reply)."""
        config = self.config
        senders: dict[str, Sender] = {"email": email.send}
        if config.slack.enabled and config.secrets.slack_bot_token:
            slack = SlackSender(
                SlackSenderSettings(
                    bot_token=config.secrets.slack_bot_token,
                    api_base_url=config.slack.api_base_url,
                )
            )
            senders["slack"] = slack.send  # slack.ack, slack.reply, slack.status
        twilio, token = config.twilio, config.secrets.twilio_auth_token
        if twilio.enabled and token and twilio.account_sid and twilio.phone_number:
            sms = TwilioSMSSender(
                TwilioSMSSettings(
                    account_sid=twilio.account_sid,
                    auth_token=token,
                    from_number=twilio.phone_number,
                    api_base_url=twilio.api_base_url,
                )
            )
            senders["sms"] = sms.send  # sms.reply
        elif twilio.enabled and token:
            log.warning("[twilio] has no account_sid or phone_number: agents cannot reply by SMS")
        return senders

    def _webhook_channels(self, intake: Intake) -> list[WebhookChannel]:
        """Channels reached over the HTTP app, each enabled by its config section."""
        channels: list[WebhookChannel] = []
        config = self.config
        if config.webform.enabled:
            channels.append(self._webform(intake))
        if config.slack.enabled:
            slack, secrets, store = config.slack, config.secrets, self.store
            needed = {"SPOC_SLACK_BOT_TOKEN": secrets.slack_bot_token}
            if slack.mode == "http":
                needed["SPOC_SLACK_SIGNING_SECRET"] = secrets.slack_signing_secret
            else:
                needed["SPOC_SLACK_APP_TOKEN"] = secrets.slack_app_token
            missing = [name for name, value in needed.items() if not value]
            for name in missing:
                log.error("[slack] is enabled but %s is not set: Slack stays off", name)
            if not missing and secrets.slack_bot_token and store is not None:
                categories = [(c.name, c.label) for c in config.categories]
                settings = SlackChannelSettings(
                    bot_token=secrets.slack_bot_token,
                    signing_secret=secrets.slack_signing_secret,
                    app_token=secrets.slack_app_token,
                    mode=slack.mode,
                    api_base_url=slack.api_base_url,
                    reaction=slack.reaction,
                    users_cache_ttl_seconds=slack.users_cache_ttl_seconds,
                    lookup_timeout_seconds=slack.lookup_timeout_seconds,
                    categories=tuple(categories),
                )
                revisions = ContactRevisions(store, config.tickets.prefix)
                known_thread = ChatLookup(store).known_thread
                channels.append(SlackChannel(settings, intake, known_thread, revisions))
        if config.twilio.enabled:
            token = config.secrets.twilio_auth_token
            if not token:
                log.error(
                    "[twilio] is enabled but SPOC_TWILIO_AUTH_TOKEN is not set: the phone and SMS "
                    "channel is NOT started (its webhooks could not be verified)"
                )
            else:
                twilio = config.twilio
                twilio_settings = TwilioSettings(
                    auth_token=token,
                    public_base_url=config.server.base_url,
                    menu=config.ivr.to_menu() if config.ivr is not None else Menu(),
                    account_sid=twilio.account_sid,
                    api_base_url=twilio.api_base_url,
                    sms_window_hours=twilio.sms_window_hours,
                    download_recordings=twilio.download_recordings,
                    spool_dir=twilio.spool_path(Path.cwd()),
                    spool_retry_seconds=twilio.spool_retry_seconds,
                    default_region=twilio.default_region,
                )
                assert self.store is not None
                lookup = PhoneLookup(self.store, config.tickets.prefix)
                journal = CallJournalStore(self.store)  # any instance may get the hang-up
                channels.append(TwilioChannel(twilio_settings, intake, lookup, journal=journal))
        return channels

    async def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """Stop accepting, finish in-flight contacts, then release everything."""
        # Both listeners stop accepting at once, then each drains its in-flight contacts.
        listeners: list[Awaitable[None]] = []
        if self.smtp is not None:
            listeners.append(self.smtp.stop(grace_seconds))
        if self._http is not None:
            listeners.append(self._http.cleanup())
        listeners.extend(imap.stop(grace_seconds) for imap in self.imap_channels)
        await asyncio.gather(*listeners)
        for channel in self.webhook_channels:
            await channel.stop(grace_seconds)
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        if self.store is not None:
            await self.store.close()
        log.info("spoc stopped")


def bring_schema_up(url: str) -> None:
    """SQLite is migrated in place; PostgreSQL must be at head already (``spoc db upgrade``)."""
    if is_sqlite(url):
        upgrade(url)
    elif not check(url):
        raise StartupError("the database schema is not up to date: run `spoc db upgrade`")


def imap_mailbox_settings(
    mailbox: ImapMailbox, password: str, settings: RouterSettings
) -> IMAPMailboxSettings:
    """The IMAP channel's settings: the ``[[imap]]`` table as validated, plus the password and
    the desk's addresses. Mail written to the mailbox's own address (not journalled from the
    desk address) reaches the router as sent to that legacy address (``router.legacy``)."""
    return IMAPMailboxSettings(
        **mailbox.model_dump(),
        password=password,
        desk_address=settings.desk_address,
        our_addresses=settings.our_addresses,
    )


def settle_heap() -> None:
    """Take what start-up built out of the cyclic garbage collector's walks.

    The classifier's model, SQLAlchemy's tables, the config and the imported modules live as
    long as the process. Every full collection walked them all: 80-180 ms with the event loop
    stopped (and every thread with it), measured with ``bench/loop_lag.py`` (docs/benchmarks.md
    2e). Collected once and frozen (:func:`gc.freeze`, as pre-fork servers do), a full
    collection walks only what came after. Not in :class:`Gateway`: tests and ``spoc demo``
    start and stop many gateways in one process, and a frozen one would never be collected.
    """
    gc.collect()
    gc.freeze()


async def serve(config: Config, worker: WorkerRole | None = None) -> int:
    configure_logging(config.server.log_format)
    gateway = Gateway(config, worker)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    stop_signals = (signal.SIGTERM, signal.SIGINT)
    for sig in stop_signals:
        loop.add_signal_handler(sig, stop.set)
    # A worker is forked with these blocked (gateway.workers): one sent before now stops it.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
    try:
        await gateway.start()
    except (StartupError, OSError) as exc:
        log.error("spoc cannot start: %s", exc)
        await gateway.stop(grace_seconds=0)
        return EXIT_FAILED
    settle_heap()
    if worker is not None:
        worker.ready()
    await stop.wait()
    log.info("signal received: stopping (finishing in-flight contacts)")
    await gateway.stop()
    return EXIT_OK
