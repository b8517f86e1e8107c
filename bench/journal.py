"""The SQLite journal alone: CPU per delivery against the size of its group commits.

    .venv/bin/python bench/journal.py      # --batches 4,8,16,32,64 --deliveries 6000 --rounds 3

The receiver stores each delivery before its 202 and its outcome after its handlers, and the
journal's thread writes whatever is waiting in one transaction (a group commit: one
``fdatasync`` of the bodies' file and one of SQLite's write-ahead log for all of it). Under a
closed-loop load the transaction's size follows the connections: ``bench/run.py`` at 32
connections commits about 16 deliveries at a time, at 64 about 32. So the journal's cost per
delivery is a part per transaction (BEGIN, the syncs, the hand-offs between the event loop and
the journal's thread) divided by the batch, plus a part per delivery (its statements, its body's
write and checksum, its outcome). This bench measures both, without a web server or handler.

For each configuration (``--sync``: ``JOURNAL_SYNC`` full or normal; ``--ids``: delivery ids
in GitHub's order or random, see below) and each batch size, one step records ``batch``
deliveries with ``record_running`` (the receiver's hand-over) and, in the same step, records
the outcome (``complete``) of the previous step's deliveries, as the receiver's loop does under
load: the records of one group commit share their transaction with the outcomes of the one
before. Each measurement uses a fresh journal under ``bench/results/``, first filled with
``--warm`` deliveries so that its indexes are not trivially small. The figure is this process's
CPU time (user and system, every thread) per delivery; rounds interleave the configurations,
and the report gives medians and a least-squares fit of ``per delivery + per transaction /
batch``.

Delivery ids: GitHub's ``X-GitHub-Delivery`` GUIDs are version-1 UUIDs (its documentation's
example ``72d3162e-cc78-11e3-81ab-4c9367dc0958``), whose first group is the low bits of a
clock: deliveries sent one after another have ids in increasing order, and their index
entries land side by side. ``github`` makes such ids (``uuid.uuid1()``); ``random`` makes
version-4 ids, whose index entries land on a different page each.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from payload import build_payload
from run import INSTALLATION_ID, RESULTS

from framework.journal.sqlite import SQLiteJournal, Sync
from framework.webhooks.delivery import Delivery

HEADERS = {
    "host": "127.0.0.1:8000",
    "content-type": "application/json",
    "user-agent": "GitHub-Hookshot/bench",
    "x-github-event": "issues",
    "x-github-hook-id": "1",
    "x-github-hook-installation-target-type": "integration",
    "x-github-hook-installation-target-id": "1",
    "x-hub-signature-256": "sha256=" + "0" * 64,
    "content-length": "18486",
}
"""The headers a delivery is stored with: GitHub's, as the receiver keeps them."""

ID_ORDERS: dict[str, Callable[[], str]] = {
    "github": lambda: str(uuid.uuid1()),
    "random": lambda: str(uuid.uuid4()),
}


@dataclass
class Figure:
    """One measurement: a configuration, a batch size, and what one delivery cost."""

    sync: str
    ids: str
    batch: int
    round: int
    cpu_us: float
    system_us: float
    wall_us: float
    deliveries: int
    transactions: int


def _cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_stime


async def _steps(
    journal: SQLiteJournal, make_id: Callable[[], str], body: bytes, count: int, batch: int
) -> None:
    previous: list[Delivery] = []
    for _ in range(0, count, batch):
        now = [
            Delivery(make_id(), "issues", body, "opened", INSTALLATION_ID, HEADERS)
            for _ in range(batch)
        ]
        await asyncio.gather(
            *(journal.record_running(delivery, "bench", 60.0) for delivery in now),
            *(journal.complete(delivery.id, "bench") for delivery in previous),
        )
        previous = now
    await asyncio.gather(*(journal.complete(delivery.id, "bench") for delivery in previous))


async def measure(
    sync: Sync, ids: str, batch: int, count: int, warm: int, body: bytes, number: int
) -> Figure:
    """Record and finish ``count`` deliveries ``batch`` at a time in a fresh journal."""
    RESULTS.mkdir(exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="journal-bench-", dir=RESULTS))
    make_id = ID_ORDERS[ids]
    try:
        journal = await SQLiteJournal.open(directory / "journal.sqlite3", sync=sync)
        try:
            await _steps(journal, make_id, body, warm, 32)
            transactions = journal.transactions
            (cpu, system), wall = _cpu(), time.perf_counter()
            await _steps(journal, make_id, body, count, batch)
            (cpu_after, system_after), wall_after = _cpu(), time.perf_counter()
            transactions = journal.transactions - transactions
        finally:
            await journal.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    per = 1e6 / count
    return Figure(
        sync, ids, batch, number, (cpu_after - cpu) * per, (system_after - system) * per,
        (wall_after - wall) * per, count, transactions,
    )  # fmt: skip


