"""``python -m framework tunnel``: forward a smee.io channel's deliveries to the local bot.

python -m framework tunnel                       # WEBHOOK_PROXY_URL → http://127.0.0.1:$PORT$WEBHOOK_PATH
python -m framework tunnel https://smee.io/abc --to http://127.0.0.1:3000/api/github/webhooks

After a reconnect, with the app's credentials configured (``APP_ID``, the private key), it
asks GitHub to redeliver what was sent to the channel meanwhile and the journal does not hold.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from framework.cli.help_text import plain
from framework.dev.tunnel import Tunnel
from framework.errors import ConfigurationError
from framework.observe.log import configure_logging
from framework.settings import Settings, load_settings

logger = logging.getLogger("framework.tunnel")


def local_webhook_url(settings: Settings) -> str:
    """Where the bot those settings serve receives deliveries, on loopback.

    >>> local_webhook_url(Settings(port=3001, webhook_path="/hooks"))
    'http://127.0.0.1:3001/hooks'
    """
    return f"http://127.0.0.1:{settings.port}{settings.webhook_path}"


def has_app_credentials(settings: Settings) -> bool:
    """Whether the app can authenticate (an id and a key): redelivery needs it."""
    return not settings.app_credential_problems()


def recovery(current: Callable[[], Settings]) -> Callable[[float], Awaitable[None]]:
    """What to do after a reconnect, with the settings ``current()`` gives then (the app may
    have been registered meanwhile): redeliver through GitHub, or say how to."""

    async def recover(since: float) -> None:
        settings = current()
        if not has_app_credentials(settings):
            logger.warning(
                "deliveries sent since %s UTC may have been missed; set APP_ID and "
                "PRIVATE_KEY so the tunnel asks GitHub to redeliver them, or redeliver them "
                "from the app's settings (Advanced, Recent Deliveries)", _when(since),
            )  # fmt: skip
            return
        from framework.app import App
        from framework.platforms.redelivery import MARGIN_SECONDS, sweep

        app = App(settings, name="tunnel")
        try:
            journal = await app.open_journal()
            # Back to a little before the stream was last alive: clocks differ.
            asked = await sweep(app.github, journal, since - MARGIN_SECONDS, only_failed=False)
        finally:
            await app.close()
        logger.info(
            "asked GitHub to redeliver %d deliveries sent since %s UTC",
            len(asked), _when(since),
        )  # fmt: skip

    return recover


def reloading(first: Settings) -> Callable[[], Settings]:
    """The settings as the environment and ``.env`` say now (``first`` while they are
    invalid): the setup page writes an app's credentials into ``.env`` as the tunnel runs."""

    def current() -> Settings:
        try:
            return load_settings()
        except ConfigurationError:
            return first

    return current


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S")


def run(args: argparse.Namespace) -> int:
    """Forward a smee.io channel's deliveries to the bot until Ctrl-C."""
    settings = load_settings()
    channel = args.url or settings.webhook_proxy_url
    if not channel:
        raise ConfigurationError(
            "no channel: pass its URL (python -m framework tunnel https://smee.io/…) or set "
            "WEBHOOK_PROXY_URL; smee_dev.sh creates one and saves it to .env"
        )
    configure_logging(settings.log_level, settings.log_format)
    current = reloading(settings)
    tunnel = Tunnel(
        channel,
        args.to or local_webhook_url(settings),
        secrets=lambda: current().webhook_secrets(),
        on_reconnect=recovery(current),
    )
    if not settings.webhook_secrets():
        logger.warning("no WEBHOOK_SECRET here: bodies are rebuilt but not checked")
    return asyncio.run(_until_stopped(tunnel.run()))


async def _until_stopped(work: Any) -> int:
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    started = time.monotonic()
    try:
        await task
    except asyncio.CancelledError:
        logger.info("stopped after %.0f s", time.monotonic() - started)
    return 0


def add_parser(commands: Any) -> None:
    """``tunnel``, on the top-level parser."""
    tunnel = commands.add_parser(
        "tunnel", help="forward a smee.io channel to the local bot", description=plain(run.__doc__)
    )
    tunnel.add_argument("url", nargs="?", help="the channel (default: WEBHOOK_PROXY_URL)")
    tunnel.add_argument(
        "--to", help="the bot's webhook URL (default: http://127.0.0.1:PORT/WEBHOOK_PATH)"
    )
    tunnel.set_defaults(func=run, host=None, port=None)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``framework-tunnel`` command: ``python -m framework tunnel`` under its own name."""
    from framework.cli import main as framework_main

    return framework_main(["tunnel", *(sys.argv[1:] if argv is None else argv)])
