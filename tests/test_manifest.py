"""The app manifest the setup page registers: defaults, app.yml, URLs (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from framework.errors import ConfigurationError
from framework.server.manifest import (
    build_manifest,
    default_manifest,
    read_app_yml,
    registration_url,
)
from framework.settings import Settings


@pytest.mark.parametrize(
    ("handler_keys", "events", "permissions"),
    [
        ([], [], {"metadata": "read"}),
        (["issues.opened"], ["issues"], {"metadata": "read", "issues": "write"}),
        (
            ["issue_comment.created", "issues.opened", "issues.closed"],
            ["issue_comment", "issues"],
            {"metadata": "read", "issues": "write"},
        ),
        (["push"], ["push"], {"metadata": "read", "contents": "read"}),
        (
            ["label.created", "issues"],  # the stronger level wins
            ["label", "issues"],
            {"metadata": "read", "issues": "write"},
        ),
        (["*", "installation.created", "ping"], [], {"metadata": "read"}),  # always sent
        (
            ["pull_request.opened", "check_run"],
            ["pull_request", "check_run"],
            {"metadata": "read", "pull_requests": "write", "checks": "write"},
        ),
    ],
)
def test_defaults_follow_the_bots_handlers(
    handler_keys: list[str], events: list[str], permissions: dict[str, str]
) -> None:
    manifest = default_manifest("bot", handler_keys)
    assert manifest["default_events"] == events
    assert manifest["default_permissions"] == permissions
    assert manifest["name"] == "bot"
    assert manifest["public"] is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("# nothing\n", {}),
        (
            "name: My Bot\ndescription: Labels\npublic: true\n",
            {"name": "My Bot", "description": "Labels", "public": True},
        ),
        (
            "default_permissions:\n  issues: write\ndefault_events: [issues]\n",
            {"default_permissions": {"issues": "write"}, "default_events": ["issues"]},
        ),
    ],
)
def test_app_yml_fields_are_read(text: str, expected: dict[str, Any]) -> None:
    assert read_app_yml(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: [unclosed", "is not valid YAML (line 1)"),
        ("- a list", "must be a mapping"),
        ("redirect_url: http://x", "unknown field 'redirect_url'"),
        ("name: ''", "name must be a non-empty string"),
        ("public: yes please", "public must be true or false"),
        ("default_events: issues", "default_events must be a list"),
        ("default_permissions: {issues: rw}", "read, write or admin"),
    ],
)
def test_a_bad_app_yml_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=r"bot/app\.yml") as raised:
        read_app_yml(text, "bot/app.yml")
    assert message in str(raised.value)


def test_app_yml_overrides_defaults_and_the_bot_sets_its_urls() -> None:
    manifest = build_manifest(
        default_manifest("labeler", ["issues.opened"]),
        {"name": "octo-labeler", "url": "https://example.com/labeler", "public": True},
        hook_url="https://smee.io/abc",
        redirect_url="http://localhost:3000/setup/callback",
        homepage="http://localhost:3000",
    )
    assert manifest == {
        "name": "octo-labeler",
        "url": "https://example.com/labeler",
        "public": True,
        "default_permissions": {"metadata": "read", "issues": "write"},
        "default_events": ["issues"],
        "hook_attributes": {"url": "https://smee.io/abc", "active": True},
        "redirect_url": "http://localhost:3000/setup/callback",
    }


def test_the_homepage_defaults_to_the_bots_url() -> None:
    manifest = build_manifest(
        default_manifest("b", []), None, hook_url="h", redirect_url="r", homepage="https://bot"
    )
    assert manifest["url"] == "https://bot"


@pytest.mark.parametrize(
    ("web", "org", "expected"),
    [
        ("https://github.com", None, "https://github.com/settings/apps/new?state=S%2F1"),
        (
            "https://github.com/",
            "octo-org",
            "https://github.com/organizations/octo-org/settings/apps/new?state=S%2F1",
        ),
        ("https://ghe.example.com", None, "https://ghe.example.com/settings/apps/new?state=S%2F1"),
    ],
)
def test_registration_url(web: str, org: str | None, expected: str) -> None:
    assert registration_url(web, "S/1", org) == expected


@pytest.mark.parametrize(
    ("values", "web", "api"),
    [
        ({}, "https://github.com", "https://api.github.com"),
        (
            {"ghe_host": "ghe.example.com"},
            "https://ghe.example.com",
            "https://ghe.example.com/api/v3",
        ),
        (
            {"ghe_host": "https://ghe.example.com/"},
            "https://ghe.example.com",
            "https://ghe.example.com/api/v3",
        ),
        (
            {"ghe_host": "ghe.example.com", "github_api_url": "https://api.ghe.example.com"},
            "https://ghe.example.com",
            "https://api.ghe.example.com",
        ),
        ({"github_web_url": "http://127.0.0.1:9/"}, "http://127.0.0.1:9", "https://api.github.com"),
    ],
)
def test_ghe_host_sets_both_urls_unless_given(
    values: dict[str, str], web: str, api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("GHE_HOST", "GITHUB_API_URL", "GITHUB_WEB_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None, **values)  # type: ignore[arg-type]
    assert (settings.github_web_url, settings.github_api_url) == (web, api)


def test_ghe_host_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GHE_HOST", "ghe.corp")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.github_api_url == "https://ghe.corp/api/v3"
