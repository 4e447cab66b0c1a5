"""The metrics registry itself: labels derived from outbox kinds and intake results."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import Metrics, delivery_target
from normalizer.intake import IntakeResult


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    body, _ = metrics.render()
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    raise AssertionError(f"no sample {name} {labels}")


def result(**overrides: object) -> IntakeResult:
    values: dict[str, object] = {
        "ticket_ref": "SD-1", "ticket_id": 1, "contact_id": 1, "created": False,
        "duplicate": False, "thread_reason": "subject-tag",
    }  # fmt: skip
    values.update(overrides)
    return IntakeResult(**values)  # type: ignore[arg-type]


def test_a_forward_kind_fails_under_its_target_name_and_others_under_their_transport() -> None:
    assert delivery_target("forward.l2-jira") == "l2-jira"
    assert delivery_target("email.ack") == "email"
    assert delivery_target("slack.reply") == "slack"
    metrics = Metrics()
    metrics.delivery_failed("forward.l2-jira")
    metrics.delivery_failed("email.ack")
    metrics.delivery_failed("email.reply")
    assert sample(metrics, "spoc_delivery_failures_total", target="l2-jira") == 1
    assert sample(metrics, "spoc_delivery_failures_total", kind="email.reply", target="email") == 1


def test_a_routed_contact_counts_its_thread_rule_and_its_suppressed_ack() -> None:
    metrics = Metrics()
    metrics.routed("email", result())
    metrics.routed("email", result(created=True, thread_reason="new", ack_suppressed="bcc-only"))
    assert sample(metrics, "spoc_thread_matches_total", channel="email", reason="subject-tag") == 1
    assert sample(metrics, "spoc_acks_suppressed_total", channel="email", reason="bcc-only") == 1


def test_duplicates_and_quarantined_mail_count_no_thread_rule() -> None:
    metrics = Metrics()
    metrics.routed("email", result(duplicate=True, thread_reason="duplicate"))
    metrics.routed("email", result(thread_reason="quarantined:bounce", quarantine_id=3))
    body, _ = metrics.render()
    assert b"spoc_thread_matches_total{" not in body


def test_each_contact_counts_in_its_own_series_every_time() -> None:
    """The series are looked up once each: every later contact still counts in the series its
    labels name, not in the first one looked up."""
    metrics = Metrics()
    observed = [
        ("email", "created"),
        ("email", "created"),
        ("email", "appended"),
        ("sms", "created"),
    ]
    for channel, outcome in observed:
        metrics.observe_intake(channel, outcome, 0.01)
        metrics.routed(channel, result(thread_reason="new"))
    metrics.routed("email", result(thread_reason="subject-tag"))
    assert sample(metrics, "spoc_contacts_total", channel="email", outcome="created") == 2
    assert sample(metrics, "spoc_contacts_total", channel="email", outcome="appended") == 1
    assert sample(metrics, "spoc_contacts_total", channel="sms", outcome="created") == 1
    assert sample(metrics, "spoc_tickets_created_total", channel="email") == 2
    assert sample(metrics, "spoc_tickets_created_total", channel="sms") == 1
    assert sample(metrics, "spoc_intake_seconds_count", channel="email") == 3
    assert sample(metrics, "spoc_thread_matches_total", channel="email", reason="new") == 3
    assert sample(metrics, "spoc_thread_matches_total", channel="email", reason="subject-tag") == 1
    assert sample(metrics, "spoc_thread_matches_total", channel="sms", reason="new") == 1
