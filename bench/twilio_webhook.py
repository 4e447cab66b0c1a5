"""Twilio webhook benchmark: spoc's ``/twilio/voice`` and gather step against a bare aiohttp
handler doing the same signature check and TwiML, measured by the same client in the same run.

Every server runs in a process of its own (pinned to one core when there are two or more);
this process is the load client (pinned to another core). For each round it runs, alternating:

``bare``
    a bare aiohttp app: ``POST /twilio/voice`` and ``POST /twilio/voice/menu`` read the form,
    check ``X-Twilio-Signature`` with twilio's ``RequestValidator`` and answer TwiML built with
    the twilio library (the greeting ``<Gather>``; the recording notice and ``<Record>``). The
    ceiling for this client, this server library and this validator on this machine.
``spoc``
    the real ``python -m gateway serve`` with ``[twilio] enabled`` and the shipped ``[ivr]``
    menu on a fresh SQLite database, INFO logging to a file: the greeting also asks the
    database for the caller's open ticket (the "press 9" offer).

The client keeps ``--connections`` keep-alive connections (aiohttp) and sends ``--requests``
requests per step, each a different call (CallSid) from a different caller, signed beforehand
so that signing costs the client nothing while timing. A warm-up batch is not counted. Every
answer must be 200 ``text/xml``, or the run fails. Reported: requests/s, p50 and p99 latency.

    python bench/twilio_webhook.py --requests 5000 --connections 16 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from ports import free_port  # bench/ is on sys.path when run as a script
from twilio.request_validator import RequestValidator

HERE = Path(__file__).resolve().parent
TOKEN = "bench-twilio-auth-token-0123456789"
DESK_NUMBER = "+12025550199"
STEPS = {"voice": "/twilio/voice", "gather": "/twilio/voice/menu?p=&n=0"}

BARE_SERVER = r"""
import sys
from aiohttp import web
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse

TOKEN, BASE, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
validator = RequestValidator(TOKEN)

async def checked(request):
    form = await request.post()
    url = BASE + request.rel_url.raw_path_qs
    if not validator.validate(url, form, request.headers.get("X-Twilio-Signature", "")):
        return None
    return form

async def voice(request):
    form = await checked(request)
    if form is None:
        return web.Response(status=403, text="invalid signature")
    action = BASE + "/twilio/voice/menu?p=&n=0"
    response = VoiceResponse()
    gather = response.gather(input="dtmf speech", action=action, method="POST", timeout=5,
                             num_digits=1, speech_timeout="auto",
                             hints="a broken device, a locked account", language="en-US")
    gather.say("Welcome to the IT service desk. For a broken device, press 1. "
               "For a locked account, press 2.", language="en-US")
    response.redirect(action, method="POST")
    return web.Response(text=str(response), content_type="text/xml")

async def menu(request):
    form = await checked(request)
    if form is None:
        return web.Response(status=403, text="invalid signature")
    base = BASE + "/twilio/voice/"
    response = VoiceResponse()
    response.say("This call is recorded so that we can help you.", language="en-US")
    response.record(action=base + "recorded?p=1", method="POST", max_length=120, timeout=5,
                    finish_on_key="#", play_beep=True,
                    recording_status_callback=base + "recording?p=1",
                    recording_status_callback_method="POST",
                    recording_status_callback_event="completed", transcribe=True,
                    transcribe_callback=base + "transcription?p=1")
    response.redirect(base + "recorded?p=1", method="POST")
    return web.Response(text=str(response), content_type="text/xml")

