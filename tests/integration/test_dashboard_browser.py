"""The dashboard and the web form in a real browser: Debian's chromium driven by Playwright
(``executable_path=/usr/bin/chromium``; never ``playwright install``), against a whole gateway
on 127.0.0.1.

An operator logs in, filters the queue, opens a ticket and replies, replays a quarantined mail
and retries a dead letter; an end user sends the web form. Contacts on every channel carry XSS
vectors in subjects, names, file names, Slack text, SMS and transcripts: no dialog may open and
no console error may appear (a blocked inline script would log one: the Content-Security-Policy
is the second line, escaping the first).

Screenshots go to the test's tmp dir, and also to ``$SPOC_SCREENSHOT_DIR`` when it is set
(``SPOC_SCREENSHOT_DIR=docs`` refreshes the README's pictures). Without chromium the tests skip,
or fail under ``SPOC_REQUIRE_SERVICES=1`` (CI installs it in ``.ci/run``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from normalizer.contact import Attachment, Channel, Contact, Party, ThreadHints
from router.quarantine import QuarantineStore
from router.schema import outbox
from tests.integration.gateway_harness import API_TOKEN, GatewayHarness, running_gateway
from tests.support.services import require_service

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # the CI machine runs as root
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VECTORS = (
    '<script>alert("xss-script")</script>',
    '<img src=x onerror=alert("xss-img")>',
    '"><svg onload=alert("xss-svg")>',
    "</textarea><script>alert('xss-textarea')</script>",
    '<a href="javascript:alert(1)">click</a> javascript:alert("xss-link")',
    "<iframe src=\"javascript:alert('xss-frame')\"></iframe>",
)
WEBFORM = """
[webform]
enabled = true
[[webform.categories]]
name = "broken_device"
label = "Something is broken"
"""

# Chromium logs a page answered with 4xx as a console error; that is no script running.
HTTP_STATUS_MESSAGE = "Failed to load resource: the server responded with a status of"

pytestmark = pytest.mark.slow


@dataclass
class Watch:
    """Everything a page did that it must not: dialogs, console errors, uncaught errors."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)  # 4xx answers the test asked for

    def attach(self, page: Any) -> None:
        async def on_dialog(dialog: Any) -> None:
            self.dialogs.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", on_dialog)

        def on_console(message: Any) -> None:
            if message.type != "error":
                return
            if message.text.startswith(HTTP_STATUS_MESSAGE):
                self.statuses.append(message.text)
            else:
                self.errors.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.set_default_timeout(10_000)


def chromium_installed() -> bool:
    return CHROMIUM.exists()


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    if not chromium_installed():
        require_service(f"Debian's chromium is not installed ({CHROMIUM})")
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:
        require_service(f"the playwright package is missing: {exc}")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def desk(tmp_path: Path, sqlite_url: str) -> AsyncIterator[GatewayHarness]:
    async with running_gateway(tmp_path, sqlite_url, extra_config=WEBFORM) as harness:
        yield harness


def screenshot_paths(tmp_path: Path, name: str) -> list[Path]:
    paths = [tmp_path / name]
    if target := os.environ.get("SPOC_SCREENSHOT_DIR"):
        paths.append(Path(target) / name)
    return paths


async def screenshot(page: Any, tmp_path: Path, name: str) -> None:
    first, *copies = screenshot_paths(tmp_path, name)
    await page.screenshot(path=str(first), full_page=True)
    assert first.stat().st_size > 1000
    for copy in copies:
        shutil.copyfile(first, copy)


async def seed_every_channel(desk: GatewayHarness, vector: str, n: int) -> None:
    """One contact per channel with ``vector`` wherever a person's words are shown (file
    name, sender name, subject, text, Slack message, SMS, call transcript)."""
    router = desk.gw.router
    assert router is not None
    now = datetime.now(UTC)
    data = b"file"
    sha = hashlib.sha256(data).hexdigest()
    contacts = [
        Contact(
            channel=Channel.EMAIL,
            external_id=f"mail-{n}@x",
            sender=Party(email=f"mallory{n}@example.org", name=vector),
            received_at=now,
            subject=vector,
            text=vector,
            recipients=("servicedesk@example.com",),
            visible_recipients=("servicedesk@example.com",),
            attachments=(Attachment(vector[:200], "text/html", sha, data),),
            thread=ThreadHints(message_id=f"mail-{n}@x"),
            raw=html_mail(f"<p>{vector}</p><p>Regards, <b>Mallory</b></p>"),
            raw_type="message/rfc822",
        ),
        Contact(
            channel=Channel.SLACK,
            external_id=f"Ev{n}",
            sender=Party(slack_user_id=f"U{n:04d}", name=vector),
            received_at=now,
            subject=vector,
            text=f"{vector}\n\nSlack: https://acme.slack.com/archives/C1/p{n}",
            thread=ThreadHints(chat_thread=f"D1:17000000{n:02d}.000100"),
        ),
        Contact(
            channel=Channel.SMS,
            external_id=f"SM{n}",
            sender=Party(phone=f"+1415555{n:04d}"),
            received_at=now,
            text=vector,
        ),
        Contact(
            channel=Channel.PHONE,
            external_id=f"CA{n}:transcription:TR{n}",
            sender=Party(phone=f"+1415666{n:04d}"),
            received_at=now,
            subject="Voicemail: a broken device",
            text=f"Menu choice: 1\nRecording: https://api.twilio.com/RE{n}\nTranscript: {vector}",
            thread=ThreadHints(call_id=f"CA{n}"),
        ),
    ]
    for contact in contacts:
        await router.submit(contact)


