"""Files shared with a Slack message, kept as the contact's attachments.

A message's ``files`` (a DM, a mention, a thread reply, a message made a ticket) are
downloaded from ``url_private_download`` with the bot token (scope ``files:read``), only from
Slack's file hosts -- ``files.slack.com`` and its ``files-…`` siblings -- or the configured
``api_base_url``'s own origin (tests), following one redirect without the token, at most
:data:`MAX_FILE_BYTES` each and within the time the look-ups before Slack's ack have
(``lookup_timeout_seconds``). Whatever is not downloaded -- too big, too slow, a Google Drive
link, refused -- stays on the ticket as its name, its link and the reason
(:class:`normalizer.chat.FileNotKept`); the contact is submitted either way.
"""

from __future__ import annotations

import hashlib
import logging
import re

from channels.download import DownloadRefused, fetch, megabytes, url_allowed
from normalizer.chat import FileNotKept, SlackFile
from normalizer.contact import Attachment
from normalizer.filenames import safe_filename

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 25 * 1024 * 1024
FILES_SCOPE = "files:read"
_SLACK_FILE_HOST = re.compile(r"^files(-[a-z0-9-]+)?\.slack\.com$")


def slack_file_url(url: str, api_base_url: str) -> bool:
    """May a Slack file be fetched from (or redirected to) ``url`` with the bot token?"""
    return url_allowed(url, api_base_url, lambda host: _SLACK_FILE_HOST.match(host) is not None)


class SlackFiles:
    """``await files.keep(file)`` -> an :class:`Attachment`, or a :class:`FileNotKept`."""

    def __init__(
        self,
        bot_token: str,
        api_base_url: str,
        timeout_seconds: float,
        max_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self._token = bot_token
        self._base = api_base_url
        self._timeout = timeout_seconds
        self._max = max_bytes

    async def keep(self, file: SlackFile) -> Attachment | FileNotKept:
        if file.external:
            return FileNotKept(file.name, file.url, "a link to a file kept outside Slack")
        if file.url is None:
            return FileNotKept(file.name, None, "Slack gave no download link")
        if file.size is not None and file.size > self._max:
            return FileNotKept(file.name, file.url, f"over {megabytes(self._max)}")
        try:
            fetched = await fetch(
                file.url,
                headers={"Authorization": f"Bearer {self._token}"},
                allowed=lambda url: slack_file_url(url, self._base),
                max_bytes=self._max,
                timeout_seconds=self._timeout,
                default_type=file.mimetype or "application/octet-stream",
            )
        except DownloadRefused as exc:
            log.warning("Slack file %s not kept: %s", file.id, exc)
            return FileNotKept(file.name, file.url, str(exc))
        if fetched.content_type == "text/html" and file.mimetype != "text/html":
            # Slack's answer to a token without files:read is its sign-in page, with a 200.
            log.warning("Slack file %s: got a web page; has the app %s?", file.id, FILES_SCOPE)
            return FileNotKept(file.name, file.url, f"Slack refused the download ({FILES_SCOPE}?)")
        content_type = file.mimetype or fetched.content_type
        return Attachment(
            filename=safe_filename(file.name, content_type),
            content_type=content_type,
            sha256=hashlib.sha256(fetched.data).hexdigest(),
            data=fetched.data,
        )
