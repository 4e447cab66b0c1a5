"""The dashboard's quarantine and dead-letter pages end to end: a real aiohttp server, the real
Store (SQLite and PostgreSQL), the real Router; replay and retry go through the same
``QuarantineStore.replay`` and ``OutboxAdmin.retry`` as the API."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.message import EmailMessage

from router.outbox import Outbox
from router.outbox_admin import OutboxAdmin
from router.quarantine import QuarantineStore, keep_in
from tests.integration.test_dashboard import TOKEN, Site, start_site
from tests.integration.test_dashboard import site as site  # the same fixture

XSS = '<script>alert("q")</script>'


def mail(subject: str, sender: str = "carol@example.org", n: int = 1) -> bytes:
    message = EmailMessage()
    message["From"] = f"Carol <{sender}>"
    message["To"] = "servicedesk@example.com"
    message["Subject"] = subject
    message["Message-ID"] = f"<kept-{n}@mail.example.org>"
    message["Date"] = "Tue, 01 Dec 2026 10:00:00 +0000"
    message.set_content("The VPN drops every ten minutes.")
    message.add_alternative('<p onmouseover="alert(1)">The <b>VPN</b> drops.</p>', subtype="html")
    return message.as_bytes()


async def keep(site: Site, raw: bytes, *, kind: str = "error", source: str = "smtp") -> int:
    now = datetime.now(UTC)
    receipt = await site.store.write(
        lambda c: keep_in(c, raw, kind=kind, source=source, reason=f"{kind}: {XSS}", now=now)
    )
    return receipt.id


async def dead_letter(site: Site) -> int:
    await site.mail("Printer")  # queues its acknowledgement
    outbox = Outbox(site.store)
    [item] = await outbox.claim(limit=1, lease_seconds=60)
    assert await outbox.failed(item, f"relay answered 550 {XSS}", None)  # None: dead
    return int(item.id)


async def test_without_a_session_the_pages_and_buttons_redirect_to_the_login(site: Site) -> None:
    item = await keep(site, mail("Kept"))
    dead = await dead_letter(site)
    for method, path in (
        ("GET", "/dashboard/quarantine"),
        ("GET", f"/dashboard/quarantine/{item}"),
        ("POST", f"/dashboard/quarantine/{item}/replay"),
        ("GET", "/dashboard/dead-letters"),
        ("GET", f"/dashboard/dead-letters/{dead}"),
        ("POST", f"/dashboard/dead-letters/{dead}/retry"),
    ):
        response = await site.client.request(method, path, allow_redirects=False)
        assert response.status == 303, (method, path)
        assert response.headers["Location"].startswith("/dashboard/login")
    assert (await QuarantineStore(site.store).get(item))["replayed_at"] is None
    assert (await OutboxAdmin(site.store).get(dead))["status"] == "dead"


async def test_the_quarantine_lists_by_kind_and_shows_headers_as_text_never_the_mail_as_html(
    site: Site,
) -> None:
    error = await keep(site, mail(f"Broken {XSS}", n=1))
    system = await keep(site, mail("Undeliverable", n=2), kind="system", source="email")
    await site.login()

    listing = await (await site.client.get("/dashboard/quarantine")).text()
    systems = await (await site.client.get("/dashboard/quarantine?kind=system")).text()
    bad = await site.client.get("/dashboard/quarantine?kind=nonsense")
    detail = await site.client.get(f"/dashboard/quarantine/{error}")
    page = await detail.text()

    assert f'href="/dashboard/quarantine/{error}"' in listing
    assert f'href="/dashboard/quarantine/{system}"' in listing
    assert f'href="/dashboard/quarantine/{system}"' in systems
    assert f'href="/dashboard/quarantine/{error}"' not in systems
    assert bad.status == 400 and "kind must be one of: system, error" in await bad.text()
    assert detail.status == 200
    assert "<script>" not in listing + page and "&lt;script&gt;" in page
    assert "<dt>Message-ID</dt><dd>&lt;kept-1@mail.example.org&gt;</dd>" in page
    assert "onmouseover" not in page and "<b>VPN</b>" not in page  # the body is never rendered
    assert "error: &lt;script&gt;" in page  # the reason
    missing = await site.client.get("/dashboard/quarantine/999999")
    assert missing.status == 404 and "There is no quarantine item 999999" in await missing.text()


async def test_the_quarantine_pages_newest_first(migrated_db_url: str) -> None:
    site = await start_site(migrated_db_url, page_size=2)
    try:
        ids = [await keep(site, mail(f"Kept {n}", n=n)) for n in range(3)]
        await site.login()
        first = await (await site.client.get("/dashboard/quarantine")).text()
        older = re.search(r'href="(/dashboard/quarantine\?before=\d+)" rel="next"', first)
        assert older, first
        second = await (await site.client.get(older.group(1).replace("&amp;", "&"))).text()
        shown = [f'href="/dashboard/quarantine/{i}"' in first for i in ids]
        assert shown == [False, True, True]
        assert f'href="/dashboard/quarantine/{ids[0]}"' in second
        for before in ("x1", "9" * 25):  # not a number; past any id column (no 500)
            bad = await site.client.get(f"/dashboard/quarantine?before={before}")
            assert bad.status == 400 and "not valid" in await bad.text()
    finally:
        await site.client.close()
        await site.store.close()


async def test_replay_stores_the_kept_mail_on_a_ticket_once_and_only_with_the_csrf_token(
    site: Site,
) -> None:
    item = await keep(site, mail("VPN drops"))
    await site.login()
    path = f"/dashboard/quarantine/{item}"
    csrf = await site.csrf(path)

    forged = await site.client.post(f"{path}/replay", data={"csrf": "forged"})
    assert forged.status == 403
    assert (await QuarantineStore(site.store).get(item))["replayed_at"] is None

    replayed = await site.client.post(f"{path}/replay", data={"csrf": csrf})
    page = await replayed.text()
    assert replayed.status == 200 and "the mail is on a ticket now" in page  # after the 303
    ref = re.search(r'href="/dashboard/tickets/(SD-\d+)"', page)
    assert ref, page
    ticket = await site.client.get(f"/dashboard/tickets/{ref.group(1)}")
    assert "VPN drops" in await ticket.text()

    again = await site.client.post(f"{path}/replay", data={"csrf": csrf})
    assert "was on a ticket already" in await again.text()
    tickets = await site.client.get("/api/tickets", headers={"Authorization": "Bearer " + TOKEN})
    assert [t["subject"] for t in (await tickets.json())["tickets"]] == ["VPN drops"]


async def test_a_dead_letter_retried_from_the_dashboard_is_pending_again_like_the_api(
    site: Site,
) -> None:
    dead = await dead_letter(site)
    await site.login()
    listing = await (await site.client.get("/dashboard/dead-letters")).text()
    assert f'href="/dashboard/dead-letters/{dead}"' in listing
    assert "relay answered 550 &lt;script&gt;" in listing and "<script>" not in listing
    overview = await (await site.client.get("/")).text()
    assert f'href="/dashboard/dead-letters/{dead}"' in overview
    path = f"/dashboard/dead-letters/{dead}"
    csrf = await site.csrf(path)

    forged = await site.client.post(f"{path}/retry", data={})
    assert forged.status == 403
    assert '<dd id="status">dead</dd>' in await (await site.client.get(path)).text()

    retried = await site.client.post(f"{path}/retry", data={"csrf": csrf})
    page = await retried.text()
    assert retried.status == 200 and "Queued again" in page
    assert '<dd id="status">pending</dd>' in page and "<dd>0</dd>" in page  # attempts anew

    await Outbox(site.store).claim(limit=1, lease_seconds=60)  # a dispatcher is sending it now
    busy = await site.client.post(f"{path}/retry", data={"csrf": csrf})
    assert busy.status == 409 and "being delivered right now" in await busy.text()
    missing = await site.client.post("/dashboard/dead-letters/999999/retry", data={"csrf": csrf})
    assert missing.status == 404


async def test_the_overview_shows_the_share_quarantined_per_channel(site: Site) -> None:
    await site.mail("Printer")
    await keep(site, mail("Unreadable"))
    await keep(site, mail("Fax bounce", n=2), kind="system", source="fax")
    await site.login()
    page = await (await site.client.get("/")).text()
    email_row = re.search(r"email</td>.*?</tr>", page, re.S)
    fax_row = re.search(r"fax</td>.*?</tr>", page, re.S)
    assert email_row and fax_row, page
    assert ">50%</td>" in email_row.group(0)  # one ticket, one kept
    assert ">100%</td>" in fax_row.group(0)
    assert 'href="/dashboard/quarantine"' in page
    assert "not part of this version" not in page
