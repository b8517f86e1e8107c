"""A bot that appends each delivery's id to the file named by RECORD_TO (for process tests)."""

import os
from pathlib import Path

from framework import App, Context

app = App(name="recording")


@app.on_any
def record(ctx: Context) -> None:  # a plain handler runs in a thread: blocking is fine
    with Path(os.environ["RECORD_TO"]).open("a") as out:
        out.write(ctx.delivery_id + "\n")
