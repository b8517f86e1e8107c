"""Two handlers for one event: one comments at once, one labels after a while (for tests that
kill the bot between the two)."""

import asyncio
import os

from framework import App, Context
from framework.events import IssuesOpened

app = App(name="comment-and-slow-label")


@app.on("issues.opened")
async def comment(ctx: Context[IssuesOpened]) -> None:
    """Comment at once."""
    await ctx.github.post(
        f"/repos/{ctx.repo_full_name}/issues/{ctx.event.issue.number}/comments",
        json={"body": "thanks"},
    )


@app.on("issues.opened")
async def label_slowly(ctx: Context[IssuesOpened]) -> None:
    """Wait, then label: long enough for a test to kill the process meanwhile."""
    await asyncio.sleep(float(os.environ.get("SLOW_SECONDS", "0.3")))
    await ctx.github.post(
        f"/repos/{ctx.repo_full_name}/issues/{ctx.event.issue.number}/labels",
        json={"labels": ["slow"]},
    )
