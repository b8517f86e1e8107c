"""``python -m framework deliveries``: what the journal holds, and what GitHub could not deliver.

python -m framework deliveries list [--failed] [--limit N]
python -m framework deliveries show ID
python -m framework deliveries replay ID [--wait SECONDS]
python -m framework deliveries purge --older-than 7d
python -m framework deliveries sync --since 24h [--every 1h] [--dry-run]
python -m framework deliveries salvage

They read the same settings as the bot (``JOURNAL_PATH`` or ``REDIS_URL``; ``sync`` also the
app's ``APP_ID`` and key), and can run while the bot runs; ``salvage`` only while it does not.
A running bot sweeps as ``sync`` does by itself, every ``REDELIVERY_SYNC_INTERVAL``
(:mod:`framework.platforms.redelivery`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from framework.app import App
from framework.cli.help_text import plain
from framework.common.durations import seconds
from framework.errors import ConfigurationError
from framework.journal import Entry, Journal, Status
from framework.platforms.redelivery import sweep
from framework.settings import load_settings


def duration(text: str) -> float:
    """``90s``, ``15m``, ``24h``, ``7d``, ``2w`` (or plain seconds) as seconds.

    >>> duration("24h"), duration("7d"), duration("90")
    (86400.0, 604800.0, 90.0)
    """
    try:
        return seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def clip(text: str, width: int) -> str:
    """``text`` on one line, at most ``width`` characters, cut between words with an ellipsis.

    >>> clip("RuntimeError: the label could not be added", 30)
    'RuntimeError: the label could…'
    >>> clip("short", 30), clip("averyveryverylongword", 10)
    ('short', 'averyvery…')
    """
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    cut = flat[: width - 1]
    space = cut.rfind(" ")
    if flat[width - 1] != " " and space > width // 2:  # a word would be cut: drop it whole
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"


def _line(entry: Entry) -> str:
    return (
        f"{entry.delivery.id:<38} {entry.status.value:<8} {entry.attempts:>4}  "
        f"{_when(entry.received_at)}  {entry.delivery.key:<32} {clip(entry.last_error or '', 60)}"
    ).rstrip()


async def list_deliveries(journal: Journal, args: argparse.Namespace) -> int:
    """The newest deliveries (or only the failed ones), newest first."""
    entries = await journal.entries(Status.FAILED if args.failed else None, args.limit)
    print(
        f"{'DELIVERY':<38} {'STATUS':<8} {'RUNS':>4}  {'RECEIVED (UTC)':<19}  {'EVENT':<32} "
        "LAST ERROR"
    )
    for entry in entries:
        print(_line(entry))
    if not entries:
        print("(no deliveries)" if not args.failed else "(no failed deliveries)")
    return 0


async def _get(journal: Journal, delivery_id: str) -> Entry | None:
    entry = await journal.get(delivery_id)
    if entry is None:
        print(f"error: no delivery {delivery_id} in the journal", file=sys.stderr)
    return entry


async def show(journal: Journal, args: argparse.Namespace) -> int:
    """One delivery: its state, headers, payload, every attempt with its error, and (of one
    that is not done) the handlers that finished already."""
    entry = await _get(journal, args.id)
    if entry is None:
        return 1
    d = entry.delivery
    print(f"delivery:  {d.id}\nevent:     {d.key}\nstatus:    {entry.status.value}")
    print(f"received:  {_when(entry.received_at)} UTC\nfinished:  {_when(entry.finished_at)}")
    if entry.status is Status.PENDING and entry.not_before > time.time():
        print(f"next run:  {_when(entry.not_before)} UTC")
    print(f"installation: {d.installation_id if d.installation_id is not None else '-'}")
    print("attempts:")
    for attempt in entry.history:
        outcome = attempt.error or ("ok" if attempt.finished_at else "running")
        print(f"  {attempt.number}. {_when(attempt.started_at)} on {attempt.consumer}: {outcome}")
    if entry.handlers_done and entry.status is not Status.DONE:
        print(f"handlers done (not run again): {', '.join(sorted(entry.handlers_done))}")
    print("headers:")
    for name, value in sorted(d.headers.items()):
        print(f"  {name}: {value}")
    print("payload:")
    print(json.dumps(d.payload, indent=2, ensure_ascii=False))
    return 0


async def replay(journal: Journal, args: argparse.Namespace) -> int:
    """Run a done or failed delivery's handlers again, on the running bot; wait for the outcome."""
    entry = await _get(journal, args.id)
    if entry is None:
        return 1
    if not await journal.requeue(args.id):
        print(f"error: delivery {args.id} is {entry.status.value} already", file=sys.stderr)
        return 1
    print(f"delivery {args.id} queued to run again")
    runs_before = len(entry.history)
    deadline = time.monotonic() + args.wait
    now: Entry | None = entry
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        now = await journal.get(args.id)
        if now is None:
            break
        if now.status is Status.DONE:
            print(f"delivery {args.id} ran: done")
            return 0
        if now.status is Status.FAILED:
            print(f"delivery {args.id} failed again: {now.last_error}")
            return 1
        finished = [a for a in now.history[runs_before:] if a.finished_at and a.error]
        if finished and now.status is Status.PENDING:
            # It ran and failed; the bot retries it later, like any failed delivery.
            print(
                f"delivery {args.id} ran and failed: {finished[-1].error}; the bot runs it "
                f"again at {_when(now.not_before)} UTC (deliveries show {args.id})"
            )
            return 1
    if now is not None and now.status is Status.RUNNING:
        started = now.history[-1].started_at if now.history else None
        print(
            f"delivery {args.id} is running (since {_when(started)} UTC) and has not finished "
            f"within {args.wait:.0f} s"
        )
    else:
        print(f"delivery {args.id} has not run within {args.wait:.0f} s: is the bot running?")
    return 3