def html_mail(html: str) -> bytes:
    message = EmailMessage()
    message["From"] = "mallory@example.org"
    message["Subject"] = "html"
    message.set_content("the text part")
    message.add_alternative(html, subtype="html")
    return message.as_bytes()


async def log_in(page: Any, desk: GatewayHarness) -> None:
    await page.goto(desk.base_url + "/")
    assert "/dashboard/login" in page.url  # no session: the login, never data
    await page.fill("#credential", API_TOKEN)
    await page.click("button[type=submit]")
    await page.wait_for_url(desk.base_url + "/")


async def test_an_operator_logs_in_filters_opens_a_ticket_and_replies(
    chromium: Any, desk: GatewayHarness, tmp_path: Path
) -> None:
    for n, words in enumerate(("The laptop will not turn on", "VPN drops every ten minutes")):
        await seed_every_channel(desk, words, n)
    context = await chromium.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    watch = Watch()
    watch.attach(page)

    await log_in(page, desk)
    assert await page.locator("#tickets tbody tr").count() == 8
    await screenshot(page, tmp_path, "dashboard.png")

    await page.select_option("select[name=channel]", "email")
    await page.click(".filters button[type=submit]")
    await page.wait_for_url("**/?*channel=email*")
    rows = page.locator("#tickets tbody tr")
    assert await rows.count() == 2
    assert set(await page.locator("#tickets tbody td:nth-child(4)").all_inner_texts()) == {"email"}

    await rows.first.locator("a").click()
    await page.wait_for_url("**/dashboard/tickets/SD-*")
    ref = await page.inner_text("#ref")
    await page.fill("#reply-text", "We are on it: a technician comes at 3 pm.")
    await page.click("button:has-text('Send reply')")
    await page.wait_for_selector("#done")
    assert "Reply queued" in await page.inner_text("#done")

    await page.goto(f"{desk.base_url}/dashboard/tickets/SD-3")  # an SMS: Twilio is off here
    await page.fill("#reply-text", "Hello")
    await page.click("button:has-text('Send reply')")
    await page.wait_for_selector("#error")
    assert "replies by sms are not enabled" in await page.inner_text("#error")
    await page.select_option("select[name=group]", "l2-apps")
    await page.fill("input[name=reason]", "needs the apps team")
    await page.click("button:has-text('Escalate')")
    await page.wait_for_selector("#done")
    assert "l2-apps" in await page.inner_text("#group")
    await page.goto(f"{desk.base_url}/dashboard/tickets/{ref}")
    await screenshot(page, tmp_path, "dashboard-ticket.png")

    ticket = await desk.ticket(ref)
    assert [e["type"] for e in ticket["events"]][-1] == "replied"
    assert watch.dialogs == [] and watch.errors == []
    await context.close()


async def test_xss_vectors_on_every_channel_run_no_script_anywhere(
    chromium: Any, desk: GatewayHarness, tmp_path: Path
) -> None:
    for n, vector in enumerate(VECTORS):
        await seed_every_channel(desk, vector, n)
    context = await chromium.new_context()
    page = await context.new_page()
    watch = Watch()
    watch.attach(page)

    # The detector itself works: an unescaped script on a blank page opens a dialog.
    await page.set_content("<script>alert('control')</script>")
    assert watch.dialogs == ["control"]
    watch.dialogs.clear()

    await log_in(page, desk)
    assert '<script>alert("xss-script")</script>' in await page.inner_text("#tickets")
    for ticket_id in range(1, 4 * len(VECTORS) + 1):
        await page.goto(f"{desk.base_url}/dashboard/tickets/SD-{ticket_id}")
        assert await page.locator(".timeline .entry").count() >= 2
    await page.goto(f"{desk.base_url}/dashboard/tickets/SD-1")
    await page.click("details.html summary")  # the mail as sent, sanitised
    assert "Regards, Mallory" in await page.inner_text(".mail-html")
    text = await page.inner_text(".timeline")
    assert VECTORS[0] in text  # shown as text
    assert await page.locator(".timeline script, .timeline img, .timeline iframe").count() == 0
    links = await page.locator(".timeline a").evaluate_all("els => els.map(e => e.href)")
    files = desk.base_url + "/dashboard/contacts/"
    assert links and all(link.startswith(("https://", files)) for link in links), links

    # The web form, filled with every vector by hand, shown again on an error, and sent.
    await page.goto(desk.base_url + "/report")
    await page.fill("#name", VECTORS[2])
    await page.fill("#email", "not-an-address")
    await page.fill("#description", VECTORS[3])
    await page.evaluate("document.querySelector('#email').type = 'text'")  # past the browser
    await page.click("button[type=submit]")
    await page.wait_for_selector("#error")
    assert await page.input_value("#description") == VECTORS[3]
    await page.fill("#email", "eve@example.org")
    await page.click("button[type=submit]")
    await page.wait_for_selector("#ref")

    assert watch.dialogs == [], watch.dialogs
    assert watch.errors == [], watch.errors
    await context.close()


