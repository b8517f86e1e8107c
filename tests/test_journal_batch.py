"""The batcher behind both journals' record: what arrives together is written together, and
every caller hears its own outcome."""

from __future__ import annotations

import asyncio

import pytest

from framework.journal import JournalUnavailable
from framework.journal.batch import Batcher


class Writer:
    """Records the batches it is sent; each one waits for ``release`` when it is set."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release: asyncio.Event | None = None
        self.in_flight = 0
        self.most_in_flight = 0

    async def send(self, batch: list[int]) -> list[int | Exception]:
        self.batches.append(batch)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.release is not None:
                await self.release.wait()
            else:
                await asyncio.sleep(0)
        finally:
            self.in_flight -= 1
        return [ValueError(f"odd {n}") if n % 2 else n * 10 for n in batch]


async def test_one_caller_after_another_each_gets_its_answer() -> None:
    # The caller is answered before the sender ends: its next item must still find a sender.
    writer = Writer()
    batcher: Batcher[int, int] = Batcher(writer.send)
    for n in (2, 4, 6):
        assert await batcher.submit(n) == n * 10
    assert writer.batches == [[2], [4], [6]]


async def test_items_that_arrive_while_a_batch_is_out_go_together() -> None:
    writer = Writer()
    writer.release = asyncio.Event()
    batcher: Batcher[int, int] = Batcher(writer.send)
    first = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0.01)
    rest = [asyncio.create_task(batcher.submit(n)) for n in (2, 4, 6, 8)]
    await asyncio.sleep(0.01)
    assert writer.batches == [[0]]  # the rest wait for the batch on its way
    writer.release.set()
    assert await asyncio.gather(first, *rest) == [0, 20, 40, 60, 80]
    assert writer.batches == [[0], [2, 4, 6, 8]]
    assert batcher.batches == 2


async def test_each_item_gets_its_own_error_and_the_others_their_results() -> None:
    writer = Writer()
    writer.release = asyncio.Event()
    batcher: Batcher[int, int] = Batcher(writer.send)
    tasks = [asyncio.create_task(batcher.submit(n)) for n in (1, 2, 3, 4)]
    await asyncio.sleep(0.01)
    writer.release.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert [str(o) if isinstance(o, Exception) else o for o in outcomes] == [
        "odd 1",
        20,
        "odd 3",
        40,
    ]


async def test_a_batch_that_fails_as_a_whole_fails_each_caller_and_the_next_batch_goes() -> None:
    calls = 0

    async def send(batch: list[int]) -> list[int | Exception]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise JournalUnavailable("the disk is full")
        return list(batch)

    batcher: Batcher[int, int] = Batcher(send)
    with pytest.raises(JournalUnavailable, match="disk is full"):
        await batcher.submit(1)
    assert await batcher.submit(2) == 2


async def test_a_send_that_answers_the_wrong_number_of_items_fails_loudly() -> None:
    async def send(batch: list[int]) -> list[int | Exception]:
        return [1]

    batcher: Batcher[int, int] = Batcher(send)
    results = await asyncio.gather(
        batcher.submit(1), batcher.submit(2), batcher.submit(3), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) and "1 outcomes for 3" in str(r) for r in results)


async def test_batches_are_capped_in_size_and_in_number_on_their_way() -> None:
    writer = Writer()
    writer.release = asyncio.Event()
    batcher: Batcher[int, int] = Batcher(writer.send, in_flight=2, size=3)
    tasks = [asyncio.create_task(batcher.submit(n * 2)) for n in range(10)]
    await asyncio.sleep(0.01)
    assert writer.in_flight == 2
    writer.release.set()
    assert await asyncio.gather(*tasks) == [n * 20 for n in range(10)]
    assert writer.most_in_flight == 2
    assert all(len(batch) <= 3 for batch in writer.batches)
    assert sorted(n for batch in writer.batches for n in batch) == [n * 2 for n in range(10)]


async def test_a_cancelled_sender_fails_what_waits_instead_of_leaving_it_hanging() -> None:
    writer = Writer()
    writer.release = asyncio.Event()
    batcher: Batcher[int, int] = Batcher(writer.send)
    tasks = [asyncio.create_task(batcher.submit(n)) for n in (2, 4)]
    await asyncio.sleep(0.01)
    for sender in list(batcher._senders):
        sender.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, JournalUnavailable) for r in results)
