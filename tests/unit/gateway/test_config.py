from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from channels.smtp import SMTPChannelSettings
from gateway.config import ConfigError, Secrets, load_config, resolve_sqlite_url
from gateway.config.sections import ServerSection
from normalizer.contact import Channel, Kind
from router.settings import Group, RoutingRule

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "config.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), environ or {})
    return caught.value.problems


def test_shipped_config_validates_with_an_empty_environment() -> None:
    config = load_config(SHIPPED, {})
    assert config.smtp.host == "127.0.0.1" and config.smtp.port == 2525
    assert config.server.http_port == 8080
    assert config.outbound_smtp.port == 2526
    assert config.database.url == "sqlite:///var/spoc.db"
    assert config.api.enabled and not config.twilio.enabled and not config.slack.enabled
    assert [(g.name, g.tier) for g in config.groups] == [
        ("service-desk", 1),
        ("customer-support", 1.5),
        ("l2-apps", 2),
        ("vendor-acme", 3),
    ]


def _server_table(toml_text: str) -> dict[str, object]:
    """The ``[server]`` table of ``toml_text`` (cut out alone: the README's block has non-TOML
    placeholders in other tables)."""
    table = re.search(r"^\[server\][^\n]*\n(.*?)(?=^\[|\Z)", toml_text, re.MULTILINE | re.DOTALL)
    assert table is not None
    server = tomllib.loads(table.group(1))
    return {key: list(v) if isinstance(v, tuple) else v for key, v in server.items()}


def _server_defaults() -> dict[str, object]:
    defaults = ServerSection().model_dump()
    return {key: list(v) if isinstance(v, tuple) else v for key, v in defaults.items()}


def test_shipped_config_lists_every_server_key_at_its_default() -> None:
    # public_base_url has no default value to show (it follows http_host and http_port).
    shown = _server_table(SHIPPED.read_text(encoding="utf-8"))
    shown.pop("public_base_url")
    defaults = _server_defaults()
    defaults.pop("public_base_url")
    assert shown == defaults


def test_readme_shows_the_server_keys_spoc_adds_at_their_defaults() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text[text.index("Keys that spoc adds, with their defaults") :]
    shown = _server_table(block[block.index("```toml") : block.index("\n```\n")])
    defaults = _server_defaults()
    assert shown == {key: defaults[key] for key in shown}
    # the contract's keys are documented elsewhere; every key spoc added is here
    assert set(defaults) - set(shown) == {"http_host", "http_port", "public_base_url"}


def test_shipped_config_holds_no_secret_looking_key() -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    keys = re.findall(r"^\s*([a-z_]+)\s*=", text, flags=re.MULTILINE)
    assert not [k for k in keys if k.endswith(("password", "token", "secret"))]


def test_empty_file_gives_working_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), {})
    assert config.tickets.prefix == "SD"
    assert config.router_settings().owner_group == Group("service-desk", 1.0)
    assert config.email.id_domain == "example.com"


def test_unknown_key_is_named(tmp_path: Path) -> None:
    assert problems(tmp_path, "[smtp]\nprot = 25\n") == ["smtp.prot: unknown key"]


def test_unknown_section_is_named(tmp_path: Path) -> None:
    assert problems(tmp_path, "[smpt]\nport = 25\n") == ["smpt: unknown key"]


def test_bad_port_names_the_key_and_the_value(tmp_path: Path) -> None:
    assert problems(tmp_path, "[smtp]\nport = 70000\n") == [
        "smtp.port: 70000 is not a valid port (1-65535)"
    ]


def test_wrong_type_names_the_key_and_the_value(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, '[server]\nhttp_port = "8080"\n')
    assert problem.startswith("server.http_port: ") and "'8080'" in problem


def test_every_problem_is_reported_one_line_each(tmp_path: Path) -> None:
    found = problems(tmp_path, '[smtp]\nport = 0\nhost = 5\n[tickets]\nprefix = "sd-"\n')
    assert len(found) == 3
    assert all("\n" not in p for p in found)
    assert {p.split(":")[0] for p in found} == {"smtp.port", "smtp.host", "tickets.prefix"}


