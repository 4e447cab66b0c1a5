"""``channels.outbound.sms.sms_body``: the router's facts as one text message."""

from __future__ import annotations

from typing import Any

import pytest

from channels.outbound import DeliveryError
from channels.outbound.sms import MAX_BODY_CHARS, sms_body


def facts(event: str | None, **kw: Any) -> dict[str, Any]:
    payload = {"event": event, "to": "+12025550100", "ticket_ref": "SD-42"} | kw
    if event is None:
        del payload["event"]
    return payload


def test_a_reply_names_the_ticket_first() -> None:
    assert sms_body(facts("reply", text="Try again now.")) == "SD-42: Try again now."


def test_a_payload_worded_before_the_upgrade_reads_as_a_reply() -> None:
    assert sms_body(facts(None, text="Try again now.")) == "SD-42: Try again now."


def test_a_status_change_names_the_ref_once() -> None:
    body = sms_body(facts("status", status="resolved", text="new board fitted"))
    assert body == "SD-42 is resolved: new board fitted"
    assert sms_body(facts("status", status="resolved", text="")) == "SD-42 is resolved."


def test_an_escalation_reads_as_a_sentence() -> None:
    body = sms_body(facts("escalated", group="network", text="needs l2"))
    assert body == "SD-42 is now with network: needs l2"


def test_a_long_body_is_cut_to_twilios_limit_with_an_ellipsis() -> None:
    body = sms_body(facts("reply", text="x" * 5000))
    assert len(body) == MAX_BODY_CHARS and body.endswith("…")


@pytest.mark.parametrize("payload", [facts("reply"), facts(None, text=7), facts("ack")])
def test_a_payload_with_nothing_to_text_is_permanent(payload: dict[str, Any]) -> None:
    with pytest.raises(DeliveryError) as caught:
        sms_body(payload)
    assert caught.value.permanent
