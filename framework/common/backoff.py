"""The one backoff formula: exponential, capped, its upper half jittered.

Used wherever something is tried again: a delivery whose handlers failed, an API request
that met a network error or a 5xx, a tunnel that lost its stream.

>>> backoff(1, base=10, cap=3600, jitter=lambda: 0.0), backoff(3, base=10, cap=3600,
...     jitter=lambda: 1.0)
(5.0, 40.0)
>>> backoff(30, base=10, cap=60, jitter=lambda: 0.5)
45.0
"""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff(
    attempt: int, *, base: float, cap: float, jitter: Callable[[], float] = random.random
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1 for the first failure).

    The ceiling is ``base * 2**(attempt-1)``, at most ``cap``; the wait lies in its upper
    half, spread by ``jitter()`` (0 to 1), so retries of a burst of failures spread out.
    """
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 64))
    return ceiling / 2 + ceiling / 2 * jitter()