def test_trusted_proxies_are_parsed_and_a_bad_one_is_named(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, '[server]\ntrusted_proxies = ["127.0.0.1", "10.0.0.0/8"]\n'), {}
    )
    assert [str(n) for n in config.server.proxy_networks()] == ["127.0.0.1/32", "10.0.0.0/8"]
    [problem] = problems(tmp_path, '[server]\ntrusted_proxies = ["127.0.0.1", "proxy.lan"]\n')
    assert problem.startswith("server.trusted_proxies: ") and "'proxy.lan' is no network" in problem


def test_toml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, "[server]\nhttp_port = = 1\n")
    assert "not valid TOML" in problem and "line 2" in problem and "column" in problem


def test_missing_file_is_a_clear_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.toml", {})
    assert caught.value.problems == [f"{tmp_path / 'nope.toml'}: no such config file"]


def test_bad_routing_regex_is_named(tmp_path: Path) -> None:
    text = '[[routing]]\nwhen = { subject_matches = "(unclosed" }\ngroup = "service-desk"\n'
    [problem] = problems(tmp_path, text)
    assert problem.startswith("routing[0].when.subject_matches: '(unclosed' is not a valid regular")


def test_bad_fax_subject_pattern_is_named(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, '[fax]\nsubject_pattern = "fax [from"\n')
    assert problem.startswith("fax.subject_pattern: ")


def test_routing_to_an_unknown_group_is_named(tmp_path: Path) -> None:
    assert problems(tmp_path, '[[routing]]\ngroup = "l9-nobody"\n') == [
        "routing[0].group: 'l9-nobody' is not a [[groups]] name"
    ]


def test_groups_must_have_exactly_one_lowest_tier(tmp_path: Path) -> None:
    text = '[[groups]]\nname = "a"\ntier = 1\n[[groups]]\nname = "b"\ntier = 1\n'
    [problem] = problems(tmp_path, text)
    assert problem.startswith("groups: a, b share the lowest tier 1")


def test_duplicate_group_names_are_refused(tmp_path: Path) -> None:
    text = '[[groups]]\nname = "a"\ntier = 1\n[[groups]]\nname = "a"\ntier = 2\n'
    assert problems(tmp_path, text) == ["groups[1].name: 'a' is used twice"]


def test_tier_must_be_positive(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, '[[groups]]\nname = "a"\ntier = 0\n')
    assert problem.startswith("groups[0].tier: ") and "greater than 0" in problem


def test_ticket_prefix_must_be_capitals(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, '[tickets]\nprefix = "sd"\n')
    assert problem.startswith("tickets.prefix: 'sd' ")


@pytest.mark.parametrize("prefix", ["SD\\n", "\\uff33D", "S\\u0967", "1SD", "ABCDEFGHIJK"])
def test_a_ticket_prefix_refs_could_not_carry_is_refused(tmp_path: Path, prefix: str) -> None:
    [problem] = problems(tmp_path, f'[tickets]\nprefix = "{prefix}"\n')
    assert problem.startswith("tickets.prefix: ")


def test_ivr_digits_must_be_unique_single_digits(tmp_path: Path) -> None:
    option = '[[ivr.options]]\ndigit = "{}"\nlabel = "x"\ncategory = "other"\n'
    found = problems(tmp_path, "[ivr]\n" + option.format("1") + option.format("1"))
    assert found == ["ivr.options[1].digit: '1' is used twice"]
    [problem] = problems(tmp_path, "[ivr]\n" + option.format("12"))
    assert problem.startswith("ivr.options[0].digit: ")


def test_forward_needs_a_target_and_a_known_kind(tmp_path: Path) -> None:
    found = problems(tmp_path, '[[forward]]\nname = "x"\nkind = "webhook"\n')
    assert found == ["forward[0]: a webhook forward needs `url`"]
    [problem] = problems(tmp_path, '[[forward]]\nname = "x"\nkind = "fax"\nurl = "https://h/"\n')
    assert problem.startswith("forward[0].kind: ")


