from __future__ import annotations

import asyncio
import json
import sys
import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway import cli
from gateway.cli import config_path, main, render_table, render_ticket
from gateway.config import Config, load_config
from normalizer.contact import Channel, Contact, Party
from router.router import Router
from router.store import Store
from router.tickets import TicketNotFound, TicketPage, TicketQuery

REPO = Path(__file__).resolve().parents[3]

SUMMARY = {
    "ref": "SD-42",
    "status": "new",
    "kind": "incident",
    "category": "broken_device",
    "priority": "P3",
    "owner": "service-desk",
    "group": "service-desk",
    "tier": 1,
    "channel": "phone",
    "subject": "Printer on fire \x1b[31m and the whole floor smells of toner, please come quickly",
    "created_at": "2026-11-22T15:00:00Z",
    "updated_at": "2026-11-22T15:05:00Z",
}
TICKET = {
    **SUMMARY,
    "requester": {"id": 7, "name": "Alice", "email": "alice@example.org", "phone": "+15550100"},
    "contacts": [
        {
            "id": 2,
            "channel": "email",
            "direction": "out",
            "received_at": "2026-11-22T15:01:00Z",
            "from": "servicedesk@example.com",
            "subject": "[SD-42] Printer on fire",
            "text": "We are on it.",
            "attachments": [],
        },
        {
            "id": 1,
            "channel": "phone",
            "direction": "in",
            "received_at": "2026-11-22T15:00:00Z",
            "from": "+15550100",
            "subject": "",
            "text": "first line\nsecond line",
            "attachments": [
                {"filename": "rec.wav", "content_type": "audio/wav", "size": 12, "sha256": "x"}
            ],
        },
    ],
    "events": [{"at": "2026-11-22T15:00:30Z", "type": "created", "detail": {}}],
}


def write(tmp_path: Path, text: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_check_config_accepts_the_shipped_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(REPO / "config.toml")]) == 0
    assert capsys.readouterr().out == f"config OK: {REPO / 'config.toml'}\n"


def test_check_config_prints_one_line_per_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "[smtp]\nport = 70000\nprot = 1\n")
    assert main(["--config", str(path), "check-config"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert sorted(captured.err.splitlines()) == [
        "smtp.port: 70000 is not a valid port (1-65535)",
        "smtp.prot: unknown key",
    ]


def test_check_config_reports_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", "--config", str(tmp_path / "none.toml")]) == 2
    assert "no such config file" in capsys.readouterr().err


def test_config_path_comes_from_spoc_config_when_no_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path)
    monkeypatch.setenv("SPOC_CONFIG", str(path))
    assert main(["check-config"]) == 0
    assert capsys.readouterr().out == f"config OK: {path}\n"


def test_config_path_defaults_to_config_toml_in_the_working_directory() -> None:
    assert config_path(None, {}) == Path("config.toml")
    assert config_path(None, {"SPOC_CONFIG": "/etc/spoc.toml"}) == Path("/etc/spoc.toml")
    assert config_path("mine.toml", {"SPOC_CONFIG": "/etc/spoc.toml"}) == Path("mine.toml")


def test_subcommand_config_flag_wins_over_the_global_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path)
    assert (
        main(["--config", str(tmp_path / "missing.toml"), "check-config", "--config", str(good)])
        == 0
    )
    assert capsys.readouterr().out == f"config OK: {good}\n"


def test_no_command_prints_usage_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: spoc" in capsys.readouterr().err


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_config_error_stops_any_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "[smtp]\nport = 0\n")
    called: list[Config] = []
    fake = types.ModuleType("gateway.migrate")
    fake.upgrade = called.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gateway.migrate", fake)
    assert main(["db", "upgrade", "--config", str(path)]) == 2
    assert called == []
    assert capsys.readouterr().err.startswith("smtp.port: 0 is not a valid port")


def test_db_upgrade_migrates_the_resolved_database_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    urls: list[str] = []
    fake = types.ModuleType("gateway.migrate")
    fake.upgrade = urls.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gateway.migrate", fake)
    monkeypatch.chdir(tmp_path)
    assert main(["db", "upgrade", "--config", str(write(tmp_path))]) == 0
    assert urls == [f"sqlite:///{tmp_path.resolve()}/var/spoc.db"]
    assert capsys.readouterr().out == "database at head\n"


def test_serve_runs_the_gateway_and_returns_its_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Config] = []

    async def serve(config: Config) -> int:
        seen.append(config)
        return 3

    fake = types.ModuleType("gateway.serve")
    fake.serve = serve  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gateway.serve", fake)
    assert main(["serve", "--config", str(write(tmp_path))]) == 3
    assert len(seen) == 1


def test_demo_needs_no_config_file_and_hands_its_flag_to_the_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []

    async def run_demo(*, once: bool) -> int:
        seen.append(once)
        return 0

    fake = types.ModuleType("gateway.demo")
    fake.run_demo = run_demo  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gateway.demo", fake)
    monkeypatch.chdir(tmp_path)  # no config.toml here: the demo brings its own
    assert main(["demo", "--once"]) == 0
    assert main(["demo"]) == 0
    assert seen == [True, False]