async def test_an_end_user_sends_the_web_form_and_gets_the_ref_and_an_email(
    chromium: Any, desk: GatewayHarness, tmp_path: Path
) -> None:
    context = await chromium.new_context(viewport={"width": 900, "height": 900})
    page = await context.new_page()
    watch = Watch()
    watch.attach(page)
    attachment = tmp_path / "screen.png"
    attachment.write_bytes(b"\x89PNG\r\n\x1a\n not really a picture")

    await page.goto(desk.base_url + "/report")
    await page.fill("#name", "Bob Example")
    await page.fill("#email", "bob@example.org")
    await page.select_option("#category", "broken_device")
    await page.fill("#description", "My laptop does not start.\nThe power light blinks orange.")
    await page.set_input_files("#attachments", str(attachment))
    await screenshot(page, tmp_path, "webform.png")
    await page.click("button[type=submit]")
    await page.wait_for_selector("#ref")
    ref = await page.inner_text("#ref")

    [ack] = await desk.sink.wait_for(1)
    assert ack["To"] == "bob@example.org" and f"[{ref}]" in ack["Subject"]
    ticket = await desk.ticket(ref)
    assert ticket["channel"] == "web" and ticket["category"] == "broken_device"
    assert ticket["contacts"][0]["attachments"][0]["filename"] == "screen.png"
    assert watch.dialogs == [] and watch.errors == []
    await context.close()


async def test_an_operator_replays_a_quarantined_mail_and_retries_a_dead_letter(
    chromium: Any, desk: GatewayHarness, tmp_path: Path
) -> None:
    store = desk.gw.store
    assert store is not None
    kept = html_mail(f"<p>{VECTORS[1]}</p>").replace(b"Subject: html", b"Subject: VPN is down")
    kept = b"Message-ID: <kept-1@example.org>\r\nTo: servicedesk@example.com\r\n" + kept
    await QuarantineStore(store).keep(kept, source="smtp", reason=f"routing failed {VECTORS[0]}")
    await desk.send_mail(plain_mail("Printer jam"))
    [ack] = await desk.settle()
    store.run_sync(  # the relay refused it for good: a dead letter, as the dispatcher leaves one
        lambda c: c.execute(
            sa.update(outbox).values(status="dead", last_error=f"550 refused {VECTORS[2]}")
        )
    )
    context = await chromium.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    watch = Watch()
    watch.attach(page)
    await log_in(page, desk)

    await page.click("a:has-text('look and replay')")
    await page.wait_for_url("**/dashboard/quarantine")
    assert await page.locator("#quarantine tbody tr").count() == 1
    await page.click("#quarantine tbody a")
    assert VECTORS[0] in await page.inner_text("#reason")  # as text
    assert "<kept-1@example.org>" in await page.inner_text("#headers")
    await screenshot(page, tmp_path, "dashboard-quarantine.png")
    await page.click("button:has-text('Replay')")
    await page.wait_for_selector("#done")
    assert "on a ticket now" in await page.inner_text("#done")
    await page.click("#replayed-as a")
    await page.wait_for_url("**/dashboard/tickets/SD-*")
    assert "VPN is down" in await page.inner_text("h1")

    await page.goto(desk.base_url + "/")
    await page.click("a:has-text('All dead letters')")
    assert VECTORS[2] in await page.inner_text("#dead-letters")
    await page.click("#dead-letters tbody td:first-child a")
    await page.click("button:has-text('Retry')")
    await page.wait_for_selector("#done")
    assert "Queued again" in await page.inner_text("#done")
    sent = await desk.sink.wait_for(3)  # the replayed mail's ack, and the dead one once more
    assert [m["Subject"] for m in sent].count(ack["Subject"]) == 2

    assert watch.dialogs == [], watch.dialogs
    assert watch.errors == [], watch.errors
    await context.close()


def plain_mail(subject: str) -> bytes:
    message = EmailMessage()
    message["From"] = "alice@example.org"
    message["To"] = "servicedesk@example.com"
    message["Subject"] = subject
    message["Message-ID"] = "<plain-1@example.org>"
    message.set_content("It is stuck.")
    return message.as_bytes()
