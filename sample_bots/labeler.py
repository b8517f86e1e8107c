"""The GitHub "first app" tutorial: every newly opened issue gets the label needs-response.

Run it with ``python -m framework run sample_bots/labeler.py`` (settings in ``.env``).
"""

from framework import App, Context
from framework.events import IssuesOpened

app = App(name="labeler")


@app.on("issues.opened")
async def needs_response(ctx: Context[IssuesOpened]) -> None:
    """Label the new issue so the team knows it awaits a first response."""
    await ctx.github.post(
        f"/repos/{ctx.repo_full_name}/issues/{ctx.event.issue.number}/labels",
        json={"labels": ["needs-response"]},
    )
