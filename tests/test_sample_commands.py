"""sample_bots/commands.py, tested as a bot author would: with framework.testing only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from framework.testing import RunningBot, payloads, run_bot
from sample_bots.commands import app, labels_asked

REPO = payloads.REPO
CONFIG = "allowed_labels: [bug, Good First Issue]\n"
LABELS = f"/repos/{REPO}/issues/7/labels"


@pytest.fixture
async def bot() -> AsyncIterator[RunningBot]:
    """The bot, with commands.yml in the repository and one collaborator of each role."""
    async with run_bot(app) as bot:
        bot.fake.add_file(REPO, ".github/commands.yml", CONFIG)
        bot.fake.add_collaborator(REPO, "maintainer", "maintain")
        bot.fake.add_collaborator(REPO, "reader", "read")
        yield bot


def comment(body: str, sender: str = "maintainer") -> dict[str, Any]:
    return payloads.issue_comment_created(number=7, body=body, sender=sender)


def test_commands_are_read_one_per_line() -> None:
    assert labels_asked("/label bug") == ["bug"]
    assert labels_asked("LGTM\n/label  good first issue \n/label") == ["good first issue"]
    assert labels_asked("please /label bug") == []  # a command starts its line


async def test_a_collaborator_labels_with_an_allowed_label(bot: RunningBot) -> None:
    result = await bot.receive("issue_comment", comment("Confirmed.\n/label bug"))
    assert result.status == "done", result.errors
    assert bot.fake.issue_labels(REPO, 7) == ["bug"]
    [asked] = bot.fake.calls_to("GET", f"/repos/{REPO}/collaborators/maintainer/permission")
    assert asked.status == 200


async def test_labels_compare_case_insensitively_and_keep_the_configured_name(
    bot: RunningBot,
) -> None:
    await bot.receive("issue_comment", comment("/label good first issue\n/label BUG"))
    assert bot.fake.issue_labels(REPO, 7) == ["Good First Issue", "bug"]


async def test_a_label_the_configuration_does_not_allow_does_nothing(bot: RunningBot) -> None:
    result = await bot.receive("issue_comment", comment("/label wontfix"))
    assert result.status == "done", result.errors
    assert bot.fake.calls_to("POST", LABELS) == []
    assert bot.fake.issue_labels(REPO, 7) == []


async def test_only_the_allowed_labels_of_a_comment_are_added(bot: RunningBot) -> None:
    await bot.receive("issue_comment", comment("/label wontfix\n/label bug"))
    [call] = bot.fake.calls_to("POST", LABELS)
    assert call.json == {"labels": ["bug"]}


async def test_a_comment_by_a_non_collaborator_does_nothing(bot: RunningBot) -> None:
    result = await bot.receive("issue_comment", comment("/label bug", sender="passer-by"))
    assert result.status == "done", result.errors
    [asked] = bot.fake.calls_to("GET", f"/repos/{REPO}/collaborators/passer-by/permission")
    assert asked.status == 404
    assert bot.fake.calls_to("POST", LABELS) == []


async def test_a_collaborator_who_may_only_read_does_nothing(bot: RunningBot) -> None:
    await bot.receive("issue_comment", comment("/label bug", sender="reader"))
    assert bot.fake.calls_to("POST", LABELS) == []


async def test_a_comment_by_a_bot_does_nothing(bot: RunningBot) -> None:
    bot.fake.add_collaborator(REPO, "deployer[bot]", "admin")
    result = await bot.receive("issue_comment", comment("/label bug", sender="deployer[bot]"))
    assert result.status == "done", result.errors
    assert bot.fake.calls == []  # not even a token was minted


async def test_without_a_configuration_no_label_is_allowed() -> None:
    async with run_bot(app) as bot:
        bot.fake.add_collaborator(REPO, "maintainer", "admin")
        result = await bot.receive("issue_comment", comment("/label bug"))
    assert result.status == "done", result.errors
    assert bot.fake.calls_to("POST", LABELS) == []


async def test_a_comment_without_a_command_asks_github_nothing(bot: RunningBot) -> None:
    await bot.receive("issue_comment", comment("Thanks, looking into it."))
    assert bot.fake.calls == []
