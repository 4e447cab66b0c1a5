"""``spoc serve`` freezes what its start-up built out of the garbage collector's walks: a full
collection over the classifier's model, SQLAlchemy's tables and every imported module stopped
the event loop for 80-180 ms (docs/benchmarks.md 2e)."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config.loading import load_config
from gateway.exit_codes import EXIT_OK
from gateway.serve import serve
from tests.integration.gateway_harness import free_port, write_config


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # give the test process's heap back to the collector


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


async def test_serve_freezes_the_start_up_heap_once_it_is_ready(
    tmp_path: Path, sqlite_url: str, unfrozen: None
) -> None:
    smtp_port = free_port()
    config = load_config(
        write_config(tmp_path, db_url=sqlite_url, relay_port=free_port(), smtp_port=smtp_port)
    )
    assert gc.get_freeze_count() == 0
    served = asyncio.create_task(serve(config))
    try:
        for _ in range(300):
            if answers(smtp_port) and gc.get_freeze_count() > 0:
                break
            await asyncio.sleep(0.1)
        assert gc.get_freeze_count() > 10_000  # the modules and the model, not a handful
    finally:
        if not served.done():  # serve's own SIGTERM handler: a clean stop
            os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(served, 60) == EXIT_OK
