"""Every email attachment can be read back from the raw message by its ``part`` path."""

from __future__ import annotations

from pathlib import Path

import pytest

from normalizer.email import attachment_bytes, contact_from_email

HERE = Path(__file__).resolve().parents[2]
SHARED = sorted((HERE.parent.parent / "shared" / "corpus").rglob("*.eml"))
CORPUS = sorted((HERE / "fixtures").rglob("*.eml")) + SHARED[::4]  # a quarter keeps it quick


def test_the_corpus_has_mail_with_attachments() -> None:
    with_files = [p for p in CORPUS if contact_from_email(p.read_bytes()).attachments]
    assert len(with_files) >= 20


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_each_attachment_decodes_from_its_part_as_the_converter_decoded_it(path: Path) -> None:
    raw = path.read_bytes()
    for attachment in contact_from_email(raw).attachments:
        assert attachment.part is not None
        assert attachment_bytes(raw, attachment.part) == attachment.data, attachment.filename


@pytest.mark.parametrize("part", ["9", "0.7", "x", "0.0.0.0"])
def test_a_part_that_is_not_there_reads_as_none(part: str) -> None:
    raw = (HERE / "fixtures" / "email" / "traversal_attachments.eml").read_bytes()
    assert attachment_bytes(raw, part) is None
