"""Prometheus metrics for ``GET /metrics``, on a registry of our own (no global state).

Under ``spoc serve --workers N`` (:class:`Metrics` given the shared directory) each worker's
counters and histograms live in prometheus_client's multiprocess files, and ``render`` serves
the sums over all workers (``gateway.shared_metrics``); the gauges read from the database come
from one collector (``gateway.database_gauges``), never summed.

Exposed series:

- ``spoc_contacts_total{channel,outcome}``: contacts handed to intake, by what became of them
  (``created`` a new ticket, ``appended`` to one, ``duplicate`` of a stored one, ``rejected``
  for good, ``failed`` temporarily or unexpectedly).
- ``spoc_tickets_created_total{channel}``: tickets opened, by the channel of their first contact.
- ``spoc_outbox_depth``: outbox rows waiting to be delivered (refreshed on each scrape).
- ``spoc_outbox_dead``: dead letters, deliveries given up on (``spoc outbox list --dead``).
- ``spoc_outbox_oldest_pending_seconds``: age of the oldest waiting row, 0 when none waits.
- ``spoc_delivery_failures_total{kind,target}``: failed outbound deliveries, by outbox kind and
  target: the transport (``email``, ``slack``, ``sms``), or the ``[[forward]]`` name for kind
  ``forward.<name>``.
- ``spoc_intake_seconds{channel}``: time from handing a contact in to its commit (or refusal):
  the handler latency of each channel.
- ``spoc_acks_suppressed_total{channel,reason}``: new tickets whose requester got no
  acknowledgement, and automatic mail recorded on a ticket, by why (``role-address``,
  ``sender-rate-limit``, ``bounce``, …; the reasons of ``router.acks``).
- ``spoc_thread_matches_total{channel,reason}``: contacts routed to a ticket, by the thread
  rule that decided (``message-id``, ``subject-tag``, ``chat-thread``, ``call``, ``new``, …).
- ``spoc_http_request_seconds{method,route}``: HTTP handler latency by route template
  (``/api/tickets/{ref}``; ``unmatched`` for paths no route serves), and
  ``spoc_http_responses_total{method,route,status}``.
- ``spoc_quarantined_total{kind,reason}``: items kept in the quarantine instead of a ticket:
  kind ``system`` by mail class (``bounce``, ``auto_reply``, ``feedback``, ``mdn``, ``loop``),
  kind ``error`` by cause (``rejected``, ``failed``). Such contacts count as outcome
  ``quarantined`` in ``spoc_contacts_total``.
- ``spoc_legacy_contacts_total{address}``: contacts that reached a legacy alias instead of the
  desk address (one series per configured alias): when one stays flat, it can be retired.
- ``spoc_quarantine_size{kind}``: items in the quarantine not yet replayed (refreshed on each
  scrape).

:class:`MeteredIntake` wraps any :class:`~normalizer.intake.Intake` so every channel is counted
the same way without knowing about metrics.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from gateway.database_gauges import DatabaseGauges
from gateway.shared_metrics import in_multiprocess_mode
from normalizer.contact import Channel, Contact
from normalizer.intake import (
    ContactRejectedError,
    Intake,
    IntakeResult,
    Quarantine,
    QuarantineReceipt,
)

OUTCOMES: Final = ("created", "appended", "duplicate", "rejected", "failed", "quarantined")
QUARANTINE_REASONS: Final = {
    "system": ("bounce", "auto_reply", "feedback", "mdn", "loop"),
    "error": ("rejected", "failed", "other"),
}
HTTP_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The gateway's metrics; one instance per process (or per test).

    ``shared_dir``: the directory the workers of ``spoc serve --workers N`` share their metrics
    through; this process must have joined it (``gateway.shared_metrics``). Without it, the
    metrics are this process's own, in memory.
    """

    def __init__(self, shared_dir: Path | None = None) -> None:
        if shared_dir is not None and not in_multiprocess_mode():
            raise RuntimeError(
                "shared metrics need prometheus_client in multiprocess mode: call "
                "gateway.shared_metrics.join_shared_metrics before creating Metrics"
            )
        own: CollectorRegistry | None
        if shared_dir is None:
            self.registry = own = CollectorRegistry(auto_describe=True)
        else:
            # The counters go to no registry: their values are in the shared files, where the
            # MultiProcessCollector reads every worker's (registering them as well would export
            # them twice, says prometheus_client's documentation).
            self.registry, own = CollectorRegistry(), None
            MultiProcessCollector(self.registry, path=str(shared_dir))  # type: ignore[no-untyped-call]
        self._contacts = Counter(
            "spoc_contacts",
            "Contacts handed to intake, by channel and outcome.",
            ("channel", "outcome"),
            registry=own,
        )
        self._tickets_created = Counter(
            "spoc_tickets_created",
            "Tickets opened, by the channel of their first contact.",
            ("channel",),
            registry=own,
        )
        self._delivery_failures = Counter(
            "spoc_delivery_failures",
            "Failed outbound deliveries, by outbox kind and target.",
            ("kind", "target"),
            registry=own,
        )
        self._intake_seconds = Histogram(
            "spoc_intake_seconds",
            "Seconds from handing a contact to intake until it is committed or refused.",
            ("channel",),
            buckets=_LATENCY_BUCKETS,
            registry=own,
        )
        self._legacy = Counter(
            "spoc_legacy_contacts",
            "Contacts that reached a legacy alias instead of the desk address, by alias.",
            ("address",),
            registry=own,
        )
        self._acks_suppressed = Counter(
            "spoc_acks_suppressed",
            "Acknowledgements not sent, by channel and reason.",
            ("channel", "reason"),
            registry=own,
        )
        self._thread_matches = Counter(
            "spoc_thread_matches",
            "Contacts routed to a ticket, by channel and the thread rule that decided.",
            ("channel", "reason"),
            registry=own,
        )
        self._http_seconds = Histogram(
            "spoc_http_request_seconds",
            "Seconds an HTTP handler took, by method and route template.",
            ("method", "route"),
            buckets=_LATENCY_BUCKETS,
            registry=own,
        )
        self._http_responses = Counter(
            "spoc_http_responses",
            "HTTP responses, by method, route template and status code.",
            ("method", "route", "status"),
            registry=own,
        )
        self._quarantined = Counter(
            "spoc_quarantined",
            "Items kept in the quarantine instead of a ticket, by kind and reason.",
            ("kind", "reason"),
            registry=own,
        )
        for kind, reasons in QUARANTINE_REASONS.items():
            for reason in reasons:
                self._quarantined.labels(kind=kind, reason=reason)
        # Every known series exists from the start, so a dashboard shows 0 rather than nothing.
        for channel in Channel:
            self._tickets_created.labels(channel=channel.value)
            self._intake_seconds.labels(channel=channel.value)
            for outcome in OUTCOMES:
                self._contacts.labels(channel=channel.value, outcome=outcome)
        # Read from the database at each scrape: once in what /metrics serves, never per worker.
        # A gauge a process sets for itself, if one is ever added here, needs a
        # ``multiprocess_mode`` for --workers: ``livesum`` for what each worker holds (open
        # sessions, bytes in flight), ``max`` for a high-water mark; never the default ``all``,
        # which exports one series per pid.
        self._database = DatabaseGauges(QUARANTINE_REASONS)
        self.registry.register(self._database)
        # The series every committed contact counts in, each looked up once: ``labels()`` checks
        # and sorts its keywords and takes a lock on every call, and gives the same child each
        # time (no series is ever removed). Their label values come from the code's own sets
        # (channels, outcomes, thread rules, suppression reasons), so the caches stay small.
        # ``labels`` with the values in the order of the label names, as positional arguments.
        self._contact_series = cache(self._contacts.labels)  # (channel, outcome)
        self._intake_series = cache(self._intake_seconds.labels)  # (channel,)
        self._created_series = cache(self._tickets_created.labels)  # (channel,)
        self._thread_series = cache(self._thread_matches.labels)  # (channel, reason)

    def observe_intake(self, channel: str, outcome: str, seconds: float) -> None:
        """Count one contact's outcome and how long its handling took."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown intake outcome {outcome!r}")
        self._contact_series(channel, outcome).inc()
        self._intake_series(channel).observe(max(seconds, 0.0))
        if outcome == "created":
            self._created_series(channel).inc()

    def quarantined(self, kind: str, reason: str) -> None:
        """Count one item kept in the quarantine (``reason``: a mail class, or the cause)."""
        known = QUARANTINE_REASONS.get(kind)
        if known is None:
            raise ValueError(f"unknown quarantine kind {kind!r}")
        self._quarantined.labels(kind=kind, reason=reason if reason in known else known[-1]).inc()

    def legacy_contact(self, address: str) -> None:
        """Count one contact that reached ``address``, a configured legacy alias."""
        self._legacy.labels(address=address).inc()

    def routed(self, channel: str, result: IntakeResult) -> None:
        """Count the thread rule and any suppressed acknowledgement of a committed contact."""
        if result.duplicate or result.quarantine_id is not None:
            return
        self._thread_series(channel, result.thread_reason).inc()
        if result.ack_suppressed is not None:
            self._acks_suppressed.labels(channel=channel, reason=result.ack_suppressed).inc()

    def delivery_failed(self, kind: str) -> None:
        self._delivery_failures.labels(kind=kind, target=delivery_target(kind)).inc()

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        """One HTTP request: ``route`` is the matched template, never the raw path."""
        method = method if method in HTTP_METHODS else "other"
        self._http_seconds.labels(method=method, route=route).observe(max(seconds, 0.0))
        self._http_responses.labels(method=method, route=route, status=str(status)).inc()

    def set_outbox_state(self, pending: int, dead: int, oldest_pending_seconds: float) -> None:
        """The outbox gauges, as one scrape read them."""
        self._database.set_outbox(pending, dead, oldest_pending_seconds)

    def set_quarantine_sizes(self, sizes: Mapping[str, int]) -> None:
        self._database.set_quarantine_sizes(sizes)

    def render(self) -> tuple[bytes, str]:
        """The text exposition and its content type, for ``GET /metrics``."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MeteredIntake:
    """An :class:`Intake` that counts and times every ``submit`` of the intake it wraps."""

    def __init__(self, intake: Intake, metrics: Metrics) -> None:
        self._intake = intake
        self._metrics = metrics

    async def submit(self, contact: Contact) -> IntakeResult:
        started = time.perf_counter()
        outcome = "failed"
        try:
            result = await self._intake.submit(contact)
        except ContactRejectedError:
            outcome = "rejected"
            raise
        else:
            outcome = outcome_of(result)
            self._metrics.routed(contact.channel.value, result)
            if result.quarantine_id is not None and not result.duplicate:
                self._metrics.quarantined("system", contact.auto.value)
            if result.legacy_address and not result.duplicate:
                self._metrics.legacy_contact(result.legacy_address)
            return result
        finally:
            self._metrics.observe_intake(
                contact.channel.value, outcome, time.perf_counter() - started
            )


class MeteredQuarantine:
    """A :class:`Quarantine` that counts what the channels keep (kind ``error``)."""

    def __init__(self, quarantine: Quarantine, metrics: Metrics) -> None:
        self._quarantine = quarantine
        self._metrics = metrics

    async def keep(
        self, raw: bytes, *, source: str, reason: str, raw_type: str = "message/rfc822"
    ) -> QuarantineReceipt:
        receipt = await self._quarantine.keep(raw, source=source, reason=reason, raw_type=raw_type)
        if not receipt.duplicate:
            self._metrics.quarantined("error", reason.partition(":")[0])
        return receipt


def outcome_of(result: IntakeResult) -> str:
    """The ``outcome`` label for a committed contact."""
    if result.quarantine_id is not None:
        return "quarantined"
    if result.duplicate:
        return "duplicate"
    return "created" if result.created else "appended"


def delivery_target(kind: str) -> str:
    """Where an outbox kind delivers to: ``forward.<name>`` -> ``<name>``, else the transport
    (``email.ack`` -> ``email``)."""
    transport, _, rest = kind.partition(".")
    return rest if transport == "forward" and rest else transport
