"""The testing kit bot authors use: payload builders, and run_bot with signed deliveries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from framework import App, Context, GitHubAPIError, parse_event
from framework.events import (
    IssueCommentCreated,
    IssuesOpened,
    PullRequestOpened,
    PullRequestSynchronize,
    PushEvent,
)
from framework.testing import payloads, run_bot

REPO = payloads.REPO


def labeler() -> App:
    """The labeler sample, built afresh for each test."""
    app = App(name="kit-labeler")

    @app.on("issues.opened")
    async def needs_response(ctx: Context[IssuesOpened]) -> None:
        await ctx.github.post(
            f"/repos/{ctx.repo_full_name}/issues/{ctx.event.issue.number}/labels",
            json={"labels": ["needs-response"]},
        )

    return app


def failing(after: int | None = None) -> tuple[App, list[int]]:
    """A bot whose issues.opened handler raises on its first ``after`` runs (always if None)."""
    app = App(name="kit-failing")
    runs: list[int] = []

    @app.on("issues.opened")
    async def explode(ctx: Context[IssuesOpened]) -> None:
        runs.append(ctx.delivery.attempt)
        if after is None or len(runs) <= after:
            raise RuntimeError(f"boom on attempt {ctx.delivery.attempt}")

    return app, runs


# ---------------------------------------------------------------------- payload builders


def test_every_builder_makes_a_payload_the_typed_events_parse() -> None:
    built: list[tuple[str, dict[str, Any], type[Any]]] = [
        ("issues", payloads.issues_opened(), IssuesOpened),
        ("issue_comment", payloads.issue_comment_created(), IssueCommentCreated),
        ("push", payloads.push(), PushEvent),
        ("pull_request", payloads.pull_request_opened(), PullRequestOpened),
        ("pull_request", payloads.pull_request_synchronize(), PullRequestSynchronize),
    ]
    for name, payload, model in built:
        event = parse_event(name, payload)
        assert type(event) is model
        assert event.installation_id == payloads.INSTALLATION
        assert event.repository is not None
        assert event.repository.full_name == REPO
        assert event.repository.owner.login == "octo-org"
        assert event.sender is not None and event.sender.login == payloads.SENDER
        # Nothing of the example's repository or people is left, in any field or URL.
        text = json.dumps(payload)
        for leftover in ("Codertocat", "Hello-World", "Octocoders"):
            assert leftover not in text, (name, leftover)


def test_issues_opened_fills_the_issue_and_its_urls() -> None:
    payload = payloads.issues_opened(
        repo="acme/widgets", number=7, title="Crash", body="Steps...", labels=["bug"],
        installation=9, sender="hubot",
    )  # fmt: skip
    issue = payload["issue"]
    assert (issue["number"], issue["title"], issue["body"]) == (7, "Crash", "Steps...")
    assert [label["name"] for label in issue["labels"]] == ["bug"]
    assert issue["labels"][0]["url"] == "https://api.github.com/repos/acme/widgets/labels/bug"
    assert issue["url"] == "https://api.github.com/repos/acme/widgets/issues/7"
    assert issue["html_url"] == "https://github.com/acme/widgets/issues/7"
    assert issue["user"]["login"] == payload["sender"]["login"] == "hubot"
    assert issue["user"]["id"] == payload["sender"]["id"]
    assert payload["repository"]["name"] == "widgets"
    assert payload["repository"]["default_branch"] == "main"
    assert payload["organization"]["login"] == "acme"
    assert payload["installation"]["id"] == 9


def test_builders_return_fresh_dicts_and_keep_the_real_fields() -> None:
    first, second = payloads.issues_opened(), payloads.issues_opened()
    first["issue"]["title"] = "changed"
    assert second["issue"]["title"] == "Spelling error in the README file"  # the real one
    assert second["repository"]["license"] is None  # a field no builder touches, kept
    assert "installation" not in payloads.issues_opened(installation=None)


def test_a_bot_sender_is_a_bot_and_the_comment_is_its() -> None:
    payload = payloads.issue_comment_created(number=3, body="/label bug", sender="renovate[bot]")
    assert payload["sender"]["type"] == payload["comment"]["user"]["type"] == "Bot"
    assert payload["comment"]["body"] == "/label bug"
    assert payload["comment"]["user"]["url"].endswith("/users/renovate%5Bbot%5D")
    assert payload["comment"]["html_url"] == (
        f"https://github.com/{REPO}/issues/3#issuecomment-{payload['comment']['id']}"
    )
    assert payload["issue"]["number"] == 3


def test_push_lists_the_commits_and_ends_at_the_last() -> None:
    payload = payloads.push(
        ref="refs/heads/feature",
        commits=[
            {"message": "Add parser", "added": ["parser.py"]},
            {"id": payloads.sha("tip"), "message": "Fix", "modified": ["app.py"]},
        ],
    )
    event = parse_event("push", payload)
    assert isinstance(event, PushEvent)
    assert event.ref == "refs/heads/feature"
    assert [c.message for c in event.commits] == ["Add parser", "Fix"]
    assert event.commits[0].added == ["parser.py"] and event.commits[0].modified == []
    assert event.after == payloads.sha("tip") == (event.head_commit and event.head_commit.id)
    assert event.before != event.after and not event.created
    assert event.compare == (
        f"https://github.com/{REPO}/compare/{event.before[:12]}...{event.after[:12]}"
    )
    assert payloads.push()["ref"] == "refs/heads/main"


def test_pull_requests_carry_their_head_and_base() -> None:
    opened = payloads.pull_request_opened(number=5, head_sha=payloads.sha("a"), title="Fix")
    synced = payloads.pull_request_synchronize(number=5, before=payloads.sha("a"))
    pull_request = opened["pull_request"]
    assert (opened["number"], pull_request["number"], pull_request["title"]) == (5, 5, "Fix")
    assert pull_request["head"]["sha"] == payloads.sha("a")
    assert pull_request["statuses_url"].endswith(f"/statuses/{payloads.sha('a')}")
    assert pull_request["base"]["ref"] == "main"
    assert pull_request["head"]["label"] == "octo-org:changes"
    assert pull_request["head"]["repo"]["full_name"] == REPO
    assert pull_request["url"] == f"https://api.github.com/repos/{REPO}/pulls/5"
    assert synced["before"] == payloads.sha("a")
    assert synced["after"] == synced["pull_request"]["head"]["sha"] != synced["before"]


def test_the_examples_ship_inside_the_package() -> None:
    shipped = Path(payloads.__file__).parent
    for key in ("issues.opened", "issue_comment.created", "push", "pull_request.opened"):
        assert (shipped / f"{key}.json").is_file()


# ------------------------------------------------------------------------------ run_bot


async def test_a_delivery_runs_its_handlers_against_the_fake() -> None:
    async with run_bot(labeler()) as bot:
        result = await bot.receive("issues", payloads.issues_opened(number=7))
        assert (result.status_code, result.status, result.errors) == (202, "done", [])
        assert result.attempts == 1
        assert bot.fake.issue_labels(REPO, 7) == ["needs-response"]
        assert bot.fake.mint_count(payloads.INSTALLATION) == 1


async def test_deliveries_are_signed_with_the_bots_secret() -> None:
    async with run_bot(labeler()) as bot, httpx.AsyncClient() as client:
        body = json.dumps(payloads.issues_opened()).encode()
        headers = {"X-GitHub-Event": "issues", "X-GitHub-Delivery": "unsigned"}
        unsigned = await client.post(bot.url, content=body, headers=headers)
        assert unsigned.status_code == 401
        assert (await bot.receive("issues", payloads.issues_opened())).status == "done"


async def test_a_handlers_error_is_in_the_result() -> None:
    app, runs = failing()
    async with run_bot(app) as bot:
        result = await bot.receive("issues", payloads.issues_opened())
    assert (result.status_code, result.status, result.attempts) == (202, "failed", 1)
    [error] = result.errors
    assert isinstance(error, RuntimeError) and str(error) == "boom on attempt 1"
    assert runs == [1]


async def test_settings_given_to_run_bot_apply_and_retries_are_awaited() -> None:
    app, runs = failing(after=1)
    async with run_bot(app, retry_max_attempts=3, retry_backoff_seconds=0) as bot:
        result = await bot.receive("issues", payloads.issues_opened())
    assert (result.status, result.attempts, result.errors) == ("done", 2, [])
    assert runs == [1, 2]


async def test_a_scripted_github_error_fails_the_delivery() -> None:
    async with run_bot(labeler()) as bot:
        bot.fake.respond(
            "POST",
            "/repos/{owner}/{repo}/issues/{number}/labels",
            status=422,
            json={"message": "Validation Failed"},
            times=1,
        )
        failed = await bot.receive("issues", payloads.issues_opened(number=1))
        passed = await bot.receive("issues", payloads.issues_opened(number=2))
    [error] = failed.errors
    assert isinstance(error, GitHubAPIError) and error.status == 422
    assert passed.status == "done"
    assert bot.fake.issue_labels(REPO, 1) == []
    assert bot.fake.issue_labels(REPO, 2) == ["needs-response"]


async def test_duplicates_and_unwanted_events_are_reported_as_such() -> None:
    async with run_bot(labeler()) as bot:
        first = await bot.receive("issues", payloads.issues_opened(), delivery_id="d-1")
        again = await bot.receive("issues", payloads.issues_opened(), delivery_id="d-1")
        unwanted = await bot.receive("issue_comment", payloads.issue_comment_created())
        with pytest.raises(ValueError, match="pass 'issues'"):
            await bot.receive("issues.opened", payloads.issues_opened())
    assert (first.status, again.status, again.status_code) == ("done", "duplicate", 200)
    assert (unwanted.status, unwanted.status_code) == ("ignored", 202)
    assert bot.fake.mint_count() == 1  # the duplicate ran nothing


async def test_a_refused_delivery_says_why() -> None:
    async with run_bot(labeler(), webhook_max_bytes=1024) as bot:
        result = await bot.receive("issues", payloads.issues_opened())
    assert (result.status, result.status_code) == ("refused", 413)
    assert "limit" in result.answer["error"]


async def test_each_run_has_its_own_journal_and_fake_and_the_app_runs_again(
    tmp_path: Path,
) -> None:
    app = labeler()
    journals = []
    for number in (1, 2):
        async with run_bot(app) as bot:
            journal = app.settings.journal_path
            assert journal.is_file() and not journal.is_relative_to(tmp_path)  # not the cwd
            result = await bot.receive("issues", payloads.issues_opened(number=number))
            assert result.status == "done"
            assert bot.fake.mint_count() == 1  # a fresh fake: no token carried over
            journals.append(journal)
        assert not journal.parent.exists()  # removed with the run
    assert journals[0] != journals[1]


async def test_the_environment_does_not_configure_a_bot_under_test(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WEBHOOK_PATH", "/elsewhere")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:9/0")  # nothing listens there
    async with run_bot(labeler()) as bot:
        assert bot.url.endswith("/api/github/webhooks")
        assert (await bot.receive("issues", payloads.issues_opened())).status == "done"


async def test_a_serving_app_cannot_be_reconfigured() -> None:
    app = labeler()
    async with run_bot(app) as bot:
        with pytest.raises(RuntimeError, match="while the app serves"):
            app.configure(bot.app.settings)


async def test_the_installation_and_permissions_are_the_tests_to_choose() -> None:
    async with run_bot(
        labeler(), repositories=["acme/widgets"], installation=7, permissions={"issues": "read"}
    ) as bot:
        payload = payloads.issues_opened(repo="acme/widgets", installation=7)
        result = await bot.receive("issues", payload)
    [error] = result.errors
    assert isinstance(error, GitHubAPIError) and error.status == 403  # issues: read only
    assert bot.fake.mint_count(7) == 1