def test_relay_replies_belongs_to_email_forwards_only(tmp_path: Path) -> None:
    hook = '[[forward]]\nname = "x"\nkind = "webhook"\nurl = "https://h/"\nrelay_replies = false\n'
    [problem] = problems(tmp_path, hook)
    assert problem.startswith("forward[0]: `relay_replies` is for email forwards")
    vendor = '[[forward]]\nname = "v"\nkind = "email"\nto = "a@vendor.example"\nrelay_replies = 1\n'
    [problem] = problems(tmp_path, vendor)
    assert problem.startswith("forward[0].relay_replies: ")
    config = load_config(write(tmp_path, vendor.replace("= 1", "= false")), {})
    assert [f.relay_replies for f in config.forward] == [False]


@pytest.mark.parametrize(
    ("text", "key", "env_var"),
    [
        ('[twilio]\nauth_token = "x"\n', "twilio.auth_token", "SPOC_TWILIO_AUTH_TOKEN"),
        ('[slack]\nsigning_secret = "x"\n', "slack.signing_secret", "SPOC_SLACK_SIGNING_SECRET"),
        ('[slack]\nbot_token = "x"\n', "slack.bot_token", "SPOC_SLACK_BOT_TOKEN"),
        ('[api]\ntoken = "x"\n', "api.token", "SPOC_API_TOKEN"),
        (
            '[outbound_smtp]\npassword = "x"\n',
            "outbound_smtp.password",
            "SPOC_OUTBOUND_SMTP_PASSWORD",
        ),
        (
            '[[imap]]\nname = "legacy-helpdesk"\nhost = "h"\nusername = "u"\npassword = "x"\n',
            "imap[0].password",
            "SPOC_IMAP_LEGACY_HELPDESK_PASSWORD",
        ),
        (
            '[[forward]]\nname = "l2-jira"\nkind = "webhook"\nurl = "https://h/"\nsecret = "x"\n',
            "forward[0].secret",
            "SPOC_FORWARD_L2_JIRA_SECRET",
        ),
    ],
)
def test_secret_in_the_file_is_refused_naming_the_env_var(
    tmp_path: Path, text: str, key: str, env_var: str
) -> None:
    [problem] = problems(tmp_path, text)
    assert problem.startswith(f"{key}: ") and env_var in problem
    assert '"x"' not in problem and "'x'" not in problem


def test_password_inside_database_url_is_refused(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, '[database]\nurl = "postgresql://u:hunter2@db/spoc"\n')
    assert problem.startswith("database.url: ") and "SPOC_DATABASE_URL" in problem
    assert "hunter2" not in problem


def test_secrets_come_from_the_environment(tmp_path: Path) -> None:
    text = (
        '[[imap]]\nname = "legacy-helpdesk"\nhost = "h"\nusername = "u"\n'
        '[[imap]]\nname = "other"\nhost = "h"\nusername = "u"\n'
        '[[forward]]\nname = "l2-jira"\nkind = "webhook"\nurl = "https://h/"\n'
    )
    environ = {
        "SPOC_TWILIO_AUTH_TOKEN": "tw",
        "SPOC_SLACK_SIGNING_SECRET": "ss",
        "SPOC_SLACK_BOT_TOKEN": "xoxb",
        "SPOC_SLACK_APP_TOKEN": "xapp",
        "SPOC_API_TOKEN": " one, two ,,",
        "SPOC_OUTBOUND_SMTP_PASSWORD": "relay",
        "SPOC_IMAP_PASSWORD": "shared",
        "SPOC_IMAP_LEGACY_HELPDESK_PASSWORD": "own",
        "SPOC_FORWARD_L2_JIRA_SECRET": "whsec",
    }
    secrets = load_config(write(tmp_path, text), environ).secrets
    assert (secrets.twilio_auth_token, secrets.slack_signing_secret) == ("tw", "ss")
    assert (secrets.slack_bot_token, secrets.slack_app_token) == ("xoxb", "xapp")
    assert secrets.api_tokens == ("one", "two")
    assert secrets.outbound_smtp_password == "relay"
    assert secrets.imap_password("legacy-helpdesk") == "own"
    assert secrets.imap_password("other") == "shared"
    assert secrets.forward_secret("l2-jira") == "whsec"


