"""Footprint: how long the labeler takes from start to ``/healthz`` 200, and what it holds idle.

    .venv/bin/python bench/footprint.py            # --rounds 5 --idle 3

Starts, in turn, the floor receiver (``bench/floor.py``: uvicorn and one Starlette route, the
least a webhook receiver is) and the labeler (``python -m framework run sample_bots/labeler.py``)
with ``HANDLER_PROCESSES`` 1 and 0 (the default follows the CPUs: see bench/README.md), and
with 0 and no redelivery sweep (``REDELIVERY_SYNC_INTERVAL=0``: the sweep right after start-up
is what first needs the HTTP client), each against the bench's fake GitHub. For each
start it records the wall time from ``Popen`` until ``GET /healthz`` answers 200 (the floor
has no such route: until it answers HTTP at all), then, after ``--idle`` seconds without
traffic, the resident memory (VmRSS) summed over the process and every process it started.
The rounds interleave the targets, so a machine that slows down slows them all; the figures
are min / median / max, and the labeler's ratios to the floor, round by round.

Issue 14's targets: start-up to ``/healthz`` at most 1 s on an idle machine, idle RSS of the
whole bot at most 80 MiB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import (
    APP_ID,
    BENCH,
    Servers,
    free_port,
    http_get,
    process_tree,
    start_fake_github,
)

POLL_SECONDS = 0.005
START_TIMEOUT = 30.0


def rss_mib(pid: int) -> float:
    """Resident memory now (VmRSS, MiB), summed over ``pid`` and its descendants."""
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
    return total


def time_to_ready(servers: Servers, name: str, argv: list[str], env: dict[str, str],
                  path: str) -> tuple[float, int]:  # fmt: skip
    """Start a server; seconds until ``GET path`` answers 200, and its pid."""
    port = free_port()
    started = time.monotonic()
    server = servers.start(name, argv, {**env, "PORT": str(port)}, port, None)
    deadline = started + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{name} exited while starting:\n{server.log_tail()}")
        with contextlib.suppress(OSError):
            status = http_get(server.url + path, timeout=1.0)[0]
            if status == 200 or (path == "/" and status < 500):  # the floor serves no GET
                return time.monotonic() - started, server.process.pid
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"{name} did not answer {path} within {START_TIMEOUT:.0f} s")


def spread(values: Sequence[float]) -> str:
    return f"{min(values):7.2f} {statistics.median(values):7.2f} {max(values):7.2f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle", type=float, default=3.0, help="seconds idle before RSS")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)

    python = sys.executable
    figures: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="footprint-") as scratch:
        servers = Servers(Path(scratch))
        try:
            fake, private_pem = start_fake_github(servers, "Codertocat/Hello-World", None)
            time.sleep(1.0)
            bot = {
                "APP_ID": str(APP_ID),
                "PRIVATE_KEY": private_pem,
                "WEBHOOK_SECRET": "footprint",
                "GITHUB_API_URL": fake.url,
                "HOST": "127.0.0.1",
                "LOG_LEVEL": "warning",
            }
            targets = {
                "floor": ([python, str(BENCH / "floor.py")], {"WEBHOOK_SECRET": "footprint",
                          "HOST": "127.0.0.1"}, "/"),
                "labeler": ([python, "-m", "framework", "run", "sample_bots/labeler.py"],
                            {**bot, "HANDLER_PROCESSES": "1"}, "/healthz"),
                "labeler, in-process handlers": (
                    [python, "-m", "framework", "run", "sample_bots/labeler.py"],
                    {**bot, "HANDLER_PROCESSES": "0"}, "/healthz"),
                "labeler, in-process, no sweep": (
                    [python, "-m", "framework", "run", "sample_bots/labeler.py"],
                    {**bot, "HANDLER_PROCESSES": "0", "REDELIVERY_SYNC_INTERVAL": "0"},
                    "/healthz"),
            }  # fmt: skip
            for round_number in range(1, args.rounds + 1):
                for index, (name, (command, env, path)) in enumerate(targets.items()):
                    journal = Path(scratch) / f"journal-{round_number}-{index}.sqlite3"
                    seconds, pid = time_to_ready(
                        servers, name, command, {**env, "JOURNAL_PATH": str(journal)}, path
                    )
                    time.sleep(args.idle)
                    rss = rss_mib(pid)
                    entry = figures.setdefault(name, {"start_s": [], "idle_rss_mib": []})
                    entry["start_s"].append(seconds)
                    entry["idle_rss_mib"].append(rss)
                    servers.started[-1].process.send_signal(2)
                    servers.started[-1].process.wait(timeout=30)
                    print(f"round {round_number} {name:<30} {seconds:6.3f} s {rss:7.1f} MiB")
        finally:
            servers.stop_all()
    print(f"\n{'':<30} {'start to /healthz, s':>23}   {'idle RSS, MiB':>23}")
    print(f"{'':<30} {'min  median     max':>23}   {'min  median     max':>23}")
    for name, entry in figures.items():
        print(f"{name:<30} {spread(entry['start_s'])}   {spread(entry['idle_rss_mib'])}")
    floor = figures["floor"]
    for name in [name for name in figures if name != "floor"]:
        starts = [a / b for a, b in zip(figures[name]["start_s"], floor["start_s"], strict=True)]
        rss = [a / b for a, b in zip(figures[name]["idle_rss_mib"], floor["idle_rss_mib"],
                                     strict=True)]  # fmt: skip
        print(f"{name + ' / floor':<30} {spread(starts)}   {spread(rss)}  (ratios by round)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
