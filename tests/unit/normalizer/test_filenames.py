"""safe_filename: sender-chosen attachment names become harmless ones."""

from __future__ import annotations

import pytest

from normalizer.filenames import MAX_FILENAME_BYTES, safe_filename


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("C:\\Users\\bob\\report.docx", "report.docx"),
        ("/absolute/path/to/photo.jpg", "photo.jpg"),
        (".htaccess", "htaccess"),
        ("...hidden.txt", "hidden.txt"),
        ("evil\x00.exe.txt", "evil.exe.txt"),
        ("line\r\nbreak.txt", "linebreak.txt"),
        ("invoice\u202egpj.exe", "invoicegpj.exe"),
        ('what?"<>|*:.txt', "what_______.txt"),
        ("trailing dots...", "trailing dots"),
        ("Rechnung März.pdf", "Rechnung März.pdf"),
    ],
)
def test_dangerous_names_come_out_safe(name: str, expected: str) -> None:
    assert safe_filename(name, "application/octet-stream") == expected


@pytest.mark.parametrize("name", ["CON", "con.txt", "NUL.tar.gz", "com1.log", "LPT9", "aux"])
def test_reserved_windows_device_names_are_defused(name: str) -> None:
    result = safe_filename(name, "text/plain")
    assert result.startswith("_")
    assert result[1:] == name


def test_names_that_merely_contain_a_device_name_are_left_alone() -> None:
    assert safe_filename("console.log", "text/plain") == "console.log"
    assert safe_filename("Bericht über CON.doc", "application/msword") == "Bericht über CON.doc"


@pytest.mark.parametrize(
    ("name", "content_type", "expected"),
    [
        (None, "image/png", "attachment.png"),
        ("", "application/pdf", "attachment.pdf"),
        ("../", "text/plain", "attachment.txt"),
        ("...", "message/rfc822", "attachment.eml"),
        ("\x00\x01", "application/x-no-such-type", "attachment.bin"),
        (None, "garbage", "attachment.bin"),
    ],
)
def test_missing_or_empty_names_get_a_default_with_a_guessed_extension(
    name: str | None, content_type: str, expected: str
) -> None:
    assert safe_filename(name, content_type) == expected


def test_long_names_are_cut_to_255_utf8_bytes_keeping_the_extension() -> None:
    result = safe_filename("ü" * 400 + ".xlsx", "application/octet-stream")
    assert len(result.encode("utf-8")) <= MAX_FILENAME_BYTES
    assert result.endswith(".xlsx")
    assert result.startswith("ü")
    result.encode("utf-8").decode("utf-8")  # no multi-byte character was cut in half


def test_a_name_that_is_all_extension_is_not_treated_as_hidden_or_empty() -> None:
    assert safe_filename(".pdf", "application/pdf") == "pdf"
