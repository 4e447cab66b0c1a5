"""kill -9 after Jira, Zendesk and ServiceNow created the record but before spoc stored its key:
after a restart each tool still holds exactly one record for the ticket, and later events go
to it.

``spoc serve`` runs as a child process with one target of each tool. Each fake stores the
record the child asks for and then does not answer, so the child never learns the key; it is
SIGKILLed while it waits. A second child on the same database takes the creating rows again
once their lease (10 s) runs out: it must look the record up by our ref and keep it. A reply
from the requester then becomes a comment on that one record in each tool.
"""

from __future__ import annotations

import asyncio
import smtplib
from pathlib import Path

import pytest

from tests.fakes.jira_api import FakeJira
from tests.fakes.saas_base import FakeSaaS
from tests.fakes.servicenow_api import FakeServiceNow
from tests.fakes.zendesk_api import FakeZendesk
from tests.integration.test_forward_crash import _forwards_pending
from tests.integration.test_serve_process import (
    HOST,
    SOCKET_SECONDS,
    ServeProcess,
    _replace_once,
    free_port,
    ref_from_reply,
    send_mail,
    write_config,
)
from tests.integration.tools import JIRA, SERVICENOW, ZENDESK, Tool

FIRST = (
    b"From: Alice <alice@example.org>\r\nTo: servicedesk@example.com\r\n"
    b"Subject: SAP is down\r\nMessage-ID: <crash-tools-1@mail.example.org>\r\n\r\n"
    b"Nobody can log in to SAP since 9:00.\r\n"
)


def _follow_up(ref: str) -> bytes:
    return (
        f"From: Alice <alice@example.org>\r\nTo: servicedesk@example.com\r\n"
        f"Subject: Re: [{ref}] SAP is down\r\nMessage-ID: <crash-tools-2@mail.example.org>\r\n"
        f"In-Reply-To: <crash-tools-1@mail.example.org>\r\n\r\nStill down at 11:00.\r\n"
    ).encode()


def _config(directory: Path, db_url: str, fakes: list[tuple[Tool, FakeSaaS]]) -> Path:
    path = write_config(directory, db_url, free_port(), free_port())
    text = _replace_once(
        path.read_text(encoding="utf-8"),
        r"^poll_interval_seconds = 1.0",
        "poll_interval_seconds = 0.2\nlease_seconds = 10.0",
    )
    text += '\n[[routing]]\nwhen = { subject_matches = "SAP" }\ngroup = "l2-apps"\n'
    for tool, fake in fakes:
        text += (
            f'\n[[forward]]\nname = "{tool.name}"\nkind = "{tool.kind}"\nurl = "{fake.base_url}"\n'
            f'{tool.keys}\nwhen = {{ group = "l2-apps" }}\nallow_private_network = true\n'
        )
    path.write_text(text, encoding="utf-8")
    return path


async def _serve(
    directory: Path, config: Path, env: dict[str, str], n: int
) -> tuple[ServeProcess, int]:
    process = ServeProcess(directory, config, directory / f"serve-{n}.log", env)
    ready = await asyncio.to_thread(process.wait_ready)
    assert ready is not None, process.log_tail()
    return process, ready.smtp_port


def _mail(port: int, raw: bytes) -> str:
    with smtplib.SMTP(HOST, port, timeout=SOCKET_SECONDS) as smtp:
        code, reply = send_mail(smtp, "alice@example.org", raw)
    assert code == 250, reply
    return ref_from_reply(reply)


async def _until_forwards_done(db_url: str, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while await asyncio.to_thread(_forwards_pending, db_url):  # noqa: ASYNC110 (another process)
            await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_kill_after_each_tool_created_its_record_leaves_one_record_that_gets_the_reply(
    tmp_path: Path, db_url: str
) -> None:
    if not db_url.startswith("sqlite"):
        from gateway.migrate import upgrade

        upgrade(db_url)
    jira = FakeJira(hang_after_create=True)
    zendesk = FakeZendesk(hang_after_create=True)
    servicenow = FakeServiceNow(
        users={"alice@example.org": "62826bf03710200044e0bfc8bcbe5df1"}, hang_after_create=True
    )
    tools: list[tuple[Tool, FakeSaaS]] = [
        (JIRA, jira),
        (ZENDESK, zendesk),
        (SERVICENOW, servicenow),
    ]
    fakes = [fake for _, fake in tools]
    for fake in fakes:
        await fake.start()
    env = {k: v for tool, _ in tools for k, v in tool.env.items()}
    config = _config(tmp_path, db_url, tools)
    try:
        first, port = await _serve(tmp_path, config, env, 1)
        try:
            ref = await asyncio.to_thread(_mail, port, FIRST)
            async with asyncio.timeout(20):
                for fake in fakes:
                    await fake.created.wait()  # stored there; the child waits for the answer
        finally:
            await asyncio.to_thread(first.kill)  # SIGKILL: no key was stored
        assert (len(jira.requests), len(zendesk.tickets), len(servicenow.incidents)) == (1, 1, 1)
        for fake in fakes:
            fake.release()

        second, port = await _serve(tmp_path, config, env, 2)
        try:
            await _until_forwards_done(db_url, 40)  # the lease (10 s) ran out first
            assert await asyncio.to_thread(_mail, port, _follow_up(ref)) == ref
            await _until_forwards_done(db_url, 20)
        finally:
            await asyncio.to_thread(second.stop)
    finally:
        for fake in fakes:
            await fake.stop()

    assert (len(jira.requests), len(zendesk.tickets), len(servicenow.incidents)) == (1, 1, 1)
    [key] = jira.requests
    assert [c["body"] for c in jira.comments[key]] == ["Still down at 11:00."]
    [ticket_id] = zendesk.tickets
    assert zendesk.tickets[ticket_id]["external_id"] == ref
    assert [c["body"] for c in zendesk.comments[ticket_id]][1:] == ["Still down at 11:00."]
    [sys_id] = servicenow.incidents
    assert servicenow.journal[sys_id] == [("comments", "Still down at 11:00.")]