def test_secrets_never_show_in_repr() -> None:
    secrets = Secrets(twilio_auth_token="tw-secret", api_tokens=("api-secret",))
    assert "secret" not in repr(secrets).replace("Secrets", "")


def test_empty_environment_variables_count_as_unset(tmp_path: Path) -> None:
    secrets = load_config(
        write(tmp_path, ""), {"SPOC_API_TOKEN": "", "SPOC_TWILIO_AUTH_TOKEN": " "}
    ).secrets
    assert secrets.api_tokens == () and secrets.twilio_auth_token is None


def test_relative_sqlite_path_is_resolved_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(write(tmp_path, ""), {})
    assert config.database_url == f"sqlite:///{tmp_path.resolve()}/var/spoc.db"


def test_database_url_env_var_overrides_the_file(tmp_path: Path) -> None:
    url = "postgresql://spoc:pw@db.example.com/spoc"
    config = load_config(write(tmp_path, ""), {"SPOC_DATABASE_URL": url})
    assert config.database_url == url
    assert url not in repr(config)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////abs/spoc.db", "sqlite:////abs/spoc.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("sqlite+pysqlite:///var/x.db?timeout=5", "sqlite+pysqlite:////base/var/x.db?timeout=5"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ],
)
def test_resolve_sqlite_url_only_touches_relative_sqlite_paths(url: str, expected: str) -> None:
    assert resolve_sqlite_url(url, Path("/base")) == expected


def test_inert_sections_lists_configured_features_not_built_yet(tmp_path: Path) -> None:
    assert load_config(SHIPPED, {}).inert_sections() == []
    assert load_config(write(tmp_path, ""), {}).inert_sections() == []
    text = (
        '[[imap]]\nname = "m"\nhost = "h"\nusername = "u"\n[fax]\n[twilio]\nenabled = true\n'
        "[slack]\nenabled = true\n[api]\nenabled = true\n"
    )
    assert load_config(write(tmp_path, text), {}).inert_sections() == []


def test_router_settings_from_the_shipped_config() -> None:
    settings = load_config(SHIPPED, {}).router_settings()
    assert settings.ticket_prefix == "SD"
    assert settings.desk_address == "servicedesk@example.com"
    assert settings.our_addresses == {
        "servicedesk@example.com",
        "helpdesk@example.com",
        "cs@example.com",
    }
    assert settings.message_id_domain == "example.com"
    assert settings.owner_group == Group("service-desk", 1.0)
    assert Group("customer-support", 1.5) in settings.groups
    [rule] = settings.routing
    assert rule.group == "customer-support"
    assert rule.subject_matches is not None
    assert rule.subject_matches.search("Your INVOICE 42")
    assert settings.triage.category_kinds["broken_device"] is Kind.INCIDENT
    assert settings.triage.category_kinds["locked_account"] is Kind.SERVICE_REQUEST
    assert len(settings.triage.category_kinds) == len(settings.categories) == 9


def test_router_settings_builds_every_routing_condition(tmp_path: Path) -> None:
    text = """
[email]
address = "Desk@Example.COM"
message_id_domain = "mail.example.com"
[triage]
vip = ["Boss@Example.com", "+15550100"]
[[groups]]
name = "service-desk"
tier = 1
[[groups]]
name = "l2-apps"
tier = 2
[[routing]]
group = "l2-apps"
category = "sap"
kind = "service_request"
priority = "P2"
[routing.when]
channel = "phone"
recipient = "Desk@Example.com"
sender_domain = "Acme.COM"
body_matches = "SAP"
category = "app"
[[categories]]
name = "app"
description = "Applications."
[[categories]]
name = "sap"
description = "SAP."
"""
    settings = load_config(write(tmp_path, text), {}).router_settings()
    assert settings.desk_address == "desk@example.com"
    assert settings.message_id_domain == "mail.example.com"
    assert settings.triage.vip == ("boss@example.com", "+15550100")
    assert settings.routing == (
        RoutingRule(
            group="l2-apps",
            channel=Channel.PHONE,
            recipient="desk@example.com",
            sender_domain="acme.com",
            subject_matches=None,
            body_matches=re.compile("SAP"),
            when_category="app",
            set_category="sap",
            set_kind=Kind.SERVICE_REQUEST,
            set_priority="P2",
        ),
    )