def test_help_lists_demo_as_working(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    [line] = [line for line in capsys.readouterr().out.splitlines() if "demo" in line]
    assert "throwaway gateway" in line and "not available" not in line


class FakeTicketService:
    queries: list[TicketQuery] = []

    def __init__(self, store: object, settings: object) -> None:
        pass

    async def list(self, query: TicketQuery) -> TicketPage:
        self.queries.append(query)
        return TicketPage([SUMMARY], None)

    async def get(self, ref: str) -> dict[str, Any]:
        if ref != "SD-42":
            raise TicketNotFound(ref)
        return TICKET


class FakeStore:
    closed = 0

    @classmethod
    def from_url(cls, url: str) -> FakeStore:
        return cls()

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        FakeStore.closed += 1


@pytest.fixture
def fake_router(monkeypatch: pytest.MonkeyPatch) -> type[FakeTicketService]:
    monkeypatch.setattr("router.store.Store", FakeStore)
    monkeypatch.setattr("router.tickets.TicketService", FakeTicketService)
    monkeypatch.setattr(FakeTicketService, "queries", [])
    monkeypatch.setattr(FakeStore, "closed", 0)
    return FakeTicketService


def test_tickets_list_passes_filters_and_prints_a_table(
    tmp_path: Path, fake_router: type[FakeTicketService], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["tickets", "list", "--status", "new", "--channel", "phone", "--group", "l2-apps"]
    assert main([*argv, "--limit", "5", "--config", str(write(tmp_path))]) == 0
    assert fake_router.queries == [
        TicketQuery(status="new", channel="phone", group="l2-apps", limit=5)
    ]
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["REF", "STATUS", "PRIO", "CHANNEL", "GROUP", "CREATED", "SUBJECT"]
    assert row.startswith("SD-42")
    assert header.index("SUBJECT") == row.index("Printer")
    assert FakeStore.closed == 1


def test_tickets_list_json_prints_the_page(
    tmp_path: Path, fake_router: type[FakeTicketService], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tickets", "list", "--json", "--config", str(write(tmp_path))]) == 0
    assert json.loads(capsys.readouterr().out) == {"tickets": [SUMMARY], "next": None}


def test_tickets_list_refuses_an_unknown_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tickets", "list", "--status", "weird"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_tickets_show_prints_the_ticket(
    tmp_path: Path, fake_router: type[FakeTicketService], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tickets", "show", "SD-42", "--config", str(write(tmp_path))]) == 0
    assert capsys.readouterr().out == render_ticket(TICKET)


def test_tickets_show_json_prints_the_contract_json(
    tmp_path: Path, fake_router: type[FakeTicketService], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tickets", "show", "SD-42", "--json", "--config", str(write(tmp_path))]) == 0
    assert json.loads(capsys.readouterr().out) == TICKET


def test_tickets_show_unknown_ref_exits_1(
    tmp_path: Path, fake_router: type[FakeTicketService], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tickets", "show", "SD-999", "--config", str(write(tmp_path))]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "SD-999" in captured.err
    assert FakeStore.closed == 1


def test_table_truncates_subjects_and_strips_terminal_escapes() -> None:
    table = render_table([SUMMARY])
    assert "\x1b" not in table
    subject = table.splitlines()[1].split("2026-11-22 15:00")[1].strip()
    assert len(subject) == cli.SUBJECT_WIDTH and subject.endswith("…")


def test_table_for_no_tickets_says_so() -> None:
    assert render_table([]) == "no tickets\n"


def test_ticket_view_lists_contacts_and_events_in_time_order() -> None:
    text = render_ticket(TICKET)
    assert "Requester: Alice <alice@example.org> +15550100" in text
    first_in = text.index("in phone  from +15550100")
    created = text.index("event created")
    reply = text.index("out email  from servicedesk@example.com")
    assert first_in < created < reply
    assert "    first line\n    second line\n" in text
    assert "[attachment] rec.wav (audio/wav, 12 bytes)" in text


def test_tickets_commands_on_a_fresh_sqlite_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, f'[database]\nurl = "sqlite:///{tmp_path}/spoc.db"\n')
    assert main(["tickets", "list", "--config", str(path)]) == 1
    assert "spoc db upgrade" in capsys.readouterr().err
    assert main(["db", "upgrade", "--config", str(path)]) == 0
    assert main(["tickets", "list", "--config", str(path)]) == 0
    assert capsys.readouterr().out == "database at head\nno tickets\n"
    assert main(["tickets", "show", "SD-1", "--config", str(path)]) == 1
    assert capsys.readouterr().err == "spoc: no such ticket: SD-1\n"


def test_tickets_show_finds_no_ticket_for_a_ref_with_fullwidth_digits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, f'[database]\nurl = "sqlite:///{tmp_path}/spoc.db"\n')
    assert main(["db", "upgrade", "--config", str(path)]) == 0
    config = load_config(path)

    async def open_ticket() -> str:
        store = Store.from_url(config.database_url)
        await store.start()
        try:
            contact = Contact(
                channel=Channel.API,
                external_id="cli-1",
                sender=Party(email="alice@example.org"),
                received_at=datetime.now(UTC),
                subject="Printer",
                text="Jammed.",
            )
            return (await Router(store, config.router_settings()).submit(contact)).ticket_ref
        finally:
            await store.close()

    assert asyncio.run(open_ticket()) == "SD-1"
    capsys.readouterr()
    assert main(["tickets", "show", "SD-1", "--config", str(path)]) == 0
    assert main(["tickets", "show", "SD-\uff11", "--config", str(path)]) == 1
    assert main(["tickets", "show", "SD-\u0967", "--config", str(path)]) == 1
    assert capsys.readouterr().err.count("no such ticket") == 2
