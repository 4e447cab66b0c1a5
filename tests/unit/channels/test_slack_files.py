"""Files shared in Slack: fetched only from Slack's hosts, with the token, bounded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from channels.slack.files import SlackFiles, slack_file_url
from normalizer.chat import FileNotKept, SlackFile
from normalizer.contact import Attachment
from tests.fakes.slack_api import FakeSlackAPI

TOKEN = "xoxb-files"


@pytest.fixture
async def api() -> AsyncIterator[FakeSlackAPI]:
    fake = FakeSlackAPI()
    await fake.start()
    yield fake
    await fake.stop()


def shared(api: FakeSlackAPI, data: bytes = b"hello", mimetype: str = "text/plain") -> SlackFile:
    obj = api.add_file("F1", "note.txt", data, mimetype)
    return SlackFile("F1", "note.txt", mimetype, len(data), obj["url_private_download"])


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://files.slack.com/files-pri/T1-F1/x.png", True),
        ("https://files-edge.slack.com/files-pri/T1-F1/x.png", True),
        ("http://files.slack.com/files-pri/T1-F1/x.png", False),  # never the token in clear
        ("https://files.slack.com.evil.example/x.png", False),
        ("https://evilfiles.slack.com/x.png", False),
        ("https://slack.com.evil.example/x.png", False),
        ("https://10.0.0.1/x.png", False),
        ("http://127.0.0.1:9/api/x", False),  # not the API's port
    ],
)
def test_only_slacks_file_hosts_and_the_api_origin_get_the_token(url: str, allowed: bool) -> None:
    assert slack_file_url(url, "https://slack.com/api/") is allowed


async def test_a_file_is_kept_with_its_bytes_and_hash(api: FakeSlackAPI) -> None:
    kept = await SlackFiles(TOKEN, api.base_url, 5.0).keep(shared(api))
    assert isinstance(kept, Attachment) and kept.data == b"hello" and kept.size == 5
    assert kept.content_type == "text/plain" and kept.filename == "note.txt"
    [call] = api.called("files-pri")
    assert call.token == TOKEN


async def test_a_body_over_the_limit_is_not_kept_even_when_slack_understated_it(
    api: FakeSlackAPI,
) -> None:
    file = shared(api, b"x" * 300_000)
    understated = SlackFile(file.id, file.name, file.mimetype, 10, file.url)
    result = await SlackFiles(TOKEN, api.base_url, 5.0, max_bytes=200_000).keep(understated)
    assert isinstance(result, FileNotKept) and result.reason.startswith("over ")


async def test_slacks_sign_in_page_is_not_kept_as_the_file(api: FakeSlackAPI) -> None:
    result = await SlackFiles("not-a-bot-token", api.base_url, 5.0).keep(shared(api))
    assert isinstance(result, FileNotKept) and "files:read" in result.reason


async def test_a_download_slack_does_not_finish_in_time_is_kept_as_a_link(
    api: FakeSlackAPI,
) -> None:
    api.held["files-pri"] = hang = asyncio.Event()  # Slack's file host does not answer
    file = shared(api)
    result = await SlackFiles(TOKEN, api.base_url, 0.2).keep(file)
    hang.set()
    assert result == FileNotKept("note.txt", file.url, "not downloaded within 0.2 s")


async def test_a_large_file_is_kept_whole_not_just_its_first_chunk(api: FakeSlackAPI) -> None:
    # One read() of the body returns what has arrived so far, not the whole file.
    data = bytes(range(256)) * 6000  # 1.5 MB, many TCP segments
    kept = await SlackFiles(TOKEN, api.base_url, 5.0).keep(shared(api, data, "video/mp4"))
    assert isinstance(kept, Attachment) and kept.data == data
