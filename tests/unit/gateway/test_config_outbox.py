"""``[outbox]``: the dispatcher's settings come from this one section, by one function."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config
from gateway.dispatcher import DispatcherSettings
from router.retry import RetryPolicy


def load(tmp_path: Path, text: str) -> DispatcherSettings:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, {}).outbox.dispatcher_settings()


def test_defaults_retry_temporary_failures_for_five_days_and_permanent_ones_three_times(
    tmp_path: Path,
) -> None:
    settings = load(tmp_path, "")
    assert settings.retry == RetryPolicy(
        backoff_base_seconds=1.0,
        backoff_max_seconds=900.0,
        lifetime_seconds=5 * 24 * 3600.0,
        permanent_max_attempts=3,
    )
    assert (settings.lease_seconds, settings.batch_size) == (120.0, 20)
    assert settings.send_timeout_seconds < settings.lease_seconds


def test_every_outbox_key_reaches_the_dispatcher(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        "[outbox]\nmax_attempts = 5\nlifetime_hours = 2\nbackoff_base_seconds = 2\n"
        "backoff_max_seconds = 60\nlease_seconds = 30\nbatch_size = 4\n"
        "poll_interval_seconds = 0.5\n",
    )
    assert settings == DispatcherSettings(
        retry=RetryPolicy(2.0, 60.0, 7200.0, 5),
        poll_interval_seconds=0.5,
        batch_size=4,
        lease_seconds=30.0,
    )


def test_shipped_config_outbox_section_is_valid() -> None:
    shipped = Path(__file__).resolve().parents[3] / "config.toml"
    assert load_config(shipped, {}).outbox.dispatcher_settings().retry.permanent_max_attempts >= 1


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("backoff_base_seconds = 10\nbackoff_max_seconds = 5", "outbox: backoff_max_seconds (5)"),
        ("lease_seconds = 3", "outbox.lease_seconds: input should be greater than or equal to 10"),
        ("lifetime_hours = 0", "outbox.lifetime_hours: input should be greater than 0"),
        ("max_attempts = 0", "outbox.max_attempts: input should be greater than 0"),
    ],
)
def test_outbox_settings_that_cannot_work_are_refused_by_name(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[outbox]\n{text}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert [p for p in caught.value.problems if p.startswith(problem)], caught.value.problems