app = web.Application()
app.router.add_post("/twilio/voice", voice)
app.router.add_post("/twilio/voice/menu", menu)
web.run_app(app, host="127.0.0.1", port=PORT, print=None, access_log=None)
"""


def pin(pid: int, core: int) -> None:
    if (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(pid, {core % (os.cpu_count() or 1)})


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    base_url: str

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_bare(workdir: Path) -> Server:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    script = workdir / "bare_twilio.py"
    script.write_text(BARE_SERVER)
    log = (workdir / "bare.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(script), TOKEN, base, str(port)], stdout=log, stderr=log
    )
    return Server("bare", process, base)


def start_spoc(workdir: Path) -> Server:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    run = workdir / f"spoc-{secrets.token_hex(3)}"
    run.mkdir()
    shipped = (HERE.parent / "config.toml").read_text()
    config = shipped.replace("http_port = 8080", f"http_port = {port}").replace(
        'public_base_url = "http://127.0.0.1:8080"', f'public_base_url = "{base}"'
    )
    config = config.replace("port = 2525", f"port = {free_port()}").replace(
        "[twilio]                                     # phone and SMS; needs "
        "SPOC_TWILIO_AUTH_TOKEN (docs/phone.md)\nenabled = false",
        "[twilio]\nenabled = true",
    )
    assert "[twilio]\nenabled = true" in config, "the shipped [twilio] section changed"
    (run / "config.toml").write_text(config)
    env = {**os.environ, "SPOC_TWILIO_AUTH_TOKEN": TOKEN, "PYTHONPATH": str(HERE.parent)}
    log = (run / "spoc.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(run / "config.toml")],
        cwd=run,
        env=env,
        stdout=log,
        stderr=log,
    )
    return Server("spoc", process, base)


async def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} exited with {server.process.returncode}")
            try:
                async with session.post(server.base_url + "/twilio/voice") as response:
                    if response.status in (400, 403):
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{server.name} did not start")


def signed_requests(base: str, path: str, count: int) -> list[tuple[str, dict[str, str], str]]:
    validator = RequestValidator(TOKEN)
    url = base + path
    out = []
    for i in range(count):
        caller = f"+1202555{i % 10000:04d}"
        params = {
            "AccountSid": "AC" + "0" * 32,
            "ApiVersion": "2010-04-01",
            "CallSid": "CA" + secrets.token_hex(16),
            "CallStatus": "in-progress",
            "Called": DESK_NUMBER,
            "Caller": caller,
            "Direction": "inbound",
            "From": caller,
            "To": DESK_NUMBER,
        }
        if "menu" in path:
            params["Digits"] = "1"
        out.append((url, params, validator.compute_signature(url, params)))
    return out


@dataclass
class Result:
    server: str
    step: str
    rps: float
    p50_ms: float
    p99_ms: float


def percentile(latencies: list[float], q: float) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrk_script(server: Server, step: str, count: int, workdir: Path) -> Path:
    """A wrk script cycling through ``count`` different signed requests (one CallSid each)."""
    lines = ["local bodies, signatures = {}, {}"]
    for i, (_, params, signature) in enumerate(
        signed_requests(server.base_url, STEPS[step], count)
    ):
        lines.append(f"bodies[{i + 1}] = {lua_string(urlencode(params))}")
        lines.append(f"signatures[{i + 1}] = {lua_string(signature)}")
    lines += [
        f"local path, n, i = {lua_string(STEPS[step])}, {count}, 0",
        "request = function()",
        "  i = i % n + 1",
        "  return wrk.format('POST', path, {['Content-Type'] = "
        "'application/x-www-form-urlencoded', ['X-Twilio-Signature'] = signatures[i]}, bodies[i])",
        "end",
        "done = function(summary, latency, requests)",
        "  io.write(string.format('non200 %d\\n', summary.errors.status))",
        "end",
    ]
    script = workdir / f"{server.name}-{step}.lua"
    script.write_text("\n".join(lines) + "\n")
    return script


def run_wrk(server: Server, step: str, seconds: float, connections: int, workdir: Path) -> Result:
    script = wrk_script(server, step, 2000, workdir)
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "-s",
        str(script),
    ]
    if (os.cpu_count() or 1) >= 2:
        command = ["taskset", "-c", "0", *command]
    # A warm-up run first, not counted.
    subprocess.run(
        [*command[:-4], "-d2s", *command[-3:], server.base_url], check=True, capture_output=True
    )
    out = subprocess.run([*command, server.base_url], check=True, capture_output=True, text=True)
    text = out.stdout
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", text).group(1))  # type: ignore[union-attr]
    errors = re.search(r"non200 (\d+)", text)
    if errors is None or int(errors.group(1)) or "Socket errors" in text:
        raise RuntimeError(f"{server.name} {step}: bad answers\n{text}")
    return Result(server.name, step, rps, _wrk_ms(text, "50%"), _wrk_ms(text, "99%"))


def _wrk_ms(text: str, label: str) -> float:
    found = re.search(rf"^\s+{re.escape(label)}\s+([0-9.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    assert found is not None, text
    value, unit = float(found.group(1)), found.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


async def load(server: Server, step: str, count: int, connections: int, warmup: int) -> Result:
    requests = signed_requests(server.base_url, STEPS[step], count + warmup)
    connector = aiohttp.TCPConnector(limit=connections)
    latencies: list[float] = []
    failures: list[str] = []
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(batch: list[tuple[str, dict[str, str], str]], record: bool) -> None:
            for url, params, signature in batch:
                started = time.perf_counter()
                async with session.post(
                    url, data=params, headers={"X-Twilio-Signature": signature}
                ) as response:
                    body = await response.read()
                    if response.status != 200 or response.content_type != "text/xml":
                        failures.append(f"{response.status} {body[:80]!r}")
                if record:
                    latencies.append(time.perf_counter() - started)

        async def run(batch: list[tuple[str, dict[str, str], str]], record: bool) -> float:
            chunks = [batch[i::connections] for i in range(connections)]
            started = time.perf_counter()
            await asyncio.gather(*(worker(chunk, record) for chunk in chunks))
            return time.perf_counter() - started

        await run(requests[:warmup], record=False)
        seconds = await run(requests[warmup:], record=True)
    if failures:
        raise RuntimeError(f"{server.name} {step}: {len(failures)} bad answers, e.g. {failures[0]}")
    return Result(
        server.name,
        step,
        count / seconds,
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument(
        "--client",
        choices=("wrk", "aiohttp"),
        default="wrk" if shutil.which("wrk") else "aiohttp",
        help="wrk (one thread, on its own core) or the aiohttp client in this process",
    )
    parser.add_argument("--seconds", type=int, default=10, help="wrk run length")
    args = parser.parse_args()
    pin(os.getpid(), 0)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="spoc-twilio-bench-") as tmp:
        workdir = Path(tmp)
        for round_ in range(args.repeat):
            for start in (start_bare, start_spoc):
                server = start(workdir)
                pin(server.process.pid, 1)
                try:
                    await wait_ready(server)
                    for step in STEPS:
                        if args.client == "wrk":
                            result = run_wrk(server, step, args.seconds, args.connections, workdir)
                        else:
                            result = await load(
                                server, step, args.requests, args.connections, args.warmup
                            )
                        results.append(result)
                        print(
                            f"round {round_ + 1} {result.server:5} {step:6} "
                            f"{result.rps:8.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                            f"p99 {result.p99_ms:6.2f} ms",
                            flush=True,
                        )
                finally:
                    server.stop()
    print()
    print(
        f"{platform.node()} {platform.python_version()} cpus={os.cpu_count()} "
        f"client={args.client} connections={args.connections} repeat={args.repeat}"
    )
    print("| step | bare req/s | spoc req/s | ratio | bare p99 ms | spoc p99 ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    ok = True
    for step in STEPS:
        bare = [r for r in results if r.server == "bare" and r.step == step]
        spoc = [r for r in results if r.server == "spoc" and r.step == step]
        bare_rps = statistics.median(r.rps for r in bare)
        spoc_rps = statistics.median(r.rps for r in spoc)
        bare_p99 = statistics.median(r.p99_ms for r in bare)
        spoc_p99 = statistics.median(r.p99_ms for r in spoc)
        ratio = spoc_rps / bare_rps
        ok = ok and ratio >= 0.3 and spoc_p99 < 20
        print(
            f"| {step} | {bare_rps:.0f} | {spoc_rps:.0f} | {ratio:.2f} | "
            f"{bare_p99:.2f} | {spoc_p99:.2f} |"
        )
    print("targets (ratio >= 0.3, spoc p99 < 20 ms):", "met" if ok else "NOT met")


if __name__ == "__main__":
    asyncio.run(main())
