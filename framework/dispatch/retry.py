"""When a delivery whose handlers raised runs again, and how its errors are kept.

>>> RetryPolicy(max_attempts=5, backoff=10, backoff_max=3600).delay(3, [], lambda: 1.0)
40.0
>>> describe([ValueError("no such label")])
'ValueError: no such label'
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from framework.common.backoff import backoff
from framework.errors import GitHubAPIError


@dataclass(frozen=True)
class RetryPolicy:
    """When a delivery whose handlers raised runs again.

    >>> RetryPolicy(max_attempts=5, backoff=10, backoff_max=3600).delay(3, [], lambda: 1.0)
    40.0
    """

    max_attempts: int = 5
    backoff: float = 10.0
    backoff_max: float = 3600.0

    def delay(
        self,
        attempt: int,
        errors: list[BaseException],
        jitter: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to wait after failed attempt number ``attempt``.

        A rate limit waits what GitHub asked (the longest, if several handlers were limited);
        anything else ``backoff * 2**(attempt-1)``, capped, with the upper half jittered so
        retries of a burst of failures spread out.
        """
        asked = [
            e.retry_after
            for e in errors
            if isinstance(e, GitHubAPIError) and e.retry_after is not None
        ]
        if asked:
            return max(asked) + jitter()  # a second of spread over the platform's own time
        return backoff(attempt, base=self.backoff, cap=self.backoff_max, jitter=jitter)


def describe(errors: list[BaseException]) -> str:
    """How a failed attempt's errors are kept in the journal (type and message, no trace)."""
    return "; ".join(f"{type(e).__name__}: {e}" for e in errors)[:2000]
