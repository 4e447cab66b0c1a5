"""The operators' dashboard end to end: a real aiohttp server on 127.0.0.1, the real Store (SQLite,
and PostgreSQL for the read queries), the real Router and TicketService; the HTTP client keeps
cookies like a browser. The real-browser run is tests/integration/test_dashboard_browser.py."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from channels.forms import FORM_COOKIE
from gateway.dashboard import Dashboard, DashboardSettings
from gateway.dashboard.queues import Queues
from gateway.dashboard.session import SESSION_COOKIE, Sessions
from gateway.http import build_app
from gateway.metrics import MeteredIntake, Metrics
from normalizer.contact import Attachment, Channel, Contact, Party, ThreadHints
from normalizer.intake import IntakeResult
from router.outbox_admin import OutboxAdmin
from router.quarantine import QuarantineStore
from router.router import Router
from router.schema import outbox
from router.settings import Group, RouterSettings
from router.stats import Stats
from router.store import Store
from router.tickets import TicketService

TOKEN = "dashboard-test-token-0123456789"
SETTINGS = RouterSettings(
    ticket_prefix="SD",
    desk_address="servicedesk@example.com",
    groups=(Group("service-desk", 1.0), Group("l2-apps", 2.0)),
    outbound_transports=frozenset({"email"}),
)
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
SECRET_SUBJECT = "Salary review for Bob Secretname"


@dataclass
class Site:
    client: TestClient[Any, Any]
    store: Store
    router: Router

    async def mail(self, subject: str, sender: str = "alice@example.org", n: int = 0) -> str:
        return (await self.submit_mail(subject, sender, n)).ticket_ref

    async def submit_mail(
        self,
        subject: str,
        sender: str = "alice@example.org",
        n: int = 0,
        attachments: tuple[Attachment, ...] = (),
    ) -> IntakeResult:
        contact = Contact(
            channel=Channel.EMAIL,
            external_id=f"m{n}-{sender}-{subject}@x",
            sender=Party(email=sender, name="Alice"),
            received_at=datetime.now(UTC),
            subject=subject,
            text="It is really burning.",
            recipients=("servicedesk@example.com",),
            visible_recipients=("servicedesk@example.com",),
            thread=ThreadHints(message_id=f"m{n}-{sender}-{subject}@x"),
            attachments=attachments,
        )
        return await self.router.submit(contact)

    async def login(self, credential: str = TOKEN, next_: str = "/") -> Any:
        page = await (await self.client.get("/dashboard/login")).text()
        token = CSRF.search(page)
        assert token, page
        return await self.client.post(
            "/dashboard/login",
            data={"csrf": token.group(1), "credential": credential, "next": next_},
            allow_redirects=False,
        )

    async def csrf(self, path: str) -> str:
        page = await (await self.client.get(path)).text()
        found = CSRF.search(page)
        assert found, page
        return found.group(1)

    def outbox_kinds(self) -> list[str]:
        return self.store.run_sync(
            lambda c: [r.kind for r in c.execute(sa.select(outbox.c.kind).order_by(outbox.c.id))]
        )


async def start_site(url: str, **settings: Any) -> Site:
    store = Store.from_url(url)
    await store.start()
    metrics = Metrics()
    router = Router(store, SETTINGS)
    tickets = TicketService(store, SETTINGS)
    sessions = Sessions(
        b"s" * 32, tokens=(TOKEN.encode(),), password_hash=None, max_age_seconds=3600
    )
    intake = MeteredIntake(router, metrics)
    queues = Queues(QuarantineStore(store), OutboxAdmin(store), intake, SETTINGS)
    dashboard = Dashboard(
        DashboardSettings(groups=("service-desk", "l2-apps"), **settings),
        sessions,
        tickets,
        Stats(store),
        queues=queues,
    )
    app = build_app(
        store=store,
        tickets=tickets,
        intake=intake,
        metrics=metrics,
        api_tokens=(TOKEN,),
        api_enabled=True,
        dashboard=dashboard,
    )
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    return Site(client, store, router)


@pytest.fixture
async def site(migrated_db_url: str) -> AsyncIterator[Site]:
    s = await start_site(migrated_db_url)
    yield s
    await s.client.close()
    await s.store.close()


@pytest.fixture
async def small_pages(sqlite_url: str) -> AsyncIterator[Site]:
    from gateway.migrate import upgrade

    upgrade(sqlite_url)
    s = await start_site(sqlite_url, page_size=2)
    yield s
    await s.client.close()
    await s.store.close()


# ---- no session: a redirect to the login, never data ------------------------------------------
async def test_without_a_session_every_page_redirects_to_the_login_and_shows_no_data(
    site: Site,
) -> None:
    ref = await site.mail(SECRET_SUBJECT)
    gets = ["/", "/?status=new", f"/dashboard/tickets/{ref}", "/dashboard/tickets/SD-999"]
    posts = [f"/dashboard/tickets/{ref}/{a}" for a in ("reply", "escalate", "status")]
    for method, path in [("GET", p) for p in gets] + [("POST", p) for p in posts]:
        response = await site.client.request(
            method, path, data={"text": "x"}, allow_redirects=False
        )
        body = await response.text()
        assert response.status == 303, (method, path)
        assert response.headers["Location"].startswith("/dashboard/login?next="), path
        assert "Secretname" not in body and ref not in body
    assert site.outbox_kinds() == ["email.ack"]  # the POSTs changed nothing


async def test_a_wrong_token_gets_no_session(site: Site) -> None:
    for wrong in ("", "wrong", TOKEN + " x", TOKEN.upper()):
        response = await site.login(wrong)
        assert response.status == 401, wrong
        assert SESSION_COOKIE not in response.cookies
        assert "not a valid token" in await response.text()


async def test_a_login_post_without_its_form_token_is_refused(site: Site) -> None:
    response = await site.client.post(
        "/dashboard/login", data={"credential": TOKEN}, allow_redirects=False
    )

    assert response.status == 403
    assert SESSION_COOKIE not in response.cookies


async def test_the_login_sends_back_to_the_page_asked_for_but_never_off_site(site: Site) -> None:
    ref = await site.mail("Printer")
    response = await site.login(next_=f"/dashboard/tickets/{ref}")
    assert response.status == 303
    assert response.headers["Location"] == f"/dashboard/tickets/{ref}"
    cookie = response.cookies[SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and not cookie["secure"]
    for evil in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        site.client.session.cookie_jar.clear()
        again = await site.login(next_=evil)
        assert again.headers["Location"] == "/", evil


async def test_the_session_cookie_is_secure_when_the_dashboard_is_served_over_https(
    sqlite_url: str,
) -> None:
    from gateway.migrate import upgrade

    upgrade(sqlite_url)
    s = await start_site(sqlite_url, secure_cookies=True)
    try:
        form = await s.client.get("/dashboard/login")
        assert form.cookies[FORM_COOKIE]["secure"]
        found = CSRF.search(await form.text())
        assert found
        response = await s.client.post(  # a client only sends a Secure cookie over https
            "/dashboard/login",
            data={"csrf": found.group(1), "credential": TOKEN},
            headers={"Cookie": f"{FORM_COOKIE}={form.cookies[FORM_COOKIE].value}"},
            allow_redirects=False,
        )
        assert response.status == 303
        assert response.cookies[SESSION_COOKIE]["secure"]
    finally:
        await s.client.close()
        await s.store.close()


# ---- pages -------------------------------------------------------------------------------------
async def test_the_overview_shows_intake_and_the_queue_with_user_text_escaped(site: Site) -> None:
    ref = await site.mail('<script>alert("x")</script><img src=x onerror=alert(1)>')
    await site.mail("Second", sender="bob@example.org")
    await site.login()

    response = await site.client.get("/")
    page = await response.text()

    assert response.status == 200 and response.content_type == "text/html"
    assert "<script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;" in page
    assert f'href="/dashboard/tickets/{ref}"' in page
    assert '<rect class="ch-email"' in page  # the chart
    assert re.search(r"<td>.*email</td><td>2</td><td>2</td>", page)  # 24 hours, 7 days
    csp = response.headers["Content-Security-Policy"]
    assert "script-src" not in csp and "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


async def test_the_queue_filters_and_pages_through_tickets(small_pages: Site) -> None:
    site = small_pages
    refs = [await site.mail(f"Ticket {i}", n=i) for i in range(5)]
    await site.login()

    first = await (await site.client.get("/")).text()
    assert refs[4] in first and refs[3] in first and refs[2] not in first
    older = re.search(r'href="(/\?cursor=[^"]+)" rel="next"', first)
    assert older
    second = await (await site.client.get(older.group(1).replace("&amp;", "&"))).text()
    assert refs[2] in second and refs[1] in second and refs[4] not in second

    filtered = await (await site.client.get("/", params={"q": "ticket 1"})).text()
    assert f">{refs[1]}<" in filtered and f">{refs[0]}<" not in filtered
    none = await (await site.client.get("/", params={"channel": "sms"})).text()
    assert "No tickets match." in none


async def test_a_bad_page_link_or_unknown_ticket_gets_a_clear_page_not_a_500(site: Site) -> None:
    await site.login()

    bad = await site.client.get("/", params={"cursor": "not-a-cursor"})
    assert bad.status == 400 and "not valid" in await bad.text()
    missing = await site.client.get("/dashboard/tickets/SD-999")
    assert missing.status == 404 and "no ticket SD-999" in await missing.text()
    odd = await site.client.get("/dashboard/tickets/%3Cscript%3E")
    assert odd.status == 404 and "<script>" not in await odd.text()


async def test_a_ticket_page_shows_its_timeline_with_why_each_contact_is_here(site: Site) -> None:
    ref = await site.mail("Printer on fire")
    await site.login()

    page = await (await site.client.get(f"/dashboard/tickets/{ref}")).text()

    assert "Why here: opened this ticket" in page
    assert "acknowledgement by email" in page and "pending" in page


# ---- actions -----------------------------------------------------------------------------------
async def test_an_action_without_the_sessions_csrf_token_changes_nothing(site: Site) -> None:
    ref = await site.mail("Printer")
    await site.login()
    for token in (None, "", "forged"):
        data = {"text": "hello"} | ({"csrf": token} if token is not None else {})
        response = await site.client.post(f"/dashboard/tickets/{ref}/reply", data=data)
        assert response.status == 403
    assert site.outbox_kinds() == ["email.ack"]


async def test_reply_escalate_and_status_change_the_ticket_like_the_api(site: Site) -> None:
    ref = await site.mail("Printer")
    await site.login()
    path = f"/dashboard/tickets/{ref}"
    csrf = await site.csrf(path)

    reply = await site.client.post(f"{path}/reply", data={"csrf": csrf, "text": "On our way."})
    assert reply.status == 200 and "Reply queued" in await reply.text()  # after the 303
    escalate = await site.client.post(
        f"{path}/escalate", data={"csrf": csrf, "reason": "needs apps", "group": ""}
    )
    assert escalate.status == 200
    status = await site.client.post(
        f"{path}/status", data={"csrf": csrf, "status": "resolved", "note": "fixed"}
    )
    assert status.status == 200

    assert site.outbox_kinds() == ["email.ack", "email.reply"]
    ticket = await TicketService(site.store, SETTINGS).get(ref)
    assert ticket["group"] == "l2-apps" and ticket["status"] == "resolved"
    types = [e["type"] for e in ticket["events"]]
    assert types[-3:] == ["replied", "escalated", "status.changed"]


@pytest.mark.parametrize(
    ("action", "data", "says"),
    [
        ("reply", {"text": "   "}, "the text is empty"),
        ("escalate", {"reason": ""}, "Say why"),
        ("escalate", {"reason": "x", "group": "nobody"}, "unknown group"),
        ("status", {"status": "new"}, "status must be one of"),
    ],
)
async def test_a_bad_action_is_refused_with_a_clear_error(
    site: Site, action: str, data: dict[str, str], says: str
) -> None:
    ref = await site.mail("Printer")
    await site.login()
    csrf = await site.csrf(f"/dashboard/tickets/{ref}")

    response = await site.client.post(
        f"/dashboard/tickets/{ref}/{action}", data={"csrf": csrf, **data}
    )

    assert response.status == 400
    assert says in await response.text()


async def test_logging_out_ends_the_session_for_good(site: Site) -> None:
    await site.login()
    old = site.client.session.cookie_jar.filter_cookies(site.client.make_url("/"))
    cookie = old[SESSION_COOKIE].value
    csrf = await site.csrf("/")

    out = await site.client.post("/dashboard/logout", data={"csrf": csrf}, allow_redirects=False)

    assert out.status == 303 and out.headers["Location"] == "/dashboard/login"
    again = await site.client.get(
        "/", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}, allow_redirects=False
    )
    assert again.status == 303  # the old cookie, replayed, is no session


async def test_a_web_ticket_shows_in_the_web_channel(site: Site) -> None:
    contact = Contact(
        channel=Channel.WEB,
        external_id="web-n1",
        sender=Party(email="carol@example.org"),
        received_at=datetime.now(UTC),
        subject="Form",
        text="From the form",
        visible_recipients=("servicedesk@example.com",),
    )
    ref = (await site.router.submit(replace(contact))).ticket_ref
    await site.login()

    page = await (await site.client.get("/", params={"channel": "web"})).text()

    assert f">{ref}<" in page


async def test_while_the_store_is_down_pages_say_so_and_actions_change_nothing(
    sqlite_url: str,
) -> None:
    from gateway.migrate import upgrade

    upgrade(sqlite_url)
    s = await start_site(sqlite_url)
    try:
        ref = await s.mail("Printer")
        await s.login()
        csrf = await s.csrf(f"/dashboard/tickets/{ref}")
        await s.store.close()  # every read and write now fails as a database outage does

        overview = await s.client.get("/")
        ticket = await s.client.get(f"/dashboard/tickets/{ref}")
        reply = await s.client.post(
            f"/dashboard/tickets/{ref}/reply", data={"csrf": csrf, "text": "hello"}
        )
        quarantine = await s.client.get("/dashboard/quarantine")
        dead_letters = await s.client.get("/dashboard/dead-letters")
        replay = await s.client.post("/dashboard/quarantine/1/replay", data={"csrf": csrf})
        retry = await s.client.post("/dashboard/dead-letters/1/retry", data={"csrf": csrf})

        assert overview.status == ticket.status == reply.status == 503
        assert quarantine.status == dead_letters.status == replay.status == retry.status == 503
        assert "not answering" in await overview.text()
        for action in (reply, replay, retry):
            assert "nothing was changed" in await action.text()
    finally:
        await s.client.close()


async def test_an_attachment_downloads_behind_the_login_and_never_renders_inline(
    site: Site,
) -> None:
    data = b"<html><script>alert(1)</script></html>"
    sha = hashlib.sha256(data).hexdigest()
    attached = (Attachment("page.html", "text/html", sha, data),)
    result = await site.submit_mail("see attached", attachments=attached)
    path = f"/dashboard/contacts/{result.contact_id}/files/{sha}"
    anonymous = await site.client.get(path, allow_redirects=False)
    assert anonymous.status == 303
    await site.login()

    page = await (await site.client.get(f"/dashboard/tickets/{result.ticket_ref}")).text()
    response = await site.client.get(path)

    assert f'href="{path}"' in page
    assert response.status == 200 and await response.read() == data
    assert response.content_type == "application/octet-stream"
    assert response.headers["Content-Disposition"] == "attachment; filename*=UTF-8''page.html"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    other = await site.client.get(f"/dashboard/contacts/{result.contact_id + 1}/files/{sha}")
    assert other.status == 404
    unknown = hashlib.sha256(b"another file").hexdigest()
    assert (await site.client.get(path.replace(sha, unknown))).status == 404
