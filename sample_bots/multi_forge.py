"""One bot, four platforms: new issues are labelled on GitHub, AtomGit and CODING, and new TAPD
stories get a comment, with the same few lines of handler code.

Each platform is served when its settings are present (``APP_ID``...; ``ATOMGIT_APP_ID``...;
``CODING_TOKEN``...; ``TAPD_API_USER``...): see the README's "Platforms" section.

    python -m framework run sample_bots/multi_forge.py
"""

from framework import App, Context

app = App(name="multi-forge")


@app.on("issues.opened")
async def triage(ctx: Context) -> None:
    """Any platform whose new issues arrive as ``issues.opened``: GitHub, AtomGit, CODING."""
    await ctx.add_labels(["needs-triage"])


@app.on("story.create", platform="tapd")
async def welcome(ctx: Context) -> None:
    """TAPD's new stories."""
    await ctx.comment("Thanks! This story is queued for triage.")
