"""``python -m framework``: serve a bot, or run its handlers once on a saved payload.

python -m framework run sample_bots/labeler.py
python -m framework receive --event issues --payload issue.json sample_bots/labeler.py
python -m framework deliveries list --failed
python -m framework tunnel https://smee.io/CHANNEL
python -m framework login github
python -m framework users list
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from framework.cli import deliveries as deliveries_cli
from framework.cli import login as login_cli
from framework.cli import tunnel as tunnel_cli
from framework.cli import users as users_cli
from framework.cli.help_text import plain
from framework.cli.loader import load_app
from framework.common.collector import tune_for_serving
from framework.dispatch.routing import check_event_key
from framework.errors import ConfigurationError, FrameworkError
from framework.journal.sqlite import unwritable
from framework.observe import metrics
from framework.observe.log import configure_logging
from framework.platforms import ALL_EVENTS
from framework.server.setup import awaiting_registration
from framework.settings import Settings, load_settings

logger = logging.getLogger("framework")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _settings(
    args: argparse.Namespace, *, problems: Callable[[Settings], list[str]] | None = None
) -> Settings:
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    return load_settings(problems=problems, **overrides)


def _serving_problems(settings: Settings) -> list[str]:
    # Without any app credentials (and not in production) the setup page serves instead.
    found = [] if awaiting_registration(settings) else settings.problems_for_serving()
    # A missing or read-only volume: one line, not a traceback at the journal's first write.
    journal = None if settings.redis_url else unwritable(settings.journal_path)
    return [*found, journal] if journal else found


def run(args: argparse.Namespace) -> int:
    """Serve the bot until SIGINT/SIGTERM, then drain running handlers."""
    from framework.server.serving import DrainingServer, uvicorn_config

    settings = _settings(args, problems=_serving_problems)  # every problem at once, or none
    setup = awaiting_registration(settings)  # no app yet: serve the setup page (GET /)
    configure_logging(settings.log_level, settings.log_format)
    if settings.handler_processes:  # before any metric exists: the handler processes add theirs
        metrics.use_directory(None)
    app = load_app(args.bot)
    app.configure(settings)
    if setup:
        # Handlers run in this process until the next start, so the app registered on the
        # page is used at once.
        logger.warning(
            "no GitHub App credentials: open http://localhost:%d/ to register the app",
            settings.port,
        )
    else:
        app.jwt  # noqa: B018 - a bad APP_ID or key fails now, not at the first delivery
    if settings.handler_processes and not setup:
        app.run_handlers_in_processes(args.bot, settings.handler_processes)
    config = uvicorn_config(app, settings)
    tune_for_serving()
    DrainingServer(config, app.drain).run()
    return 0


def receive(args: argparse.Namespace) -> int:
    """Run the bot's handlers once on a payload from a file, like ``probot receive``."""
    settings = _settings(args)
    configure_logging(settings.log_level, settings.log_format)
    try:
        payload = json.loads(Path(args.payload).read_bytes())
    except OSError as exc:
        return _fail(f"cannot read {args.payload}: {exc.strerror}")
    except ValueError as exc:
        return _fail(f"{args.payload} is not JSON: {exc}")
    if not isinstance(payload, dict):
        return _fail(f"{args.payload} must hold a JSON object")
    if "." in args.event:
        return _fail(f"--event takes the event name ({args.event.partition('.')[0]!r}); "
                     "the action comes from the payload")  # fmt: skip
    try:
        check_event_key(args.event, ALL_EVENTS)
    except ValueError as exc:
        return _fail(str(exc))
    app = load_app(args.bot)
    app.configure(settings)
    action = payload.get("action") if isinstance(payload.get("action"), str) else None
    key = f"{args.event}.{action}" if action else args.event
    handlers = app.router.match(args.event, action)
    if not handlers:
        wanted = ", ".join(app.router.keys) or "nothing"
        logger.warning("nothing ran: no handler of %s wants %s (it handles: %s)",
                       args.bot, key, wanted)  # fmt: skip
        return 3

    async def go() -> int:
        try:
            errors = await app.receive(
                args.event, payload, delivery_id=args.delivery_id or str(uuid.uuid4())
            )
        finally:
            await app.http.aclose()
        logger.info("%s: %d handler(s) ran, %d failed", key, len(handlers), len(errors))
        return 1 if errors else 0

    return asyncio.run(go())


def handle(args: argparse.Namespace) -> int:
    """Run handlers for a receiver (started by ``run``; not for direct use)."""
    import socket

    from framework.dispatch.handler_process import (
        die_with_parent,
        ignore_stop_signals,
        run_event_loop,
        serve_receiver,
    )

    ignore_stop_signals()  # before the bot loads: a Ctrl-C then must not kill us half-started
    if args.parent is not None:
        die_with_parent(args.parent)
    if args.lock_fd is not None:  # held open while we live; not passed on to our children
        os.set_inheritable(args.lock_fd, False)
    settings = _settings(args)
    configure_logging(settings.log_level, settings.log_format)
    app = load_app(args.bot)
    app.configure(settings)
    app.runner.consumer = args.consumer
    app.records_deliveries = False

    async def serve() -> None:
        journal = await app.open_journal()
        try:
            sock = socket.socket(fileno=args.fd)
            await serve_receiver(app.runner, journal, sock, args.parent)
        finally:
            await app.close()

    tune_for_serving()
    run_event_loop(serve())
    return 0


def parser() -> argparse.ArgumentParser:
    """The command line's parser, with ``--help`` on every command."""
    top = argparse.ArgumentParser(
        prog="python -m framework", description=plain(__doc__.split("\n")[0])
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("run", help="serve a bot", description=plain(run.__doc__))
    serve.add_argument("bot", help="the bot: a file (bot.py) or a module (pkg.bot[:app])")
    serve.add_argument("--host", help="listen address (default: HOST or 0.0.0.0)")
    serve.add_argument("--port", type=int, help="listen port (default: PORT or 3000)")
    serve.set_defaults(func=run)

    once = commands.add_parser(
        "receive", help="run handlers on a saved payload", description=plain(receive.__doc__)
    )
    once.add_argument("bot", help="the bot: a file (bot.py) or a module (pkg.bot[:app])")
    once.add_argument("--event", "-e", required=True, help="the event name, e.g. issues")
    once.add_argument("--payload", "-p", required=True, help="a JSON file with the payload")
    once.add_argument("--delivery-id", help="the delivery id to use (default: a new uuid)")
    once.set_defaults(func=receive, host=None, port=None)

    deliveries_cli.add_parser(commands)
    tunnel_cli.add_parser(commands)
    login_cli.add_parser(commands)
    users_cli.add_parser(commands)

    # No help=: argparse would list it as "handle ==SUPPRESS==".
    child = commands.add_parser("handle", description=plain(handle.__doc__))
    child.add_argument("bot")
    child.add_argument("--fd", type=int, required=True, help="the socket to the receiver")
    child.add_argument("--consumer", required=True, help="its name in the journal")
    child.add_argument("--parent", type=int, help="the receiver's pid: die with it")
    child.add_argument("--lock-fd", type=int, help="the journal's lock, held while we live")
    child.set_defaults(func=handle, host=None, port=None)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m framework`` and the ``framework`` command."""
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigurationError as exc:
        return _fail(str(exc))
    except FrameworkError as exc:
        return _fail(f"{type(exc).__name__}: {exc}")
