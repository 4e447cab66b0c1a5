"""``kind = "email"`` over real sockets: the original mail with its attachments forwarded to a
vendor's helpdesk address, tagged with our ref, the vendor's reply threaded back and relayed to
the requester with only its new text (not with ``relay_replies = false``, never an
out-of-office)."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path
from typing import Any

from tests.integration.forward_support import forwarding_gateway, wait_for_state

VENDOR = "support@acme-vendor.example"
CONFIG = f"""
[[routing]]
when = {{ subject_matches = "SAP" }}
group = "vendor-acme"

[[forward]]
name = "vendor-acme"
kind = "email"
to = "{VENDOR}"
when = {{ group = "vendor-acme" }}
"""


def _mail_with_log() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Alice <alice@example.org>"
    msg["To"] = "servicedesk@example.com"
    msg["Subject"] = "SAP is down"
    msg["Message-ID"] = "<first@mail.example.org>"
    msg.set_content("Nobody can log in to SAP since 9:00.")
    msg.add_attachment(
        b"ERROR 500 at login\n", maintype="text", subtype="plain", filename="sap.log"
    )
    return msg.as_bytes()


async def test_original_mail_is_forwarded_whole_and_the_vendors_reply_threads_back(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with forwarding_gateway(tmp_path, sqlite_url, CONFIG, {}) as gw:
        ref = (await gw.send_mail(_mail_with_log())).queued_as
        await wait_for_state(gw, ref, "vendor-acme", "delivered")
        reply = (
            f"From: ACME Support <{VENDOR}>\r\nTo: servicedesk@example.com\r\n"
            f"Subject: Re: [{ref}] SAP is down\r\nMessage-ID: <v1@acme-vendor.example>\r\n\r\n"
            "We pushed a fix for the login service.\r\n"
        ).encode()
        answered = await gw.send_mail(reply, mail_from=VENDOR)
        messages = await gw.settle()
        ticket = await gw.ticket(ref)

    to_vendor = [m for m in messages if m["To"] == VENDOR]
    assert len(to_vendor) == 1  # the vendor's own reply is not sent back to it
    forward = to_vendor[0]
    assert forward["Subject"] == f"[{ref}] SAP is down"
    assert forward["Reply-To"] == "servicedesk@example.com"
    assert "Nobody can log in to SAP" in forward.get_body(("plain",)).get_content()
    (attached,) = [
        p for p in forward.iter_attachments() if p.get_content_type() == "message/rfc822"
    ]
    original = attached.get_content()
    assert original["Message-ID"] == "<first@mail.example.org>"
    assert [a.get_filename() for a in original.iter_attachments()] == ["sap.log"]
    assert answered.queued_as == ref
    assert ticket["contacts"][-1]["text"].startswith("We pushed a fix")


# ---- the vendor's answer relayed to the requester -------------------------------------------
FIRST = (
    b"From: Alice <alice@example.org>\r\nTo: servicedesk@example.com\r\n"
    b"Subject: SAP is down\r\nMessage-ID: <first@mail.example.org>\r\n\r\n"
    b"Nobody can log in to SAP since 9:00.\r\n"
)


def _vendor_reply(ref: str, forwarded: EmailMessage, *, auto: bool = False) -> bytes:
    """The vendor's helpdesk answering our forward: new text on top, our mail quoted below
    (or, with ``auto``, its out-of-office notice)."""
    quoted = "\r\n".join(
        f"> {line}" for line in forwarded.get_body(("plain",)).get_content().splitlines()
    )
    if auto:
        head = f"Auto-Submitted: auto-replied\r\nSubject: Automatic reply: [{ref}] SAP is down\r\n"
        text = "I am out of the office until Monday.\r\n"
    else:
        head = f"Subject: RE: [{ref}] SAP is down\r\n"
        text = (
            "We pushed a fix for the login service; please try again.\r\n\r\nACME Support\r\n\r\n"
            f"On Mon, 7 Dec 2026 at 10:00, Service Desk <servicedesk@example.com> wrote:\r\n"
            f"{quoted}\r\n"
        )
    return (
        f"From: ACME Support <{VENDOR}>\r\nTo: servicedesk@example.com\r\n{head}"
        f"Message-ID: <v-{ref}-{int(auto)}@acme-vendor.example>\r\n"
        f"In-Reply-To: {forwarded['Message-ID']}\r\n\r\n{text}"
    ).encode()


async def _forward_then_vendor_answers(
    tmp_path: Path, db_url: str, config: str, *, auto: bool = False
) -> tuple[str, list[EmailMessage], dict[str, Any]]:
    """Alice's mail forwarded, the vendor's mail back; what Alice got after the vendor's mail
    (the ack before it left out), and the ticket."""
    async with forwarding_gateway(tmp_path, db_url, config, {}) as gw:
        ref = (await gw.send_mail(FIRST)).queued_as
        await wait_for_state(gw, ref, "vendor-acme", "delivered")
        before = await gw.settle()
        (forwarded,) = [m for m in before if m["To"] == VENDOR]
        answered = await gw.send_mail(_vendor_reply(ref, forwarded, auto=auto), mail_from=VENDOR)
        assert answered.queued_as == ref
        after = (await gw.settle())[len(before) :]
        ticket = await gw.ticket(ref)
    assert not [m for m in after if VENDOR in str(m["To"])]  # nothing goes back to the vendor
    return ref, [m for m in after if m["To"] == "alice@example.org"], ticket


async def test_vendors_answer_reaches_the_requester_threaded_with_only_the_new_text(
    tmp_path: Path, db_url: str
) -> None:
    ref, to_alice, ticket = await _forward_then_vendor_answers(tmp_path, db_url, CONFIG)

    (relayed,) = to_alice
    assert relayed["Subject"] == f"Re: [{ref}] SAP is down"
    assert relayed["In-Reply-To"] == "<first@mail.example.org>"  # her message, not the vendor's
    assert "<first@mail.example.org>" in str(relayed["References"]).split()
    text = relayed.get_body(("plain",)).get_content()
    assert "We pushed a fix for the login service; please try again." in text
    assert "ACME Support" in text
    assert "Nobody can log in" not in text and "wrote:" not in text and ">" not in text
    added = [e for e in ticket["events"] if e["type"] == "contact.added"][-1]
    assert added["detail"]["relay"] == "email"
    assert ticket["contacts"][-1]["direction"] == "out"


async def test_with_relay_off_the_vendors_answer_stays_internal(
    tmp_path: Path, sqlite_url: str
) -> None:
    config = CONFIG.replace(
        'when = { group = "vendor-acme" }',
        "relay_replies = false\n" + 'when = { group = "vendor-acme" }',
    )
    assert "relay_replies = false" in config
    _, to_alice, ticket = await _forward_then_vendor_answers(tmp_path, sqlite_url, config)

    assert to_alice == []
    assert ticket["contacts"][-1]["text"].startswith("We pushed a fix")  # recorded all the same
    added = [e for e in ticket["events"] if e["type"] == "contact.added"][-1]
    assert added["detail"]["relay"] == "off"


async def test_the_vendors_out_of_office_is_not_relayed(tmp_path: Path, sqlite_url: str) -> None:
    _, to_alice, ticket = await _forward_then_vendor_answers(
        tmp_path, sqlite_url, CONFIG, auto=True
    )

    assert to_alice == []
    assert ticket["status"] != "resolved"


async def test_relayed_answers_carry_alices_thread_root_first_and_none_of_the_vendors_ids(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with forwarding_gateway(tmp_path, sqlite_url, CONFIG, {}) as gw:
        ref = (await gw.send_mail(FIRST)).queued_as
        await wait_for_state(gw, ref, "vendor-acme", "delivered")
        before = await gw.settle()
        (ack,) = [m for m in before if m["To"] == "alice@example.org"]
        (forwarded,) = [m for m in before if m["To"] == VENDOR]
        relayed = []
        for n in (1, 2):
            answer = _vendor_reply(ref, forwarded).replace(b"-0@acme", f"-{n}@acme".encode())
            assert (await gw.send_mail(answer, mail_from=VENDOR)).queued_as == ref
            relayed += [m for m in (await gw.settle())[-1:] if m["To"] == "alice@example.org"]

    first, second = relayed
    assert first["In-Reply-To"] == second["In-Reply-To"] == "<first@mail.example.org>"
    assert str(first["References"]).split() == ["<first@mail.example.org>", ack["Message-ID"]]
    assert str(second["References"]).split() == [
        "<first@mail.example.org>",
        ack["Message-ID"],
        first["Message-ID"],
    ]
    assert "acme-vendor" not in str(second["References"])
    assert forwarded["Message-ID"] not in str(second["References"])
