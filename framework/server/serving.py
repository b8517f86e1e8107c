"""Serving a bot with uvicorn, draining on the first stop signal while still answering HTTP.

:func:`uvicorn_config` is the one place uvicorn is configured for a bot: the limits of
:mod:`framework.server.guard` on every connection, logging left as the bot configured it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

import uvicorn

from framework.common.throttle import ThrottleFilter
from framework.server.guard import ServerLimits, default_max_connections, guarded_protocol
from framework.settings import Settings

logger = logging.getLogger("framework")


def server_limits(settings: Settings) -> ServerLimits:
    """The ``SERVER_*`` settings as :class:`ServerLimits`.

    >>> server_limits(Settings(server_max_connections=50)).max_connections
    50
    """
    return ServerLimits(
        header_timeout=settings.server_header_timeout_seconds,
        max_header_bytes=settings.server_max_header_bytes,
        max_headers=settings.server_max_headers,
        body_grace=settings.server_body_grace_seconds,
        body_min_rate=settings.server_body_min_bytes_per_second,
        keep_alive=settings.server_keep_alive_seconds,
        max_connections=settings.server_max_connections or default_max_connections(),
    )


def uvicorn_config(app: Any, settings: Settings) -> uvicorn.Config:
    """uvicorn's configuration for serving ``app`` (a bot) with ``settings``."""
    limits = server_limits(settings)
    throttle_invalid_request_lines()
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=guarded_protocol(limits),
        ws="none",  # a bot serves no WebSocket: its library stays unloaded
        timeout_keep_alive=max(1, round(limits.keep_alive)),
        log_level=settings.log_level,
        log_config=None,  # keep the format configure_logging set
        access_log=False,  # one line per delivery costs more than the delivery itself
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 5,
    )


def throttle_invalid_request_lines() -> None:
    """uvicorn logs a line per malformed request: at most one a second of each, here."""
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, ThrottleFilter) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(ThrottleFilter())


class DrainingServer(uvicorn.Server):
    """uvicorn, but the first SIGTERM/SIGINT drains the bot (``drain``) before the server stops.

    While the handlers finish, ``/readyz`` answers 503 (a load balancer stops sending work),
    ``/healthz`` 200 (nothing restarts the bot mid-drain) and deliveries 503 (GitHub records
    them as failed: redeliverable). Then uvicorn stops as usual, and the process exits 0. A
    second signal stops at once; what was still running stays in the journal for next time.
    """

    def __init__(self, config: uvicorn.Config, drain: Callable[[], Awaitable[Any]]) -> None:
        super().__init__(config)
        self._drain_bot = drain
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Future[None] | None = None

    async def startup(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain is None and self._loop is not None and not self.should_exit:
            self._loop.call_soon_threadsafe(self._start_drain)
            return
        self.should_exit = True
        self.force_exit = self._drain is not None and not self._drain.done()

    def _start_drain(self) -> None:
        if self._drain is None:
            self._drain = asyncio.ensure_future(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        logger.info("stopping: draining running handlers (/readyz answers 503)")
        try:
            await self._drain_bot()
        finally:
            self.should_exit = True
