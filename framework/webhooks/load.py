"""Whether the receiver is busy, so that handlers sharing its CPU let acknowledgements come first.

A handler's API call costs more CPU than a whole acknowledgement. While requests are being
received (a burst), the runners start only a few deliveries' handlers, and the rest wait until
the receiver has been idle for a millisecond.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class ReceiverLoad:
    """Whether the receiver is busy: a request is inside it, or left it under 1 ms ago.

    ``listeners`` hear each change (``True``: busy); handler processes learn of it that way.
    """

    def __init__(self, quiet_seconds: float = 0.001) -> None:
        self.quiet_seconds = quiet_seconds
        self.idle = asyncio.Event()
        self.idle.set()
        self.listeners: list[Callable[[bool], None]] = []
        self._inside = 0
        self._last_left = 0.0
        self._check_pending = False

    def enter(self) -> None:
        """A request entered the receiver."""
        self._inside += 1
        if self.idle.is_set():
            self.set_busy(True)

    def set_busy(self, busy: bool) -> None:
        """Say the receiver is busy (or idle): here, or as told by the receiving process."""
        if busy == self.idle.is_set():
            if busy:
                self.idle.clear()
            else:
                self.idle.set()
            for listener in self.listeners:
                listener(busy)

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
            self.set_busy(False)
