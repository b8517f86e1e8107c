"""A bot whose handler takes a while and notes each run it finishes in a file.

``RUNS_FILE`` gets one line per finished run: the delivery id, the pid and the time, so a
test can tell which process ran what, and when.
"""

import asyncio
import os
import time

from framework import App, Context

app = App(name="slow-recorder")


@app.on("issues.opened")
async def record_slowly(ctx: Context) -> None:
    """Wait ``SLOW_SECONDS``, then note the run."""
    await asyncio.sleep(float(os.environ.get("SLOW_SECONDS", "0.3")))
    await asyncio.to_thread(note, f"{ctx.delivery_id} {os.getpid()} {time.time()}\n")


def note(line: str) -> None:
    with open(os.environ["RUNS_FILE"], "a") as runs:
        runs.write(line)
