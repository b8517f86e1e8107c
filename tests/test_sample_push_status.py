"""sample_bots/push_status.py, tested as a bot author would: with framework.testing only."""

from __future__ import annotations

from framework import GitHubAPIError
from framework.testing import payloads, run_bot
from sample_bots.push_status import app

REPO = payloads.REPO


async def test_a_push_marks_its_head_commit_successful() -> None:
    push = payloads.push(
        commits=[
            {"message": "Add parser", "added": ["parser.py"]},
            {"message": "Use the parser", "modified": ["app.py"]},
        ]
    )
    async with run_bot(app) as bot:
        result = await bot.receive("push", push)
    assert result.status == "done", result.errors
    [status] = bot.fake.commit_statuses(REPO, push["after"])
    assert (status["state"], status["context"], status["description"]) == (
        "success",
        "wip",
        "ready",
    )
    assert bot.fake.commit_statuses(REPO, push["commits"][0]["id"]) == []  # the head only


async def test_a_push_with_unfinished_commits_fails_its_head_commit() -> None:
    push = payloads.push(
        commits=[
            {"id": payloads.sha("wip"), "message": "WIP: half a parser"},
            {"message": "fixup! WIP: half a parser"},
            {"message": "Finish the parser"},
        ]
    )
    async with run_bot(app) as bot:
        await bot.receive("push", push)
    [status] = bot.fake.commit_statuses(REPO, push["after"])
    assert status["state"] == "failure"
    assert status["description"].startswith(f"unfinished commits: {payloads.sha('wip')[:7]}, ")


async def test_a_deleted_branch_gets_no_status() -> None:
    push = payloads.push(ref="refs/heads/old", commits=[])
    push.update(deleted=True, after="0" * 40)
    async with run_bot(app) as bot:
        result = await bot.receive("push", push)
    assert result.status == "done"
    assert [c for c in bot.fake.calls if "/statuses/" in c.path] == []


async def test_an_opened_pull_request_gets_a_check_run_on_its_head() -> None:
    head = payloads.sha("feature tip")
    async with run_bot(app) as bot:
        result = await bot.receive(
            "pull_request", payloads.pull_request_opened(number=4, head_sha=head, title="Parser")
        )
    assert result.status == "done", result.errors
    [run] = bot.fake.check_runs(REPO)
    assert (run["name"], run["head_sha"], run["status"], run["conclusion"]) == (
        "wip",
        head,
        "completed",
        "success",
    )


async def test_new_commits_on_a_wip_pull_request_fail_the_new_head() -> None:
    before, after = payloads.sha("old tip"), payloads.sha("new tip")
    synchronize = payloads.pull_request_synchronize(
        number=4, before=before, after=after, title="WIP: parser"
    )
    async with run_bot(app) as bot:
        await bot.receive("pull_request", synchronize)
    assert bot.fake.check_runs(REPO, head_sha=before) == []
    [run] = bot.fake.check_runs(REPO, head_sha=after)
    assert run["conclusion"] == "failure"
    assert run["output"]["title"] == "Work in progress"


async def test_without_the_statuses_permission_the_push_fails_visibly() -> None:
    async with run_bot(app, permissions={"contents": "read", "checks": "write"}) as bot:
        result = await bot.receive("push", payloads.push())
    assert result.status == "failed"
    [error] = result.errors
    assert isinstance(error, GitHubAPIError) and error.status == 403
