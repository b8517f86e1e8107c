"""Serving a bot with uvicorn, draining on the first stop signal while still answering HTTP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

import uvicorn

logger = logging.getLogger("framework")


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