async def purge(journal: Journal, args: argparse.Namespace) -> int:
    """Delete done and failed deliveries that finished longer ago than ``--older-than``."""
    count = await journal.purge(time.time() - args.older_than)
    print(f"purged {count} finished deliveries")
    return 0


async def sync(app: App, journal: Journal, args: argparse.Namespace) -> int:
    """Find deliveries GitHub failed to deliver and the journal never stored; redeliver them."""
    while True:
        asked = await sweep(app.github, journal, time.time() - args.since, dry_run=args.dry_run)
        verb = "would ask" if args.dry_run else "asked"
        print(f"{verb} GitHub to redeliver {len(asked)} deliveries" + "".join(
            f"\n  {guid}" for guid in asked
        ))  # fmt: skip
        if args.every is None:
            return 0
        sys.stdout.flush()
        await asyncio.sleep(args.every)


Command = Callable[[App, Journal, argparse.Namespace], Awaitable[int]]


def _journal_only(
    command: Callable[[Journal, argparse.Namespace], Awaitable[int]],
) -> Command:
    async def run(_: App, journal: Journal, args: argparse.Namespace) -> int:
        return await command(journal, args)

    return run


def run(args: argparse.Namespace) -> int:
    """Open the journal named by the settings and run one ``deliveries`` command on it."""
    settings = load_settings()
    if args.action == "sync":
        missing = settings.app_credential_problems()
        if missing:
            raise ConfigurationError("sync needs the app's credentials:\n  " + "\n  ".join(missing))
    if settings.redis_url is None and not settings.journal_path.exists():
        raise ConfigurationError(
            f"no delivery journal at {settings.journal_path.resolve()} (JOURNAL_PATH): run this "
            "in the bot's directory, or set JOURNAL_PATH (or REDIS_URL) as the bot has it"
        )
    app = App(settings, name="deliveries")
    command: Command = args.command

    async def go() -> int:
        journal = await app.open_journal()
        try:
            return await command(app, journal, args)
        finally:
            await app.close()

    return asyncio.run(go())


def salvage(args: argparse.Namespace) -> int:
    """Keep what is readable of a damaged SQLite journal (the bot stopped); see
    :mod:`framework.journal.salvage`."""
    from framework.journal.salvage import salvage as salvage_journal

    settings = load_settings()
    if settings.redis_url is not None:
        print("nothing to salvage: with REDIS_URL, Redis's own persistence keeps the journal")
        return 0
    for line in salvage_journal(settings.journal_path):
        print(line)
    return 0


def add_parser(commands: Any) -> None:
    """``deliveries`` and its sub-commands, on the top-level parser."""
    top = commands.add_parser(
        "deliveries",
        help="list, show, replay, purge and sync deliveries",
        description=plain(__doc__.split("\n")[0]),
    )
    top.set_defaults(func=run, host=None, port=None)
    actions = top.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help=plain(list_deliveries.__doc__))
    listing.add_argument("--failed", action="store_true", help="only dead letters")
    listing.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    listing.set_defaults(command=_journal_only(list_deliveries))

    one = actions.add_parser("show", help=plain(show.__doc__))
    one.add_argument("id", help="the delivery id (X-GitHub-Delivery)")
    one.set_defaults(command=_journal_only(show))

    again = actions.add_parser("replay", help=plain(replay.__doc__))
    again.add_argument("id", help="the delivery id (X-GitHub-Delivery)")
    again.add_argument("--wait", type=float, default=30, help="seconds to wait for the outcome")
    again.set_defaults(command=_journal_only(replay))

    prune = actions.add_parser("purge", help=plain(purge.__doc__))
    prune.add_argument("--older-than", type=duration, required=True, help="e.g. 7d, 24h")
    prune.set_defaults(command=_journal_only(purge))

    missed = actions.add_parser("sync", help=plain(sync.__doc__))
    missed.add_argument("--since", type=duration, default=duration("24h"), help="default 24h")
    missed.add_argument("--every", type=duration, help="repeat at this interval, e.g. 15m")
    missed.add_argument("--dry-run", action="store_true", help="list them, ask for nothing")
    missed.set_defaults(command=sync)

    keep = actions.add_parser("salvage", help=salvage.__doc__)
    keep.set_defaults(func=salvage)  # on the files themselves: a damaged journal cannot open
