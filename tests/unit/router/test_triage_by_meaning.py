"""Triage by meaning through the router, with the real model: explicit signals win, the model
fills in only what they leave open and only when sure, and the ticket's events say what it
guessed. A slow or failed classification never costs the contact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from normalizer.contact import Channel, Contact, Hints, Party
from normalizer.intake import ContactRejectedError
from router.meaning import MeaningReader
from router.settings import UNCATEGORISED
from tests.unit.router.conftest import Desk
from tests.unit.router.triage_support import (
    call,
    events_of,
    mail,
    open_desk,
    shipped_settings,
)


async def test_an_email_without_category_gets_the_model_s_category(smart_desk: Desk) -> None:
    result = await smart_desk.router.submit(
        mail(smart_desk, "VPN", "The VPN client says error 809 and will not connect from home.")
    )
    ticket = await smart_desk.tickets.get(result.ticket_ref)
    assert ticket["category"] == "network"
    [classified] = await events_of(smart_desk, result.ticket_id, "classified")
    assert classified["decided_by"] == "model"
    assert classified["summary"].startswith("classified as network (0.")
    assert len(classified["guesses"]) == 3
    assert classified["guesses"][0]["category"] == "network"


async def test_an_ivr_choice_wins_over_the_model(smart_desk: Desk) -> None:
    contact = call(smart_desk, "the VPN will not connect from home", category="broken_device")
    result = await smart_desk.router.submit(contact)
    ticket = await smart_desk.tickets.get(result.ticket_ref)
    assert ticket["category"] == "broken_device"
    [classified] = await events_of(smart_desk, result.ticket_id, "classified")
    assert classified["decided_by"] == "explicit"
    assert classified["guesses"][0]["category"] == "network"  # shown to the desk all the same


async def test_a_guess_below_the_threshold_leaves_the_ticket_uncategorised(
    tmp_path: Path, reader: MeaningReader
) -> None:
    settings = shipped_settings()
    strict = shipped_settings(triage=type(settings.triage)(min_confidence=0.999))
    desk = await open_desk(tmp_path, strict, reader)
    try:
        result = await desk.router.submit(mail(desk, "Hi", "the thing from yesterday again"))
        ticket = await desk.tickets.get(result.ticket_ref)
    finally:
        await desk.store.close()
    assert ticket["category"] == UNCATEGORISED
    [classified] = [e["detail"] for e in ticket["events"] if e["type"] == "classified"]
    assert classified["decided_by"] == "below-threshold"
    assert classified["summary"].count("(0.") == 3


async def test_the_category_s_group_and_kind_apply(smart_desk: Desk) -> None:
    text = "We were charged twice for the March subscription, please refund one payment."
    result = await smart_desk.router.submit(mail(smart_desk, "Double charge", text))
    ticket = await smart_desk.tickets.get(result.ticket_ref)
    assert ticket["category"] == "billing"
    assert ticket["group"] == "customer-support"  # [[categories]] billing.group
    assert ticket["kind"] == "service_request"


async def test_a_contact_read_too_late_keeps_the_rule_based_category_and_says_why(
    tmp_path: Path, reader: MeaningReader
) -> None:
    assert reader.model is not None
    late = MeaningReader(lambda: reader.model, timeout_seconds=1e-9)  # type: ignore[arg-type, return-value]
    await late.start()  # every contact reaches the writer after its bound
    desk = await open_desk(tmp_path, shipped_settings(), late)
    try:
        result = await desk.router.submit(mail(desk, "VPN", "The VPN does not connect."))
        ticket = await desk.tickets.get(result.ticket_ref)
    finally:
        await desk.store.close()
    assert ticket["category"] is None  # committed and answered all the same
    [classified] = [e["detail"] for e in ticket["events"] if e["type"] == "classified"]
    assert classified["failure"] == "timeout"
    assert "rule-based category is kept" in classified["summary"]


async def test_an_api_category_the_config_does_not_define_is_refused(smart_desk: Desk) -> None:
    contact = Contact(
        channel=Channel.API,
        external_id="ext-1",
        sender=Party(email="bob@example.org"),
        received_at=smart_desk.clock.now,
        text="hello",
        hints=Hints(category="hardwre"),
    )
    with pytest.raises(ContactRejectedError) as refused:
        await smart_desk.router.submit(contact)
    assert refused.value.field == "category"
    assert "broken_device" in str(refused.value)


async def test_the_vector_is_kept_but_not_shown_in_the_ticket_json(smart_desk: Desk) -> None:
    result = await smart_desk.router.submit(mail(smart_desk, "Printer", "paper jam on floor 3"))
    ticket = await smart_desk.tickets.get(result.ticket_ref)
    assert [e for e in ticket["events"] if e["type"] == "meaning"] == []
    [kept] = await events_of(smart_desk, result.ticket_id, "meaning")
    assert kept["contact_id"] == ticket["contacts"][0]["id"]
    assert len(kept["vector"]) > 600  # 256 float16, base64


async def test_without_a_model_the_store_is_given_nothing_to_run_first(tmp_path: Path) -> None:
    """A classifier that could not be built reads nothing: the store gets no ``before`` (it
    would cost a hand-off per batch for nothing), and the ticket says why it has no guesses."""

    def broken() -> Any:
        raise OSError("weights unreadable")

    reader = MeaningReader(broken)
    await reader.start()
    desk = await open_desk(tmp_path, shipped_settings(), reader)
    befores: list[object] = []
    write = desk.store.write

    async def recorded(fn: Any, before: Any = None) -> Any:
        befores.append(before)
        return await write(fn, before)

    desk.store.write = recorded  # type: ignore[method-assign]
    try:
        result = await desk.router.submit(mail(desk, "VPN", "The VPN does not connect."))
        ticket = await desk.tickets.get(result.ticket_ref)
    finally:
        await desk.store.close()
    assert befores == [None]
    [classified] = [e["detail"] for e in ticket["events"] if e["type"] == "classified"]
    assert classified["failure"] == "no-model"
