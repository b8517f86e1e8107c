"""Running handlers: off the acknowledgement path, a bounded number at a time, drained on stop.

The receiver only puts a verified delivery on a queue; a fixed pool of workers takes
deliveries off it and runs their handlers. A delivery's handlers run concurrently, and one
handler's exception is logged with the delivery id, passed to the ``on_error`` handlers, and
stops no other handler.

Acknowledgements come first. Handlers share the process's one event loop with the receiver,
and a handler's API call costs more CPU than a whole acknowledgement; so while requests are
being received (a burst), only ``concurrency_under_load`` deliveries' handlers start, and the
rest wait until the receiver has been idle for a millisecond. Real traffic leaves the receiver
idle nearly all the time, so I/O-bound handlers run at full concurrency; a burst is
acknowledged at full speed and worked off right after it. The backlog is bounded in bytes:
past the bound, deliveries are refused with 503 (GitHub records the failure; they can be
redelivered) rather than risking the process's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from framework.context import Context
from framework.delivery import Delivery
from framework.errors import Unavailable
from framework.log import bind
from framework.routing import Handler

if TYPE_CHECKING:
    from framework.app import App


def revokes_tokens(delivery: Delivery) -> bool:
    """Whether the delivery says the installation's tokens stopped working."""
    return delivery.name == "installation" and delivery.action in ("deleted", "suspend")


logger = logging.getLogger("framework.runner")


class ReceiverLoad:
    """Whether the receiver is busy: a request is inside it, or left it under 1 ms ago."""

    def __init__(self, quiet_seconds: float = 0.001) -> None:
        self.quiet_seconds = quiet_seconds
        self.idle = asyncio.Event()
        self.idle.set()
        self._inside = 0
        self._last_left = 0.0
        self._check_pending = False

    def enter(self) -> None:
        """A request entered the receiver."""
        self._inside += 1
        if self.idle.is_set():
            self.idle.clear()

    def leave(self) -> None:
        """A request left the receiver."""
        self._inside -= 1
        if self._inside == 0:
            loop = asyncio.get_running_loop()
            self._last_left = loop.time()
            if not self._check_pending:
                self._check_pending = True
                loop.call_later(self.quiet_seconds, self._check)

    def _check(self) -> None:
        self._check_pending = False
        if self._inside:
            return  # the request inside will schedule the next check when it leaves
        loop = asyncio.get_running_loop()
        remaining = self._last_left + self.quiet_seconds - loop.time()
        if remaining > 0:
            self._check_pending = True
            loop.call_later(remaining, self._check)
        else:
            self.idle.set()


class Runner:
    """A queue of accepted deliveries and the workers that run their handlers."""

    def __init__(
        self,
        app: App,
        concurrency: int,
        *,
        concurrency_under_load: int = 2,
        max_backlog_bytes: int = 1024**3,
        load: ReceiverLoad | None = None,
    ) -> None:
        self.app = app
        self.concurrency = concurrency
        self.concurrency_under_load = min(concurrency_under_load, concurrency)
        self.max_backlog_bytes = max_backlog_bytes
        self.load = load or ReceiverLoad()
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self._backlog_bytes = 0
        self._workers: list[asyncio.Task[None]] = []
        self._running: dict[str, Delivery] = {}
        self.stopping = False
        self.on_finished: Callable[[Delivery], None] | None = None
        """Called after each delivery's handlers have all finished (handler processes use it)."""

    @property
    def pending(self) -> int:
        """Deliveries accepted and not yet finished (queued or running)."""
        return self._queue.qsize() + len(self._running)

    @property
    def started(self) -> bool:
        """Whether the workers are running."""
        return bool(self._workers)

    def start(self) -> None:
        """Start the workers; call from inside the event loop."""
        if self._workers:
            return
        self.stopping = False
        self._workers = [
            asyncio.create_task(self._work(i), name=f"framework-worker-{i}")
            for i in range(self.concurrency)
        ]

    def submit(self, delivery: Delivery) -> None:
        """Queue a delivery whose handlers should run. Never blocks: this is the hot path.

        Raises :class:`~framework.errors.Unavailable` when the backlog is full.
        """
        size = len(delivery.body)
        if self._backlog_bytes + size > self.max_backlog_bytes:
            raise Unavailable(
                f"the backlog is full ({self._queue.qsize()} deliveries): redeliver later"
            )
        self._backlog_bytes += size
        self._queue.put_nowait(delivery)

    async def _work(self, index: int) -> None:
        idle = self.load.idle
        while True:
            delivery = await self._queue.get()
            self._running[delivery.id] = delivery
            if index >= self.concurrency_under_load and not idle.is_set():
                await idle.wait()  # checked after get(): workers parked in get() obey it too
            self._backlog_bytes -= len(delivery.body)
            try:
                await self.run(delivery)
            except Exception:  # run() catches handler errors; this is a framework bug
                logger.exception("internal error while running delivery %s", delivery.id)
            finally:
                self._running.pop(delivery.id, None)
                self._queue.task_done()
                if self.on_finished is not None:
                    self.on_finished(delivery)

    async def run(self, delivery: Delivery) -> list[BaseException]:
        """Run the delivery's handlers now and wait for them; return the errors they raised."""
        if delivery.installation_id is not None and revokes_tokens(delivery):
            # Here, where the tokens are cached (the handler process, or this one).
            self.app.forget_installation(delivery.installation_id)
        handlers = self.app.router.match(delivery.name, delivery.action)
        if not handlers:
            return []
        log = bind(
            logging.getLogger(self.app.name),
            delivery=delivery.id,
            event=delivery.key,
            installation=delivery.installation_id,
        )
        ctx: Context = Context(self.app, delivery, log)
        if len(handlers) == 1:
            error = await self._call(handlers[0], ctx)
            errors = [error] if error is not None else []
        else:
            results = await asyncio.gather(*(self._call(h, ctx) for h in handlers))
            errors = [e for e in results if e is not None]
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "handled by %d handler(s), %d failed, %.0f ms after receipt",
                len(handlers),
                len(errors),
                (time.time() - delivery.received_at) * 1000,
            )
        return errors

    async def _call(self, handler: Handler, ctx: Context) -> BaseException | None:
        try:
            if handler.is_async:
                await handler.fn(ctx)
            else:
                await asyncio.to_thread(handler.fn, ctx)
        except Exception as exc:
            ctx.log.exception("handler %s failed", handler.name, extra={"handler": handler.name})
            await self._report(ctx, exc)
            return exc
        return None

    async def _report(self, ctx: Context, error: Exception) -> None:
        for on_error in self.app.router.error_handlers:
            try:
                if on_error.is_async:
                    await on_error.fn(ctx, error)
                else:
                    await asyncio.to_thread(on_error.fn, ctx, error)
            except Exception:
                ctx.log.exception("on_error handler %s failed", on_error.name)

    async def join(self) -> None:
        """Wait until every accepted delivery has finished (for tests and the CLI)."""
        await self._queue.join()

    async def stop(self, grace: float) -> list[str]:
        """Stop accepting, give running handlers ``grace`` seconds, then cancel the rest.

        Returns the ids of deliveries that did not finish.
        """
        self.stopping = True
        if self._workers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout=grace)
        unfinished = list(self._running)
        while not self._queue.empty():
            unfinished.append(self._queue.get_nowait().id)
            self._queue.task_done()
        self._backlog_bytes = 0
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if unfinished:
            logger.error(
                "stopped with %d deliveries unfinished after %.0f s; redeliver them from the "
                "app's settings: %s",
                len(unfinished),
                grace,
                ", ".join(unfinished),
            )
        return unfinished
