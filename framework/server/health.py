"""``/healthz`` and ``/readyz``: whether the bot lives, and whether it should get work.

``/healthz`` is 200 while the process serves HTTP, draining included: a container's health
check restarts a bot that hangs, not one that is finishing its handlers. ``/readyz`` is 200
only when the journal answers (SQLite or Redis), has no damage found in it, and the bot is not
draining: an orchestrator or load balancer sends deliveries to ready replicas only.

>>> health = Health(app.open_journal, lambda: app.draining)  # doctest: +SKIP
>>> routes = health.routes()  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from framework.errors import Unavailable
from framework.journal import Counts, Journal

logger = logging.getLogger("framework.server.health")


class _Damaged(Unavailable):
    """The journal found damage in its storage (``JournalDamaged`` says how to salvage)."""


READINESS_TIMEOUT_SECONDS = 2.0
"""A journal slower than this to count its deliveries counts as not ready."""


class Health:
    """The probes, over a way to open the journal and to tell whether the bot drains."""

    def __init__(
        self,
        journal: Callable[[], Awaitable[Journal]],
        draining: Callable[[], bool],
        timeout: float = READINESS_TIMEOUT_SECONDS,
    ) -> None:
        self._journal = journal
        self._draining = draining
        self._timeout = timeout

    def routes(self) -> list[Route]:
        """``/healthz`` and ``/readyz``, for GET and HEAD."""
        return [
            Route("/healthz", self.healthz, methods=["GET", "HEAD"]),
            Route("/readyz", self.readyz, methods=["GET", "HEAD"]),
        ]

    async def healthz(self, _: Request) -> JSONResponse:
        """200 while the process answers."""
        return JSONResponse({"status": "ok"})

    async def readyz(self, _: Request) -> JSONResponse:
        """200 when the journal answers and the bot is not draining; else 503 saying which."""
        if self._draining():
            return JSONResponse({"status": "draining"}, status_code=503)
        try:
            await self.counts(ready=True)
        except _Damaged:
            return JSONResponse({"status": "journal damaged"}, status_code=503)
        except Unavailable as exc:
            return JSONResponse({"status": "unavailable", "error": exc.public()}, 503)
        return JSONResponse({"status": "ready"})

    async def counts(self, *, ready: bool = False) -> Counts:
        """The journal's counts; :class:`Unavailable` if it does not answer in time (and, with
        ``ready``, if damage was found in it: it accepts nothing until salvaged)."""
        try:
            journal = await asyncio.wait_for(self._journal(), self._timeout)
            if ready and journal.damaged() is not None:
                raise _Damaged(str(journal.damaged()))
            return await asyncio.wait_for(journal.counts(), self._timeout)
        except TimeoutError:
            raise Unavailable(
                f"the delivery journal did not answer within {self._timeout:.0f} s"
            ) from None
        except Unavailable as exc:
            logger.warning("not ready: %s", exc)
            raise
