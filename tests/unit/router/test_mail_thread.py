"""``router.mail_thread``: the References of the desk's mails to a requester, in thread order."""

from __future__ import annotations

from router.mail_thread import MAX_REFERENCES
from tests.unit.router.conftest import Desk, email
from tests.unit.router.test_replies import queued


def _mails(desk: Desk, kind: str) -> list[dict[str, object]]:
    return [payload for k, payload in queued(desk) if k == kind]


async def test_each_reply_lists_the_thread_root_first_in_the_order_it_came_and_went(
    desk: Desk,
) -> None:
    first = await desk.router.submit(email(message_id="first@mail.example.org"))
    (ack,) = _mails(desk, "email.ack")
    await desk.router.submit(
        email(message_id="second@mail.example.org", in_reply_to=(str(ack["message_id"]),))
    )
    await desk.tickets.reply(first.ticket_ref, "On our way")
    await desk.tickets.reply(first.ticket_ref, "Bring it to desk 4")

    one, two = _mails(desk, "email.reply")
    assert one["references"] == [
        "first@mail.example.org",
        ack["message_id"],
        "second@mail.example.org",
    ]
    assert two["references"] == [*one["references"], one["message_id"]]  # type: ignore[misc]
    assert one["in_reply_to"] == two["in_reply_to"] == "second@mail.example.org"


async def test_a_long_thread_keeps_its_root_and_the_newest(desk: Desk) -> None:
    first = await desk.router.submit(email(message_id="root@mail.example.org"))
    for n in range(MAX_REFERENCES + 5):
        await desk.tickets.reply(first.ticket_ref, f"note {n}")

    last = _mails(desk, "email.reply")[-1]
    references = last["references"]
    assert isinstance(references, list) and len(references) == MAX_REFERENCES
    assert references[0] == "root@mail.example.org"
    previous = _mails(desk, "email.reply")[-2]
    assert references[-1] == previous["message_id"]
