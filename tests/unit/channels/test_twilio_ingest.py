"""Recording downloads: where a redirect may lead, the file's URL, and the time allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from channels.twilio.ingest import IngestSettings, redirect_allowed, wav_url

BASE = "https://api.twilio.com"
LOCAL = "http://127.0.0.1:8765"


@pytest.mark.parametrize(
    "location",
    [
        "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1.wav",
        "https://media.us1.twilio.com/RE1.wav?Expires=1&Signature=x",
        "https://twilio.com/RE1.wav",
    ],
)
def test_a_redirect_to_twilio_over_https_is_allowed(location: str) -> None:
    assert redirect_allowed(location, BASE)


@pytest.mark.parametrize(
    "location",
    [
        "https://evil.example/RE1.wav",
        "https://eviltwilio.com/RE1.wav",
        "https://api.twilio.com.evil.example/RE1.wav",
        "http://media.twilio.com/RE1.wav",  # credentials aside, no cleartext
        "https://127.0.0.1/RE1.wav",
        "https://10.0.0.5/RE1.wav",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/RE1.wav",
        "https://api.twilio.com:notaport/RE1.wav",
        "ftp://api.twilio.com/RE1.wav",
        "https:///RE1.wav",
    ],
)
def test_a_redirect_anywhere_else_is_refused(location: str) -> None:
    assert not redirect_allowed(location, BASE)


def test_a_redirect_back_to_the_configured_api_host_is_allowed_even_on_loopback() -> None:
    assert redirect_allowed(LOCAL + "/storage/RE1.wav", LOCAL)
    assert not redirect_allowed("http://127.0.0.1:9999/storage/RE1.wav", LOCAL)
    assert not redirect_allowed("http://127.0.0.2:8765/storage/RE1.wav", LOCAL)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (BASE + "/Recordings/RE1", BASE + "/Recordings/RE1.wav"),
        (
            BASE + "/Recordings/RE1?RequestedChannels=2",
            BASE + "/Recordings/RE1.wav?RequestedChannels=2",
        ),
        (BASE + "/Recordings/RE1.wav", BASE + "/Recordings/RE1.wav"),
    ],
)
def test_wav_goes_on_the_path_not_after_the_query(url: str, expected: str) -> None:
    assert wav_url(url) == expected


def test_the_download_fits_inside_twilios_15_second_webhook_timeout(tmp_path: Path) -> None:
    assert IngestSettings(spool_dir=tmp_path).download_timeout_seconds <= 10
    with pytest.raises(ValueError, match="download_timeout_seconds"):
        IngestSettings(spool_dir=tmp_path, download_timeout_seconds=30)
