"""Running handlers: deliveries claimed from the journal, a bounded number at a time.

The receiver stores each verified delivery in the journal and wakes the runners; a runner
claims due deliveries (under a lease it keeps renewing), runs their handlers, and records the
outcome. A delivery's handlers run concurrently, and one handler's exception is logged with
the delivery id and stops no other handler.

A delivery whose handlers raised runs again later, after an exponential backoff with jitter
(or as long as GitHub asked, for a rate limit), up to ``RETRY_MAX_ATTEMPTS`` runs; then it is
kept in the journal as failed (a dead letter) and the ``on_error`` handlers see its errors.
Of a delivery with several handlers, each one that finishes is recorded in the journal as it
finishes, and a retry, a recovery after a crash or a redelivery of a failed delivery runs only
the handlers not recorded: one handler's failure does not repeat another's comment. A handler
still runs *at least once*: one killed between its side effect and that record runs again, so
a handler whose side effects must happen once uses ``ctx.delivery_id`` as their idempotency key.

Handlers may share the event loop with the receiver. While requests are being received (a
burst), only ``concurrency_under_load`` deliveries' handlers run, and the rest wait until the
receiver has been idle for a millisecond. By default (``HANDLER_CONCURRENCY_UNDER_LOAD``) that
is as many as at any other time: a handler mostly waits for GitHub, and holding it back only
delays its label (in ``bench/burst.py``, 2 under load put the median label 0.7 s after its
delivery was sent, 32 put it 0.25 s after, for the same labels per second). A lower figure lets
acknowledgements overtake handlers that burn CPU.

When handlers run in the receiving process, a delivery it receives is handed to its runner
as it is stored (:meth:`Runner.submit`): stored as running for this runner, its first attempt
begun, and run from memory, with no claim reading it back from the journal (a claim costs
more journal time than the record). The runner holds up to ``hold_bytes`` of such deliveries,
and only while it has claimed everything stored before them, so deliveries still run oldest
first; past that, they wait in the journal for a claim. A held delivery is as safe as a claimed
one: its lease is renewed while it waits, and if the process dies, it runs again once the
lease expires (or at the next start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

from framework.dispatch.retry import RetryPolicy, describe
from framework.errors import Unavailable
from framework.journal import consumer_name
from framework.observe import hooks
from framework.webhooks.delivery import Delivery
from framework.webhooks.load import ReceiverLoad

if TYPE_CHECKING:
    from framework.journal import Journal

RunHandlers = Callable[..., Awaitable[list[BaseException]]]
"""``run(delivery, report=..., done=...)``: run a delivery's handlers, recording each that
finishes with ``done``; return their errors
(:meth:`framework.dispatch.dispatcher.Dispatcher.run`)."""


logger = logging.getLogger("framework.dispatch.runner")

HOLD_BYTES = 32 * 1024 * 1024
"""How much of the deliveries it received a runner holds in memory to run them without a claim
(each counts as its body and :data:`HOLD_OVERHEAD`)."""
HOLD_OVERHEAD = 4096
"""What holding a delivery costs beside its body: its headers, its task, its record."""


class Runner:
    """Claims deliveries from the journal and runs their handlers, ``concurrency`` at a time."""

    def __init__(
        self,
        run: RunHandlers,
        concurrency: int,
        *,
        concurrency_under_load: int | None = None,
        load: ReceiverLoad | None = None,
        retry: RetryPolicy | None = None,
        lease: float = 30.0,
        poll_interval: float = 1.0,
        consumer: str | None = None,
        finish_backlog: bool = True,
        hold_bytes: int = HOLD_BYTES,
    ) -> None:
        self.run = run
        self.finish_backlog = finish_backlog
        """On stop, also run what is due within the grace period (one bot on SQLite); with
        replicas (Redis), leave it to them."""
        self._drained = asyncio.Event()
        self._finishing = False
        self.concurrency = concurrency
        self.concurrency_under_load = min(concurrency_under_load or concurrency, concurrency)
        self.load = load or ReceiverLoad()
        self.retry = retry or RetryPolicy()
        self.lease = lease
        self.poll_interval = poll_interval
        self.consumer = consumer or consumer_name()
        self._journal: Journal | None = None
        self._wakeup = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._running: dict[str, asyncio.Task[None]] = {}
        self._starting = 0  # deliveries whose handlers are running
        self._turns: deque[asyncio.Future[None]] = deque()  # deliveries waiting to start
        self.load.listeners.append(self._load_changed)
        self._claim_batch = max(1, concurrency // 4)
        self._journal_errors = 0
        self.stopping = False
        self.hold_bytes = hold_bytes
        self._held: dict[str, int] = {}  # deliveries handed over by submit(), and their cost
        self._held_bytes = 0
        self._caught_up = False  # the last claim took everything stored before it
        self._stored = 0  # deliveries stored for a claim (or other work woken) so far

    @property
    def running(self) -> int:
        """How many deliveries' handlers are running in this process now."""
        return len(self._running)

    @property
    def started(self) -> bool:
        """Whether the runner is claiming work."""
        return bool(self._tasks)

    async def start(self, journal: Journal) -> None:
        """Claim and run deliveries from ``journal``; call from inside the event loop."""
        if self._tasks:
            return
        self._journal = journal
        self.stopping = False
        self._tasks = [
            asyncio.create_task(self._claim_loop(journal), name="framework-claim"),
            asyncio.create_task(self._keep_leases(journal), name="framework-leases"),
        ]

    def wake(self) -> None:
        """New work was recorded: claim now rather than at the next poll."""
        self._stored += 1
        self._caught_up = False  # what was stored runs before deliveries received after it
        self._wakeup.set()

    async def submit(self, journal: Journal, delivery: Delivery) -> bool:
        """Store a delivery received here, and run it: from memory if this runner may hold it,
        else after a claim. False for a duplicate (stored before: it does not run again).

        Raises what the journal raises (:class:`~framework.errors.Unavailable`).
        """
        cost = len(delivery.body) + HOLD_OVERHEAD
        if not self._may_hold(cost):
            recorded = await journal.record(delivery)
            if recorded:
                self.wake()
            return recorded
        self._held_bytes += cost
        try:
            outcome = await journal.record_running(delivery, self.consumer, self.lease)
        except BaseException:
            self._held_bytes -= cost
            raise
        if outcome != "running" or self.stopping:
            # Stored, not held (a failed delivery redelivered), or stored as running while
            # this runner stopped: its release, or the next start's recovery, makes it pending.
            self._held_bytes -= cost
            if outcome == "pending":
                self.wake()
            return outcome != "duplicate"
        self._held[delivery.id] = cost
        self._running[delivery.id] = asyncio.create_task(
            self._process(journal, delivery), name=f"framework-delivery-{delivery.id}"
        )
        return True

    def _may_hold(self, cost: int) -> bool:
        return (
            self._caught_up
            and bool(self._tasks)
            and not self.stopping
            and not self._finishing
            and self._held_bytes + cost <= self.hold_bytes
        )

    async def _claim_loop(self, journal: Journal) -> None:
        while not self.stopping:
            free = self.concurrency - len(self._running)
            # Claim in batches: one claim per finished handler would be one write to the
            # journal per delivery more, competing with the receiver's.
            if free <= 0 or (free < self._claim_batch and self._running and not self._finishing):
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            self._wakeup.clear()  # before claiming: a wake-up during the claim is kept
            stored = self._stored
            try:
                batch = await journal.claim(self.consumer, free, self.lease)
            except Unavailable as exc:
                self._journal_trouble("claim deliveries", exc)
                await asyncio.sleep(self.poll_interval)
                continue
            # Nothing left behind in the journal: what is received next may be held.
            self._caught_up = len(batch) < free and stored == self._stored
            if self._finishing and not batch and not self._running:
                self._drained.set()
            for delivery in batch:
                self._running[delivery.id] = asyncio.create_task(
                    self._process(journal, delivery), name=f"framework-delivery-{delivery.id}"
                )
            if len(batch) < free and not self.stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self.poll_interval)

    async def _keep_leases(self, journal: Journal) -> None:
        """Renew the leases of what runs here; give back what dead consumers held."""
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                if self._running:
                    await journal.renew(self.consumer, list(self._running), self.lease)
                if await journal.requeue_expired():
                    self.wake()
            except Unavailable as exc:
                self._journal_trouble("renew leases", exc)

    def _journal_trouble(self, what: str, error: Exception) -> None:
        self._journal_errors += 1
        if self._journal_errors == 1 or self._journal_errors % 100 == 0:
            logger.error("cannot %s (%d times so far): %s", what, self._journal_errors, error)

    async def _process(self, journal: Journal, delivery: Delivery) -> None:
        try:
            await self._turn()
            watch = hooks.handling(delivery)  # the delivery's log line, metrics and span
            try:
                final = delivery.attempt >= self.retry.max_attempts
                errors = await self.run(
                    delivery, report=final, done=partial(self._handler_done, journal, delivery.id)
                )
            finally:
                self._starting -= 1
                self._let_start()
            watch.finished(errors, final)
            await self._record_outcome(journal, delivery, errors, final)
        except asyncio.CancelledError:
            raise  # stopped past the grace period: stop() gives the delivery back
        except Exception:  # run() catches handler errors; this is a framework bug
            logger.exception("internal error while running delivery %s", delivery.id)
        finally:
            self._running.pop(delivery.id, None)
            self._held_bytes -= self._held.pop(delivery.id, 0)
            self._slot_free.set()
            if self._finishing:
                self._wakeup.set()  # look for more, or notice that all is done

    def _limit(self) -> int:
        """How many deliveries' handlers may run at once now."""
        return self.concurrency if self.load.idle.is_set() else self.concurrency_under_load

    async def _turn(self) -> None:
        """Wait until this delivery's handlers may start (oldest waiting first), and start."""
        first = True
        while self._starting >= self._limit():
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            # Woken and overtaken (by the load, or a later waker): first in line again.
            if first:
                self._turns.append(turn)
            else:
                self._turns.appendleft(turn)
            first = False
            try:
                await turn
            except asyncio.CancelledError:
                if turn in self._turns:
                    self._turns.remove(turn)
                elif not turn.cancelled():
                    self._let_start()  # woken and cancelled: the turn goes to the next
                raise
        self._starting += 1

    def _let_start(self) -> None:
        """Wake as many waiting deliveries as may start now."""
        free = self._limit() - self._starting
        while free > 0 and self._turns:
            turn = self._turns.popleft()
            if not turn.done():
                turn.set_result(None)
                free -= 1

    def _load_changed(self, busy: bool) -> None:
        if not busy:
            self._let_start()

    async def _handler_done(self, journal: Journal, delivery_id: str, handler: str) -> None:
        try:
            await journal.handler_done(delivery_id, handler)
        except Unavailable as exc:  # a retry runs the handler again: at least once still holds
            logger.error(
                "delivery %s: handler %s finished, but that could not be stored (%s)",
                delivery_id,
                handler,
                exc,
            )

    async def _record_outcome(
        self, journal: Journal, delivery: Delivery, errors: list[BaseException], final: bool
    ) -> None:
        try:
            if not errors:
                held = await journal.complete(delivery.id, self.consumer)
            elif final:
                held = await journal.fail(delivery.id, self.consumer, describe(errors))
                logger.error(
                    "delivery %s (%s) failed %d times; kept as failed: "
                    "python -m framework deliveries show %s",
                    delivery.id,
                    delivery.key,
                    delivery.attempt,
                    delivery.id,
                )
            else:
                delay = self.retry.delay(delivery.attempt, errors)
                held = await journal.retry(
                    delivery.id, self.consumer, describe(errors), time.time() + delay
                )
                asyncio.get_running_loop().call_later(delay, self.wake)  # not at the next poll
                logger.warning(
                    "delivery %s (%s): attempt %d of %d failed; retrying in %.1f s",
                    delivery.id,
                    delivery.key,
                    delivery.attempt,
                    self.retry.max_attempts,
                    delay,
                )
        except Unavailable as exc:
            logger.error(
                "delivery %s ran, but its outcome could not be stored (%s); it runs again "
                "once its lease expires",
                delivery.id,
                exc,
            )
            return
        if not held:
            logger.warning(
                "delivery %s ran past its lease and was handed to another consumer", delivery.id
            )

    async def stop(self, grace: float) -> list[str]:
        """Stop claiming, give running handlers ``grace`` seconds, then cancel the rest.

        With ``finish_backlog``, due deliveries are still claimed and run within the grace
        period. What did not finish goes back to the journal as pending, for the next start
        (or another replica). Returns the ids of those deliveries.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if self.finish_backlog and self._tasks:
            self._finishing = True
            self._wakeup.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), grace)
        self.stopping = True
        self._wakeup.set()
        self._slot_free.set()
        running = list(self._running.values())
        if running:
            await asyncio.wait(running, timeout=max(0.0, deadline - loop.time()))
        unfinished = list(self._running)
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._journal is not None:
            try:  # also what a claim cut short by the cancellation took
                await self._journal.release(self.consumer)
            except Unavailable as exc:
                logger.error("could not give unfinished deliveries back: %s", exc)
        if unfinished:
            logger.warning(
                "stopped with %d deliveries unfinished after %.0f s; they are kept in the "
                "journal and run at the next start: %s",
                len(unfinished),
                grace,
                ", ".join(unfinished),
            )
        return unfinished
