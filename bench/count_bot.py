"""The bench's counting bot: one handler for ``issues.opened`` that only counts.

The acknowledgement target of issue 14 loads a bot whose handler does no API call, so what is
measured is the framework's own path (verify, journal, run, finish) against the floor
and Probot. ``python -m framework run bench/count_bot.py``.
"""

from framework import App, Context

app = App(name="count")
handled = 0


@app.on("issues.opened")
async def count(ctx: Context) -> None:
    """Count the delivery; nothing else."""
    global handled
    handled += 1
