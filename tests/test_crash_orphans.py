"""A killed bot's handler process dies with it, and a restarted bot never runs beside it.

Finding 4 of issue 15: after a SIGKILL of the receiver, its handler process kept claiming and
running work while the restarted bot ran the same deliveries again.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.support import ROOT, start_bot
from tests.test_handler_process import handler_pids
from tests.test_reliability import post_all, stop, wait_until

RECORDER = str(ROOT / "tests" / "bots" / "slow_recorder.py")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "\nState:\tZ" not in status


def finished_runs(path: Path) -> list[tuple[str, int, float]]:
    if not path.exists():
        return []
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(delivery, int(pid), float(at)) for delivery, pid, at in lines]


def test_a_killed_bots_handler_process_dies_with_it_and_nothing_finishes_twice(
    fake_url: str, tmp_path: Path
) -> None:
    runs_file = tmp_path / "runs.txt"
    env = {
        "HANDLER_PROCESSES": "1",
        "SLOW_SECONDS": "8",
        "HANDLER_CONCURRENCY": "32",
        "RUNS_FILE": str(runs_file),
    }
    bot, base = start_bot(RECORDER, fake_url, tmp_path, **env)
    try:
        post_all(base, range(1, 11))
        time.sleep(1.5)  # all ten are inside their 8-second handlers
        orphans = handler_pids(bot)
        assert orphans, "the bot has no handler process"
        assert finished_runs(runs_file) == []
        os.kill(bot.pid, signal.SIGKILL)  # the receiver only: its children are left behind
        bot.wait(10)
        # Restarted at once, as a supervisor would: it must not run beside the orphans.
        bot, base = start_bot(RECORDER, fake_url, tmp_path, **env)
        wait_until(lambda: not any(alive(pid) for pid in orphans), 5, "the orphans to die")
        wait_until(lambda: len(finished_runs(runs_file)) >= 10, 30, "ten runs after the restart")
        time.sleep(float(env["SLOW_SECONDS"]) + 1)  # any second run would have finished now
    finally:
        for pid in orphans:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        output = stop(bot)
    runs = finished_runs(runs_file)
    ids = [delivery for delivery, _, _ in runs]
    assert sorted(ids) == sorted(f"d-{n}" for n in range(1, 11)), output
    assert not {pid for _, pid, _ in runs} & set(orphans), "an orphan finished a run"
