"""A delivery received by the process that runs its handlers is run from memory, not claimed.

The receiver stores it as already claimed by its runner; past the runner's hold, or while
something stored earlier still waits in the journal, it is stored for a claim instead, and
deliveries still start oldest first. Held or claimed, a delivery is never lost or run twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from framework import App, Context, Delivery, Settings
from framework.journal import Journal, Status
from framework.journal.sqlite import SQLiteJournal
from tests.support import PEM, SECRET, issue_opened


def new_app(**settings: Any) -> App:
    values: dict[str, Any] = {
        "app_id": "123",
        "private_key": PEM,
        "webhook_secret": SECRET,
        "github_api_url": "http://127.0.0.1:9",
        "shutdown_grace_seconds": 5,
    }
    values.update(settings)
    return App(Settings(**values), name="hand-over-bot")


class Gate:
    """Handlers that note their delivery id, then wait until the test lets them finish."""

    def __init__(self, app: App) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []
        self.running = 0
        self.most_at_once = 0
        self._open: dict[str, asyncio.Event] = {}

        @app.on("issues.opened")
        async def held(ctx: Context) -> None:
            self.started.append(ctx.delivery_id)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            try:
                await self._event(ctx.delivery_id).wait()
            finally:
                self.running -= 1
            self.finished.append(ctx.delivery_id)

    def _event(self, delivery_id: str) -> asyncio.Event:
        return self._open.setdefault(delivery_id, asyncio.Event())

    def let_finish(self, *delivery_ids: str) -> None:
        for delivery_id in delivery_ids:
            self._event(delivery_id).set()


def claims_of(journal: Journal) -> list[str]:
    """Record the ids every claim of ``journal`` returns from now on."""
    claimed: list[str] = []
    claim = journal.claim

    async def counting(consumer: str, limit: int, lease: float) -> list[Delivery]:
        batch = await claim(consumer, limit, lease)
        claimed.extend(d.id for d in batch)
        return batch

    journal.claim = counting  # type: ignore[method-assign]
    return claimed


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def status(journal: Journal, delivery_id: str) -> Status:
    entry = await journal.get(delivery_id)
    assert entry is not None, delivery_id
    return entry.status


async def started_app(**settings: Any) -> tuple[App, Gate, Journal, list[str]]:
    app = new_app(**settings)
    gate = Gate(app)
    journal = await app.open_journal()
    assert isinstance(journal, SQLiteJournal)
    claimed = claims_of(journal)
    await app.runner.start(journal)
    await asyncio.sleep(0.05)  # the runner's first claim: it finds the journal empty
    return app, gate, journal, claimed


def delivery(n: int) -> Delivery:
    return Delivery.from_payload(f"d{n}", "issues", issue_opened(n))


async def test_a_delivery_received_runs_from_memory_and_is_recorded_as_any_other() -> None:
    app, gate, journal, claimed = await started_app()
    try:
        for n in range(5):
            assert await app.accept(delivery(n)) == "accepted"
        await until(lambda: len(gate.started) == 5, "five handlers")
        # Stored as running for this bot (its first attempt begun) before its 202.
        assert {await status(journal, f"d{n}") for n in range(5)} == {Status.RUNNING}
        assert await app.accept(delivery(0)) == "duplicate"
        gate.let_finish(*(f"d{n}" for n in range(5)))
        await app.wait_idle()
        assert claimed == []  # none read back from the file
        for n in range(5):
            entry = await journal.get(f"d{n}")
            assert entry is not None and (entry.status, entry.attempts) == (Status.DONE, 1)
            assert entry.history[0].finished_at is not None
        assert gate.finished == [f"d{n}" for n in range(5)]
    finally:
        await app.drain()
        await app.close()


async def test_past_its_hold_deliveries_wait_for_a_claim_and_still_start_in_order() -> None:
    app, gate, journal, claimed = await started_app(handler_concurrency=1)
    size = len(delivery(0).body)
    app.runner.hold_bytes = 2 * (size + 4096) + 100  # room for two
    try:
        for n in range(3):
            assert await app.accept(delivery(n)) == "accepted"
        assert [await status(journal, f"d{n}") for n in range(3)] == [
            Status.RUNNING,
            Status.RUNNING,
            Status.PENDING,
        ]
        await until(lambda: gate.started == ["d0"], "the first handler")
        gate.let_finish("d0")  # room in the hold again, but d2 waits in the journal:
        await until(lambda: gate.started == ["d0", "d1"], "the second handler")
        assert await app.accept(delivery(3)) == "accepted"
        assert await status(journal, "d3") is Status.PENDING  # ...so d3 waits behind it
        gate.let_finish("d1", "d2", "d3")
        await app.wait_idle()
        assert gate.started == ["d0", "d1", "d2", "d3"]
        assert claimed == ["d2", "d3"]
        # Caught up with the journal, the runner holds what it receives again.
        assert await app.accept(delivery(4)) == "accepted"
        assert await status(journal, "d4") is Status.RUNNING
        gate.let_finish("d4")
        await app.wait_idle()
        assert claimed == ["d2", "d3"]
    finally:
        await app.drain()
        await app.close()


async def test_held_deliveries_run_at_most_handler_concurrency_at_once() -> None:
    app, gate, _, _ = await started_app(handler_concurrency=2)
    try:
        for n in range(6):
            await app.accept(delivery(n))
        await until(lambda: len(gate.started) == 2, "two handlers")
        await asyncio.sleep(0.1)
        assert gate.started == ["d0", "d1"]
        gate.let_finish("d0")
        await until(lambda: len(gate.started) == 3, "a third handler in the freed slot")
        gate.let_finish(*(f"d{n}" for n in range(1, 6)))
        await app.wait_idle()
        assert gate.most_at_once == 2
        assert gate.started == [f"d{n}" for n in range(6)]
    finally:
        await app.drain()
        await app.close()


async def test_held_deliveries_a_stopped_bot_did_not_run_run_at_its_next_start() -> None:
    app, gate, journal, _ = await started_app(handler_concurrency=1, shutdown_grace_seconds=0.3)
    for n in range(3):
        await app.accept(delivery(n))
    await until(lambda: gate.started == ["d0"], "the first handler")
    unfinished = await app.drain()  # d0 is cancelled past the grace; d1, d2 never started
    assert sorted(unfinished) == ["d0", "d1", "d2"]
    assert {await status(journal, f"d{n}") for n in range(3)} == {Status.PENDING}
    await app.close()

    again = new_app()
    ran: list[str] = []
    again.on("issues.opened")(lambda ctx: ran.append(ctx.delivery_id))
    await again.runner.start(await again.open_journal())
    try:
        await again.wait_idle()
        assert sorted(ran) == ["d0", "d1", "d2"]
    finally:
        await again.drain()
        await again.close()
