"""A labeler whose handler takes a while, for tests of draining and crash recovery."""

import asyncio
import os

from framework import App, Context
from framework.events import IssuesOpened

app = App(name="slow-labeler")


@app.on("issues.opened")
async def label_slowly(ctx: Context[IssuesOpened]) -> None:
    """Wait, then label: long enough for a test to stop or kill the process meanwhile."""
    await asyncio.sleep(float(os.environ.get("SLOW_SECONDS", "0.3")))
    await ctx.github.post(
        f"/repos/{ctx.repo_full_name}/issues/{ctx.event.issue.number}/labels",
        json={"labels": [f"by-{os.getpid()}"]},
    )