def fit(batches: Sequence[int], costs: Sequence[float]) -> tuple[float, float]:
    """Least squares of ``cost = per_delivery + per_transaction / batch``.

    >>> fit([4, 8, 16], [30.0, 20.0, 15.0])
    (10.0, 80.0)
    """
    xs = [1 / b for b in batches]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(costs)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, costs, strict=True)) / spread
    return round(mean_y - slope * mean_x, 1), round(slope, 1)


def summarize(figures: list[Figure]) -> list[dict[str, Any]]:
    """Per configuration: the median figures of each batch size and the fit over them."""
    configs = sorted({(f.sync, f.ids) for f in figures})
    summary = []
    for sync, ids in configs:
        rows: list[dict[str, Any]] = []
        for batch in sorted({f.batch for f in figures if (f.sync, f.ids) == (sync, ids)}):
            some = [f for f in figures if (f.sync, f.ids, f.batch) == (sync, ids, batch)]
            rows.append(
                {
                    "batch": batch,
                    "cpu_us": statistics.median(f.cpu_us for f in some),
                    "system_us": statistics.median(f.system_us for f in some),
                    "wall_us": statistics.median(f.wall_us for f in some),
                    "deliveries_per_transaction": statistics.median(
                        f.deliveries / max(1, f.transactions) for f in some
                    ),
                }
            )
        per_delivery, per_transaction = (
            fit([r["batch"] for r in rows], [r["cpu_us"] for r in rows])
            if len(rows) > 1
            else (rows[0]["cpu_us"], 0.0)
        )
        summary.append(
            {
                "sync": sync,
                "ids": ids,
                "rows": rows,
                "per_delivery_us": per_delivery,
                "per_transaction_us": per_transaction,
            }
        )
    return summary


def report(summary: list[dict[str, Any]], count: int) -> str:
    """The table printed at the end."""
    lines = [f"CPU per delivery, µs (record and finish, {count} deliveries; medians)"]
    batches = sorted({row["batch"] for config in summary for row in config["rows"]})
    lines.append(
        f"  {'sync':6} {'ids':6} " + " ".join(f"{'batch ' + str(b):>9}" for b in batches)
        + "   per delivery + per transaction / batch"
    )  # fmt: skip
    for config in summary:
        cells = {row["batch"]: row for row in config["rows"]}
        lines.append(
            f"  {config['sync']:6} {config['ids']:6} "
            + " ".join(f"{cells[b]['cpu_us']:9.0f}" if b in cells else f"{'-':>9}" for b in batches)
            + f"   {config['per_delivery_us']:.0f} + {config['per_transaction_us']:.0f} / batch"
        )
    return "\n".join(lines)


def _listed(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    """An argparse type: comma-separated names, each one of ``allowed``."""

    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(allowed)}")
        return names

    return parse


def _sizes(text: str) -> list[int]:
    """An argparse type: comma-separated batch sizes, each at least 1."""
    try:
        sizes = [int(size) for size in text.split(",") if size.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: whole numbers of 1 or more, e.g. 4,16,64")
    return sizes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=_sizes, default="4,8,16,32,64", help="per step")
    parser.add_argument("--deliveries", type=int, default=6000, help="per measurement (6000)")
    parser.add_argument("--warm", type=int, default=3000, help="stored before measuring (3000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument(
        "--sync", type=_listed(("full", "normal")), default="full,normal", help="JOURNAL_SYNC"
    )
    parser.add_argument(
        "--ids", type=_listed(tuple(ID_ORDERS)), default="github,random", help="id orders"
    )
    parser.add_argument("--payload-bytes", type=int, default=18432, help="body size (18432)")
    parser.add_argument("--output", type=Path, default=RESULTS / "journal.json")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    body = build_payload(INSTALLATION_ID, args.payload_bytes)
    figures: list[Figure] = []
    for number in range(1, args.rounds + 1):
        for sync, ids, batch in itertools.product(args.sync, args.ids, args.batches):
            run = measure(sync, ids, batch, args.deliveries, args.warm, body, number)
            figures.append(asyncio.run(run))
        print(f"round {number}/{args.rounds} done", flush=True)
    summary = summarize(figures)
    print()
    print(report(summary, args.deliveries))
    args.output.write_text(
        json.dumps({"summary": summary, "figures": [asdict(f) for f in figures]}, indent=2)
    )
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
