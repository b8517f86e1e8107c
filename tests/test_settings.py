"""Settings: Probot's variable names, .env files, and one clear line per problem."""

import logging
import os
from pathlib import Path

import pytest
from uvicorn.config import LOG_LEVELS

from framework.errors import ConfigurationError
from framework.observe.log import configure_logging
from framework.server.serving import uvicorn_config
from framework.settings import (
    Settings,
    default_handler_processes,
    load_settings,
    usable_cpus,
)
from framework.testing import generate_app_key

PEM, _ = generate_app_key("settings")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [
        "APP_ID",
        "CLIENT_ID",
        "PRIVATE_KEY",
        "PRIVATE_KEY_PATH",
        "WEBHOOK_SECRET",
        "WEBHOOK_PATH",
        "PORT",
        "HOST",
        "LOG_LEVEL",
        "LOG_FORMAT",
        "GITHUB_API_URL",
    ]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_follow_probot() -> None:
    s = Settings()
    assert (s.webhook_path, s.port, s.github_api_url) == (
        "/api/github/webhooks",
        3000,
        "https://api.github.com",
    )
    assert (s.log_level, s.log_format) == ("info", "pretty")


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ID", "123")
    monkeypatch.setenv("PORT", "8080")
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    monkeypatch.setenv("GITHUB_API_URL", "https://ghes.example.com/api/v3/")
    s = load_settings()
    assert (s.app_id, s.port, s.log_format) == ("123", 8080, "json")
    assert s.github_api_url == "https://ghes.example.com/api/v3"


def test_dot_env_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("APP_ID=77\nWEBHOOK_SECRET=from-dotenv\n")
    s = load_settings()
    assert s.app_id == "77"
    assert s.webhook_secrets() == ["from-dotenv"]


def test_invalid_values_give_one_line_each_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PORT", "eighty")
    monkeypatch.setenv("LOG_FORMAT", "xml")
    monkeypatch.setenv("WEBHOOK_PATH", "hooks")
    with pytest.raises(ConfigurationError) as err:
        load_settings()
    lines = str(err.value).splitlines()[1:]
    assert len(lines) == 3
    assert {line.split(":")[0].strip() for line in lines} == {"PORT", "LOG_FORMAT", "WEBHOOK_PATH"}


def test_serving_problems_name_each_missing_variable() -> None:
    problems = Settings().problems_for_serving()
    assert [p.split(" ")[0] for p in problems] == ["WEBHOOK_SECRET", "APP_ID", "PRIVATE_KEY"]


def test_the_insecure_flag_lifts_only_the_secret_requirement() -> None:
    s = Settings(allow_unsigned_webhooks=True, app_id="1", private_key=PEM)
    assert s.problems_for_serving() == []


def test_secrets_are_hidden_in_repr() -> None:
    s = Settings(
        webhook_secret="topsecret", private_key="-----BEGIN KEY", webhook_secret_previous="old"
    )
    assert "topsecret" not in repr(s) and "BEGIN" not in repr(s) and "old'" not in repr(s)
    assert s.webhook_secrets() == ["topsecret", "old"]


def problems(**env: str) -> list[str]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        with pytest.raises(ConfigurationError) as err:
            load_settings(problems=Settings.problems_for_serving)
    lines = str(err.value).splitlines()
    assert lines[0] == "cannot start:"
    return [line.strip() for line in lines[1:]]


def test_an_invalid_port_does_not_hide_the_missing_credentials() -> None:
    found = problems(PORT="abc", LOG_FORMAT="xml")
    assert [line.split(" ")[0].rstrip(":") for line in found] == [
        "PORT", "LOG_FORMAT", "WEBHOOK_SECRET", "APP_ID", "PRIVATE_KEY",
    ]  # fmt: skip


def test_a_non_numeric_app_id_and_a_blank_secret_are_refused_with_the_rest() -> None:
    found = problems(APP_ID="abc", WEBHOOK_SECRET="   ", PRIVATE_KEY="nonsense")
    assert [line.split(" ")[0].rstrip(":") for line in found] == [
        "APP_ID", "WEBHOOK_SECRET", "PRIVATE_KEY",
    ]  # fmt: skip
    assert "CLIENT_ID" in found[0] and "whitespace" in found[1]
    assert "does not hold a PEM private key" in found[2]
    assert "nonsense" not in "".join(found)


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_text(PEM)
    found = problems(APP_ID="1", WEBHOOK_SECRET="s", PRIVATE_KEY=PEM, PRIVATE_KEY_PATH="key.pem")
    assert found == [
        "PRIVATE_KEY and PRIVATE_KEY_PATH are both set: keep one (PRIVATE_KEY would be used "
        "and the file ignored)"
    ]


