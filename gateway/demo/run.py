"""``spoc demo``: a whole gateway on free ports with a throwaway database, one contact through
every channel, the tickets printed, then serving until Ctrl-C.

Nothing of the caller's is used or touched: not ``./config.toml``, not ``SPOC_*`` variables,
not ``./var/``. Everything lives in a temporary directory removed at the end.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from gateway.cli import render_table
from gateway.config import load_config
from gateway.demo.config import DemoSecrets, demo_config, free_port
from gateway.demo.drive import SLACK_USER, DemoStepFailed, Desk, drive_every_channel
from gateway.demo.fakes import FakeSlackAPI, FakeTwilioAPI, MailRelay
from gateway.exit_codes import EXIT_FAILED, EXIT_OK
from gateway.serve import Gateway, StartupError
from router.outbox import Outbox
from router.quarantine import QuarantineStore
from router.tickets import TicketQuery

log = logging.getLogger(__name__)

START_ATTEMPTS = 3  # a probed free port can be taken before we bind it
SETTLE_SECONDS = 15.0
SETTLE_POLL_SECONDS = 0.1


class _Fakes:
    def __init__(self, secrets: DemoSecrets) -> None:
        self.slack = FakeSlackAPI(secrets.slack_bot_token)
        self.slack.add_user(SLACK_USER, "Alex Demo", "alex@example.org")
        self.twilio = FakeTwilioAPI(secrets.twilio_account_sid, secrets.twilio_auth_token)
        self.relay = MailRelay()

    async def start(self) -> None:
        await self.slack.start()
        await self.twilio.start()
        await self.relay.start()

    async def stop(self) -> None:
        await self.relay.stop()
        await self.twilio.stop()
        await self.slack.stop()


async def run_demo(*, once: bool, out: TextIO = sys.stdout) -> int:
    """0 after Ctrl-C/SIGTERM (or at once with ``once``), 1 when a channel failed."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    secrets = DemoSecrets.fresh()
    fakes = _Fakes(secrets)
    with tempfile.TemporaryDirectory(prefix="spoc-demo-") as tmp:
        await fakes.start()
        gateway: Gateway | None = None
        try:
            try:
                gateway = await _start_gateway(Path(tmp), secrets, fakes)
            except (StartupError, OSError) as exc:
                print(f"spoc demo: the gateway cannot start: {exc}", file=sys.stderr)
                return EXIT_FAILED
            desk = Desk(
                base_url=gateway.config.server.base_url,
                smtp_port=gateway.smtp_port,
                api_token=secrets.api_token,
                twilio_account_sid=secrets.twilio_account_sid,
                twilio_auth_token=secrets.twilio_auth_token,
                slack_signing_secret=secrets.slack_signing_secret,
            )
            print(f"spoc demo: a gateway at {desk.base_url}, driving every channel…", file=out)
            try:
                channels = await drive_every_channel(desk)
            except (DemoStepFailed, OSError) as exc:
                print(f"spoc demo: a channel failed: {exc}", file=sys.stderr)
                return EXIT_FAILED
            await _settle(gateway)
            await _report(gateway, desk, fakes, channels, out, once=once)
            out.flush()
            if not once:
                await stop.wait()
                print("spoc demo: stopping; the demo's database is thrown away", file=out)
            return EXIT_OK
        finally:
            if gateway is not None:
                await gateway.stop(grace_seconds=5)
            await fakes.stop()


async def _start_gateway(directory: Path, secrets: DemoSecrets, fakes: _Fakes) -> Gateway:
    for attempt in range(1, START_ATTEMPTS + 1):
        path = directory / "config.toml"
        path.write_text(
            demo_config(
                directory,
                http_port=free_port(),
                smtp_port=free_port(),
                relay_port=fakes.relay.port,
                slack_api_url=fakes.slack.base_url,
                twilio_api_url=fakes.twilio.base_url,
                twilio_account_sid=secrets.twilio_account_sid,
            ),
            encoding="utf-8",
        )
        gateway = Gateway(load_config(path, secrets.environ()))
        try:
            await gateway.start()
        except OSError:
            await gateway.stop(grace_seconds=0)
            if attempt == START_ATTEMPTS:
                raise
            log.info("a probed port was taken meanwhile: starting again on others")
            continue
        return gateway
    raise StartupError("no free ports")  # not reached: the loop returns or raises


async def _settle(gateway: Gateway) -> None:
    """Wait (bounded) until the acknowledgements went out, so the summary counts them."""
    assert gateway.store is not None
    outbox = Outbox(gateway.store)
    for _ in range(int(SETTLE_SECONDS / SETTLE_POLL_SECONDS)):
        if not await outbox.depth():
            return
        await asyncio.sleep(SETTLE_POLL_SECONDS)
    log.warning("some acknowledgements are still waiting in the outbox")


async def _report(
    gateway: Gateway,
    desk: Desk,
    fakes: _Fakes,
    channels: list[str],
    out: TextIO,
    *,
    once: bool,
) -> None:
    assert gateway.tickets is not None and gateway.dashboard is not None
    assert gateway.store is not None
    page = await gateway.tickets.list(TicketQuery(limit=50))
    kept = await QuarantineStore(gateway.store).items()
    link = gateway.dashboard.sessions.login_link()
    print(f"\nOne contact through each channel ({', '.join(channels)}):\n", file=out)
    out.write(render_table(list(reversed(page.items))))
    print(
        f"\nAcknowledgements sent: email {len(fakes.relay.envelopes)} (kept by the demo's "
        f"relay), Slack {len(fakes.slack.posted)} (to the built-in Slack API fake).",
        f"Quarantine: {len(kept)} automatic mail kept, no ticket opened (an out-of-office reply "
        f"that answers nothing of ours): {desk.base_url}/dashboard/quarantine",
        f"\nDashboard (this link logs in once): {desk.base_url}/dashboard/login/link/{link}",
        f"API:   curl -H 'Authorization: Bearer {desk.api_token}' {desk.base_url}/api/tickets",
        f"Mail:  SMTP on 127.0.0.1:{desk.smtp_port}, to servicedesk@example.com",
        sep="\n",
        file=out,
    )
    if not once:
        print("\nPress Ctrl-C to stop; the demo's database goes with it.", file=out)
