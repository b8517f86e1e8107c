"""The fake GitHub lists an issue's comments (so "look for your earlier comment first" can be
tested) and says so when a route is one it does not implement."""

from __future__ import annotations

from framework import App, Context
from framework.errors import NotFound
from framework.testing import payloads, run_bot

REPO = "octo-org/hello"


def commenting_bot() -> App:
    app = App(name="welcome")

    @app.on("issues.opened")
    async def welcome(ctx: Context) -> None:
        path = f"/repos/{ctx.repo_full_name}/issues/{ctx.payload['issue']['number']}/comments"
        earlier = [c async for c in ctx.github.paginate(path)]
        if any(c["user"]["type"] == "Bot" and "Welcome" in c["body"] for c in earlier):
            return  # this delivery ran before (a retry, a redelivery): do not comment twice
        await ctx.github.post(path, json={"body": "Welcome!"})

    return app


async def test_a_bot_finds_its_earlier_comment_and_does_not_repeat_it() -> None:
    async with run_bot(commenting_bot()) as bot:
        bot.fake.add_issue_comment(REPO, 7, "Me too", user="octocat")
        first = await bot.receive("issues", payloads.issues_opened(number=7))
        again = await bot.receive("issues", payloads.issues_opened(number=7))
        listed = bot.fake.calls_to("GET", f"/repos/{REPO}/issues/7/comments")
    assert (first.status, again.status) == ("done", "done")
    assert bot.fake.issue_comments(REPO, 7) == ["Me too", "Welcome!"]
    assert [c.status for c in listed] == [200, 200]


async def test_an_earlier_comment_seeded_as_the_app_counts() -> None:
    async with run_bot(commenting_bot()) as bot:
        bot.fake.add_issue_comment(REPO, 8, "Welcome! (from an earlier run)")
        assert (await bot.receive("issues", payloads.issues_opened(number=8))).status == "done"
    assert bot.fake.issue_comments(REPO, 8) == ["Welcome! (from an earlier run)"]


async def test_listing_comments_needs_read_access_to_issues() -> None:
    app = commenting_bot()
    async with run_bot(app, permissions={"metadata": "read"}) as bot:
        result = await bot.receive("issues", payloads.issues_opened(number=9))
    assert result.status == "failed"
    assert "Resource not accessible by integration" in str(result.errors[0])


async def test_a_route_the_fake_lacks_says_so_and_how_to_script_it() -> None:
    app = App(name="milestones")

    @app.on("issues.opened")
    async def milestones(ctx: Context) -> None:
        await ctx.github.get(f"/repos/{ctx.repo_full_name}/milestones")

    async with run_bot(app) as bot:
        result = await bot.receive("issues", payloads.issues_opened())
    [error] = result.errors
    assert isinstance(error, NotFound)  # still GitHub's status, so the bot's code path is real
    message = str(error)
    assert f"the fake GitHub has no route GET /repos/{REPO}/milestones" in message
    assert "fake.respond('GET'" in message and "@fake.route" in message