def test_slack_reaction_and_user_cache_ttl_have_defaults_and_can_be_set(tmp_path: Path) -> None:
    default = load_config(write(tmp_path, "[slack]\nenabled = true\n"), {}).slack
    assert (default.reaction, default.users_cache_ttl_seconds) == ("", 3600.0)
    text = '[slack]\nreaction = "ticket"\nusers_cache_ttl_seconds = 60.0\n'
    slack = load_config(write(tmp_path, text), {}).slack
    assert (slack.reaction, slack.users_cache_ttl_seconds) == ("ticket", 60.0)


def test_slack_reaction_with_colons_or_spaces_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, '[slack]\nreaction = ":ticket:"\n')
    assert len(found) == 1 and found[0].startswith("slack.reaction:")


def test_slack_users_cache_ttl_must_be_positive(tmp_path: Path) -> None:
    found = problems(tmp_path, "[slack]\nusers_cache_ttl_seconds = 0.0\n")
    assert len(found) == 1 and found[0].startswith("slack.users_cache_ttl_seconds:")


def test_twilio_and_ivr_keys_have_defaults_and_build_the_phone_menu(tmp_path: Path) -> None:
    text = """
[twilio]
enabled = true
account_sid = "AC0123456789abcdef0123456789abcdef"
phone_number = "+12025550199"
sms_window_hours = 12
download_recordings = true
spool_dir = "spool"

[ivr]
greeting = "Hello."
max_retries = 1
default_digit = "1"
[ivr.hours]
timezone = "Europe/Berlin"
days = ["mon", "fri"]
open = "09:00"
close = "17:30"
[[ivr.options]]
digit = "1"
label = "a broken device"
category = "broken_device"
[[ivr.options]]
digit = "2"
label = "other things"
category = "other"
prompt = "Other things."
[[ivr.options.options]]
digit = "1"
label = "a person"
category = "live"
action = "dial"
number = "+12025550123"
[[categories]]
name = "broken_device"
description = "Broken hardware."
[[categories]]
name = "other"
description = "Anything else."
[[categories]]
name = "live"
description = "Talk to a person now."
"""
    config = load_config(write(tmp_path, text), {"SPOC_TWILIO_AUTH_TOKEN": "t"})
    assert config.inert_sections() == []
    assert config.secrets.twilio_auth_token == "t"
    assert config.twilio.sms_window_hours == 12
    assert config.twilio.spool_path(tmp_path) == tmp_path / "spool"
    assert config.twilio.api_base_url == "https://api.twilio.com"
    assert config.ivr is not None
    menu = config.ivr.to_menu()
    assert menu.hours.days == frozenset({0, 4})
    assert menu.option_at("21").dial_number == "+12025550123"
    assert menu.default_option().category == "broken_device"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[twilio]\naccount_sid = "abc"\n', "twilio.account_sid"),
        ('[twilio]\nphone_number = "555-0100"\n', "twilio.phone_number"),
        ("[twilio]\ndownload_recordings = true\n", "twilio"),
        ('[ivr.hours]\ntimezone = "Mars/Olympus"\n', "ivr.hours.timezone"),
        ('[ivr.hours]\nopen = "18:00"\nclose = "08:00"\n', "ivr.hours"),
        ('[ivr.hours]\nopen = "25:00"\n', "ivr.hours.open"),
        ('[ivr]\ndefault_digit = "4"\n', "ivr"),
        ('[[ivr.options]]\ndigit = "9"\nlabel = "x"\ncategory = "x"\n', "ivr"),
        (
            '[[ivr.options]]\ndigit = "1"\nlabel = "x"\ncategory = "x"\naction = "dial"\n',
            "ivr.options[0]",
        ),
    ],
)
def test_bad_twilio_and_ivr_values_name_their_key(tmp_path: Path, text: str, key: str) -> None:
    found = problems(tmp_path, text)
    assert len(found) == 1, found
    assert found[0].startswith(f"{key}:"), found


