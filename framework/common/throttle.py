"""Rate-limited logging: a flood of the same complaint becomes one line a second.

Forged deliveries, oversized headers or a full backlog can arrive thousands of times a
second; a line for each would flood the logs (and cost more than refusing them).

>>> clock = iter([0.0, 0.5, 0.7, 1.2]).__next__
>>> throttle = Throttle(interval=1.0, clock=clock)
>>> [throttle.let_through("400") for _ in range(4)]
[0, None, None, 2]
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable


class Throttle:
    """Lets one line per ``key`` through every ``interval`` seconds, counting the rest."""

    def __init__(self, interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._next: dict[Hashable, float] = {}
        self._held: dict[Hashable, int] = {}

    def let_through(self, key: Hashable) -> int | None:
        """None if this line is held back; else how many were held back since the last one."""
        now = self._clock()
        if now < self._next.get(key, 0.0):
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._next[key] = now + self.interval
        return self._held.pop(key, 0)


def held_note(held: int) -> str:
    """What to append to a line that stands for others held back.

    >>> held_note(0), held_note(3)
    ('', ' (and 3 more like it since the last such line)')
    """
    return f" (and {held} more like it since the last such line)" if held else ""


class ThrottleFilter(logging.Filter):
    """A logging filter that lets each distinct message through once per ``interval``.

    For loggers we do not own (uvicorn's "Invalid HTTP request received." per bad request).
    """

    def __init__(self, interval: float = 1.0) -> None:
        super().__init__()
        self.throttle = Throttle(interval)

    def filter(self, record: logging.LogRecord) -> bool:
        held = self.throttle.let_through((record.name, record.msg))
        if held is None:
            return False
        if held:
            record.msg = f"{record.msg}{held_note(held)}"
        return True
