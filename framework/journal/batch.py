"""Group what arrives together into one write: the journals' record path under a burst.

A delivery is stored before its 202, so every acknowledgement waits for a write. Writing
each one on its own costs a round trip to Redis, or a hand-over to the SQLite thread (and the
thread switches that come with it), per delivery. :class:`Batcher` sends the first item at
once; items submitted while ``in_flight`` batches are on their way wait and go together in
the next one. Under a burst the batches grow by themselves; alone, an item waits for nobody.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from framework.journal import JournalUnavailable

T = TypeVar("T")
R = TypeVar("R")

Send = Callable[[list[T]], Awaitable[list[R | Exception]]]
"""Writes a batch; returns one outcome per item, in order: its result, or its own error."""


class Batcher(Generic[T, R]):
    """Submits items through ``send`` in batches of at most ``size``, ``in_flight`` at once."""

    def __init__(self, send: Send[T, R], *, in_flight: int = 1, size: int = 256) -> None:
        self._send = send
        self.in_flight = in_flight
        self.size = size
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._senders: set[asyncio.Task[None]] = set()  # referenced while they run
        self._sending = 0  # senders that will still look at _waiting before they end
        self.batches = 0
        """How many batches were sent (fewer than items under a burst)."""

    async def submit(self, item: T) -> R:
        """Send ``item`` with the next batch; its result, or raise its error."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._sending < self.in_flight:
            # Counted here and uncounted by the sender itself, in the step where it finds
            # nothing left to send: a task's done callbacks run later, after the callers it
            # answered may have submitted again and found no sender to take their items.
            self._sending += 1
            task = asyncio.create_task(self._send_waiting())
            self._senders.add(task)
            task.add_done_callback(self._senders.discard)
        return await future

    async def _send_waiting(self) -> None:
        try:
            await self._send_batches()
        finally:
            self._sending -= 1

    async def _send_batches(self) -> None:
        while self._waiting:
            batch = self._waiting[: self.size]
            del self._waiting[: self.size]
            self.batches += 1
            try:
                outcomes = await self._send([item for item, _ in batch])
            except Exception as exc:  # the write failed as a whole: each caller hears of it
                _fail(batch, exc)
                continue
            except BaseException:  # cancelled (the loop is closing): no caller waits forever
                _fail(batch + self._waiting, JournalUnavailable("the journal was closed"))
                self._waiting.clear()
                raise
            if len(outcomes) != len(batch):  # a bug in send: fail loudly, not hang
                _fail(batch, RuntimeError(f"{len(outcomes)} outcomes for {len(batch)} items"))
                continue
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():  # its caller gave up waiting
                    continue
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)


def _fail(waiting: list[tuple[T, asyncio.Future[R]]], error: Exception) -> None:
    for _, future in waiting:
        if not future.done():
            future.set_exception(error)
