"""The ``[dashboard]`` and ``[webform]`` sections and their secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config

SHIPPED = Path(__file__).resolve().parents[3] / "config.toml"


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path, {})
    return raised.value.problems


def test_the_shipped_config_has_the_dashboard_on_and_the_form_off() -> None:
    config = load_config(SHIPPED, {})

    assert config.dashboard.enabled and config.dashboard.session_hours == 12
    assert not config.webform.enabled and config.webform.max_reports_per_hour == 5


def test_webform_categories_and_limits_are_read(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        "[webform]\nenabled = true\nmax_attachments = 0\n"
        '[[webform.categories]]\nname = "printer"\nlabel = "A printer"\n',
        encoding="utf-8",
    )

    form = load_config(path, {}).webform

    assert form.enabled and form.max_attachments == 0
    assert [(c.name, c.label) for c in form.categories] == [("printer", "A printer")]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[webform]\nmax_reports_per_hour = 0\n", "webform.max_reports_per_hour:"),
        ("[webform]\nmax_attachments = 21\n", "webform.max_attachments:"),
        ("[dashboard]\npage_size = 1\n", "dashboard.page_size:"),
        ("[dashboard]\nsession_hours = 0\n", "dashboard.session_hours:"),
        ('[[webform.categories]]\nname = "x"\n', "webform.categories[0].label: required"),
    ],
)
def test_a_bad_value_names_its_key(tmp_path: Path, text: str, problem: str) -> None:
    [found] = problems(tmp_path, text)

    assert found.startswith(problem), found


@pytest.mark.parametrize(
    ("key", "variable"),
    [
        ("password", "SPOC_DASHBOARD_PASSWORD_HASH"),
        ("password_hash", "SPOC_DASHBOARD_PASSWORD_HASH"),
        ("secret", "SPOC_DASHBOARD_SECRET"),
    ],
)
def test_a_dashboard_secret_in_the_file_is_refused_naming_its_variable(
    tmp_path: Path, key: str, variable: str
) -> None:
    [found] = problems(tmp_path, f'[dashboard]\n{key} = "hunter2"\n')

    assert found.startswith(f"dashboard.{key}: secrets are not read from the config file")
    assert variable in found and "hunter2" not in found


def test_the_dashboard_secrets_come_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("", encoding="utf-8")
    environ = {"SPOC_DASHBOARD_SECRET": "s3", "SPOC_DASHBOARD_PASSWORD_HASH": "$argon2id$x"}

    secrets = load_config(path, environ).secrets

    assert secrets.dashboard_secret == "s3"
    assert secrets.dashboard_password_hash == "$argon2id$x"
    assert "s3" not in repr(secrets)