def test_acks_triage_and_reopen_settings_reach_the_router(tmp_path: Path) -> None:
    text = (
        "[tickets]\nreopen_window_days = 3.0\n"
        "[acks]\nenabled = false\nper_sender_per_hour = 2\nglobal_per_minute = 7\n"
        '[triage]\nhigh_urgency_words = ["meltdown"]\nvip = ["Boss@Example.com"]\n'
    )
    settings = load_config(write(tmp_path, text), {}).router_settings()
    assert settings.reopen_window_days == 3.0
    assert (settings.acks.enabled, settings.acks.per_sender_per_hour) == (False, 2)
    assert settings.acks.global_per_minute == 7
    assert settings.triage.high_urgency_words == ("meltdown",)
    assert settings.triage.vip == ("boss@example.com",)


def test_slack_lookup_timeout_is_bounded_by_slacks_deadline(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "[slack]\n"), {}).slack.lookup_timeout_seconds == 1.5
    assert problems(tmp_path, "[slack]\nlookup_timeout_seconds = 3.0\n")[0].startswith(
        "slack.lookup_timeout_seconds:"
    )


def test_without_an_smtp_section_the_channel_gets_its_own_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), {})
    assert config.smtp_settings() == SMTPChannelSettings(desk_address="servicedesk@example.com")


def test_every_smtp_key_reaches_the_smtp_channel_as_written(tmp_path: Path) -> None:
    text = (
        '[email]\naddress = "desk@example.net"\naliases = ["cs@example.net"]\n'
        '[smtp]\nhost = "0.0.0.0"\nport = 2600\nmax_message_bytes = 1000\n'
        "max_recipients = 7\nmax_connections = 9\nidle_timeout_seconds = 12.5\n"
        "max_connections_per_client = 3\nmax_errors = 4\ndata_timeout_seconds = 5.5\n"
    )
    settings = load_config(write(tmp_path, text), {}).smtp_settings()
    assert (settings.desk_address, settings.aliases) == ("desk@example.net", ("cs@example.net",))
    assert (settings.host, settings.port) == ("0.0.0.0", 2600)
    assert (settings.max_message_bytes, settings.max_recipients) == (1000, 7)
    assert (settings.max_connections, settings.idle_timeout_seconds) == (9, 12.5)
    assert (settings.max_connections_per_client, settings.max_errors) == (3, 4)
    assert settings.data_timeout_seconds == 5.5


def test_trusted_authserv_ids_reach_the_router_and_bad_ones_name_the_key(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[email]\ntrusted_authserv_ids = ["MX.example.com"]\n')
    assert load_config(good).router_settings().trusted_authserv_ids == ("mx.example.com",)
    bad = tmp_path / "bad.toml"
    bad.write_text('[email]\ntrusted_authserv_ids = ["not a host"]\n')
    with pytest.raises(ConfigError) as caught:
        load_config(bad)
    assert any("email.trusted_authserv_ids" in p for p in caught.value.problems)


def test_the_single_address_notice_may_only_name_its_placeholders(tmp_path: Path) -> None:
    text = '[email]\nsingle_address_notice = "Write to {address}, not {legacy}."\n'
    config = load_config(write(tmp_path, text), {})
    # The wording is the email transport's; the router only knows whether to tell at all.
    assert config.email.wording().single_address_notice == "Write to {address}, not {legacy}."
    assert config.router_settings().tell_single_address is True
    off = load_config(write(tmp_path, '[email]\nsingle_address_notice = ""\n'), {})
    assert off.email.wording().single_address_notice is None
    assert off.router_settings().tell_single_address is False
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, '[email]\nsingle_address_notice = "Hi {name}"\n'), {})
    assert any(p.startswith("email.single_address_notice") for p in caught.value.problems)


# --- [[imap]] -------------------------------------------------------------------------------

