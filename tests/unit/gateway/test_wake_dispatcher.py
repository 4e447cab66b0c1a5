"""The gateway wakes the outbox dispatcher after a contact only when the contact queued
something to send: a woken dispatcher claims in a write transaction, which a contact whose ack
was suppressed (most of them on a busy desk, past the global ack budget) would waste."""

from __future__ import annotations

import pytest

from gateway.serve import _WakeDispatcher
from normalizer.contact import Contact
from normalizer.intake import IntakeResult
from tests.unit.router.conftest import email


class _Intake:
    def __init__(self, queued: bool) -> None:
        self.result = IntakeResult(
            "SD-1", 1, 1, created=True, duplicate=False, thread_reason="new", queued=queued
        )

    async def submit(self, contact: Contact) -> IntakeResult:
        return self.result


class _Dispatcher:
    def __init__(self) -> None:
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1


@pytest.mark.parametrize(("queued", "woken"), [(True, 1), (False, 0)])
async def test_only_a_contact_that_queued_something_wakes_the_dispatcher(
    queued: bool, woken: int
) -> None:
    dispatcher = _Dispatcher()
    intake = _WakeDispatcher(_Intake(queued), dispatcher)  # type: ignore[arg-type]
    assert (await intake.submit(email())).queued is queued
    assert dispatcher.woken == woken
