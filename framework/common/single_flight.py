"""Single-flight: concurrent callers asking for the same key share one run of the work.

Twenty handlers starting at once for a new installation cause one token mint, not twenty;
ten handlers reading a repository's configuration cause one read.

>>> import asyncio
>>> calls = []
>>> async def mint() -> str:
...     calls.append(1)
...     await asyncio.sleep(0)
...     return "token"
>>> async def main() -> list[str]:
...     flight: SingleFlight[int, str] = SingleFlight()
...     return await asyncio.gather(*(flight.run(42, mint) for _ in range(20)))
>>> asyncio.run(main()) == ["token"] * 20, len(calls)
(True, 1)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from functools import partial
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """Runs ``work`` once per key at a time; everyone who asks meanwhile gets its result."""

    def __init__(self) -> None:
        self._inflight: dict[K, asyncio.Future[V]] = {}

    def __contains__(self, key: K) -> bool:
        return key in self._inflight

    async def run(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        """The result of ``work()``, or of the run already under way for ``key``."""
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(work())
            self._inflight[key] = future
            future.add_done_callback(partial(self._settled, key))
        # shield: one cancelled caller must not cancel the work the others are waiting for.
        return await asyncio.shield(future)

    def _settled(self, key: K, future: asyncio.Future[V]) -> None:
        if self._inflight.get(key) is future:
            del self._inflight[key]
        if not future.cancelled():
            future.exception()  # mark retrieved; the callers re-raise it themselves