IMAP = '[[imap]]\nname = "legacy"\nhost = "imap.example.com"\nusername = "helpdesk@example.com"\n'


def test_an_imap_mailbox_gets_the_documented_defaults(tmp_path: Path) -> None:
    [mailbox] = load_config(write(tmp_path, IMAP), {}).imap
    assert (mailbox.port, mailbox.tls, mailbox.starttls) == (993, True, False)
    assert (mailbox.folder, mailbox.processed_folder, mailbox.failed_folder) == (
        "INBOX",
        "spoc/processed",
        "spoc/failed",
    )
    assert (mailbox.idle_seconds, mailbox.max_messages_per_cycle, mailbox.max_failures) == (
        540.0,
        100,
        3,
    )


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ("starttls = true\n", "imap[0]", "tls and starttls are both true"),
        ("idle_seconds = 900.0\n", "imap[0].idle_seconds", "600"),
        ('processed_folder = "INBOX"\n', "imap[0]", "must all differ"),
        ("max_failures = 0\n", "imap[0].max_failures", "greater than 0"),
        ('folder = ""\n', "imap[0].folder", "at least 1"),
    ],
)
def test_inconsistent_imap_settings_are_refused_naming_the_key(
    tmp_path: Path, extra: str, key: str, words: str
) -> None:
    [problem] = problems(tmp_path, IMAP + extra)
    assert problem.startswith(f"{key}: ") or problem.startswith(f"{key}."), problem
    assert words in problem


def test_log_format_takes_text_or_json_and_names_the_key_otherwise(tmp_path: Path) -> None:
    assert (
        load_config(write(tmp_path, '[server]\nlog_format = "json"\n'), {}).server.log_format
        == "json"
    )
    [problem] = problems(tmp_path, '[server]\nlog_format = "xml"\n')
    assert problem.startswith("server.log_format")


def test_the_http_body_budget_defaults_to_four_web_form_reports_and_takes_a_value(
    tmp_path: Path,
) -> None:
    assert load_config(write(tmp_path, ""), {}).server.max_inflight_body_bytes == 64 * 1024 * 1024
    text = "[server]\nmax_inflight_body_bytes = 8388608\n"
    assert load_config(write(tmp_path, text), {}).server.max_inflight_body_bytes == 8388608


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("3145727", "below 3145728"),  # 2 MiB per request + 1 MiB for small bodies, minus one
        ("0", "greater than 0"),
        ('"lots"', "integer"),
    ],
)
def test_an_http_body_budget_below_one_request_is_refused_naming_the_key(
    tmp_path: Path, value: str, words: str
) -> None:
    [problem] = problems(tmp_path, f"[server]\nmax_inflight_body_bytes = {value}\n")
    assert problem.startswith("server.max_inflight_body_bytes"), problem
    assert words in problem


def test_an_http_body_budget_that_cannot_take_one_web_form_report_is_refused(
    tmp_path: Path,
) -> None:
    text = (
        "[server]\nmax_inflight_body_bytes = 8388608\n"
        "[webform]\nenabled = true\nmax_attachment_bytes = 10485760\n"
    )
    [problem] = problems(tmp_path, text)
    assert problem.startswith("server.max_inflight_body_bytes (8388608)"), problem
    assert "webform.max_attachment_bytes (10485760)" in problem and "12652544" in problem
    fits = text.replace("8388608", "12652544")  # files, 1 MiB of text and more, headroom
    assert load_config(write(tmp_path, fits), {}).webform.max_attachment_bytes == 10485760
    # Disabled, the form takes no budget.
    assert load_config(write(tmp_path, text.replace("true", "false")), {})


def test_the_http_body_timeout_defaults_to_two_minutes_and_must_be_positive(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ""), {}).server.body_timeout_seconds == 120.0
    text = "[server]\nbody_timeout_seconds = 30.0\n"
    assert load_config(write(tmp_path, text), {}).server.body_timeout_seconds == 30.0
    [problem] = problems(tmp_path, "[server]\nbody_timeout_seconds = 0.0\n")
    assert problem.startswith("server.body_timeout_seconds"), problem
