"""Optional profiling of the bench's servers with py-spy (``bench/run.py --profile``).

py-spy samples a running process from outside. It pauses the process for each sample (with
``--nonblocking`` it would not, but then loses about a third of the samples here), so a
profiled run's figures are not quoted: run.py profiles an extra run that no summary includes.
py-spy writes collapsed stacks (``--format raw``), one line per distinct stack with its sample
count; :func:`top_frames` sums them into the functions where the samples landed (self) and the
functions on the stack (inclusive).

    .venv/bin/python bench/spy.py bench/results/profile-labeler.txt   # print the summary
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

SAMPLE_RATE = 250
_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
# Frames on (nearly) every stack: the interpreter, uvicorn and the CLI starting the loop.
_ROOTS = (
    "runpy",
    "__main__.py",
    "framework/cli/__init__.py",
    "fake_server.py",
    "uvicorn/main.py",
    "uvicorn/server.py",
    "uvicorn/_compat.py",
    "asyncio/runners.py",
    "asyncio/base_events.py",
)
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


class Recorder:
    """``py-spy record`` attached to one process until :meth:`stop`."""

    def __init__(self, py_spy: str, pid: int, output: Path) -> None:
        self.output = output
        self.process = subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                str(pid),
                "--subprocesses",  # handlers may run in child processes
                "--rate",
                str(SAMPLE_RATE),
                "--format",
                "raw",
                "--output",
                str(output),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    def stop(self) -> None:
        """Stop recording; py-spy writes the profile when interrupted."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _short(frame: str) -> str:
    """``function (path/to/module.py:12)`` → ``function (module.py)``; lines are merged."""
    matched = _FRAME.match(frame)
    if matched is None:
        return frame
    file = matched["file"]
    for marker in ("site-packages/", "/work/main/", "python3."):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{matched['function']} ({file})"


def top_frames(path: Path, limit: int = 12) -> str:
    """A table of the functions with the most samples: self, then inclusive.

    The inclusive list leaves out the frames every stack starts with (see ``_ROOTS``).
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    processes: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        matched = _LINE.match(line.strip())
        if matched is None:
            continue
        count = int(matched["count"])
        frames = [_short(f) for f in matched["stack"].split(";") if f]
        owner = None
        while frames and frames[0].startswith("process "):  # --subprocesses: parent;child
            owner = frames.pop(0)
        if owner is not None:
            processes[owner[:100]] += count
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            if not any(root in frame for root in _ROOTS):
                inclusive[frame] += count
    if not total:
        return f"{path}: no samples"
    rows = [f"{path.name}: {total} samples"]
    if len(processes) > 1:
        rows += [f"  {100 * n / total:6.1f}   {name}" for name, n in processes.most_common()]
    rows.append("  self %   function")
    rows += [f"  {100 * n / total:6.1f}   {name}" for name, n in own.most_common(limit)]
    rows.append("  incl %   function")
    rows += [f"  {100 * n / total:6.1f}   {name}" for name, n in inclusive.most_common(limit)]
    return "\n".join(rows)


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        print(top_frames(Path(argument), limit=25))