def test_a_pem_pasted_unquoted_into_dot_env_gets_a_hint(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"APP_ID=1\nWEBHOOK_SECRET=s\nPRIVATE_KEY={PEM.strip()}\n")
    [found] = problems()
    assert "holds only the first line of a PEM key" in found
    assert "double quotes" in found and "PRIVATE_KEY_PATH" in found
    (tmp_path / ".env").write_text(f'APP_ID=1\nWEBHOOK_SECRET=s\nPRIVATE_KEY="{PEM.strip()}"\n')
    quoted = load_settings(problems=Settings.problems_for_serving)  # as the hint says: fine
    assert quoted.app_id == "1"


def test_valid_settings_pass_the_serving_check() -> None:
    settings = load_settings(
        problems=Settings.problems_for_serving, app_id=" 42 ", webhook_secret="s", private_key=PEM
    )
    assert settings.app_id == "42"


@pytest.mark.parametrize(
    ("given", "name", "level"),
    [
        ("trace", "trace", 5),  # Probot's; uvicorn's too
        ("debug", "debug", logging.DEBUG),
        ("info", "info", logging.INFO),
        ("warn", "warning", logging.WARNING),  # Probot's
        ("warning", "warning", logging.WARNING),
        ("error", "error", logging.ERROR),
        ("fatal", "critical", logging.CRITICAL),  # Probot's
        ("critical", "critical", logging.CRITICAL),
        ("WARN", "warning", logging.WARNING),
        (" Debug ", "debug", logging.DEBUG),
    ],
)
def test_log_level_takes_probots_spellings_and_pythons(
    monkeypatch: pytest.MonkeyPatch, given: str, name: str, level: int
) -> None:
    monkeypatch.setenv("LOG_LEVEL", given)
    settings = load_settings()  # LOG_LEVEL=warn used to stop the bot here
    assert settings.log_level == name
    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    try:
        configure_logging(settings.log_level, settings.log_format)
        assert root.level == level
    finally:
        root.setLevel(before[0])
        root.handlers[:] = before[1]
    # uvicorn knows the name too (it would refuse warn or fatal at start-up).
    assert LOG_LEVELS[uvicorn_config(object(), settings).log_level] == level


@pytest.mark.parametrize("given", ["loud", "warnings", "5", ""])
def test_an_unknown_log_level_names_both_spellings(
    monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.setenv("LOG_LEVEL", given)
    with pytest.raises(ConfigurationError) as err:
        load_settings()
    assert "LOG_LEVEL" in str(err.value)
    assert "trace, debug, info, warn, error or fatal (or warning, critical)" in str(err.value)


@pytest.mark.parametrize(
    ("cpus", "expected"),
    [(1, 0), (2, 0), (3, 0), (4, 1), (8, 1), (64, 1)],
)
def test_handlers_get_their_own_process_by_default_only_with_cores_to_spare(
    cpus: int, expected: int
) -> None:
    assert default_handler_processes(cpus) == expected


def test_the_handler_process_default_follows_the_cpus_this_process_may_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HANDLER_PROCESSES", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0}, raising=False)
    assert Settings().handler_processes == 0
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(6)), raising=False)
    assert Settings().handler_processes == 1


def test_without_an_affinity_the_machines_cpus_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert usable_cpus() == 8
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert usable_cpus() == 1


@pytest.mark.parametrize("given", ["0", "1", "3"])
def test_an_explicit_handler_processes_wins_over_the_cpus(
    monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.setenv("HANDLER_PROCESSES", given)
    for cpus in ({0}, set(range(16))):
        monkeypatch.setattr(os, "sched_getaffinity", lambda _, c=cpus: c, raising=False)
        assert Settings().handler_processes == int(given)


def test_an_invalid_handler_processes_is_named_beside_the_other_problems() -> None:
    found = problems(HANDLER_PROCESSES="-1")
    assert [line.split(" ")[0].rstrip(":") for line in found] == [
        "HANDLER_PROCESSES", "WEBHOOK_SECRET", "APP_ID", "PRIVATE_KEY",
    ]  # fmt: skip
