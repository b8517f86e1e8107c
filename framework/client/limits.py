"""What the REST client keeps between requests: per-installation rate state, the ETag cache.

GitHub's limits are per installation (or per app, or per user token), so is everything here:
an installation waiting out its rate limit, paced, or at its concurrency cap never slows
another. Probot throttles every installation under one shared key; measured there, four
comments to four installations finished at 0.1, 3.1, 6.0 and 9.0 s.

- **Concurrency**: at most ``concurrency`` requests in flight per installation (GitHub allows
  100 concurrent requests; the default stays well below).
- **Blocking**: when GitHub says "rate limited", every request of that installation waits
  until the time it gave (``retry-after``, ``x-ratelimit-reset``, or at least 60 s doubling
  for a secondary limit that gave neither), instead of each one finding out for itself.
- **Points** (optional, ``GITHUB_POINTS_PER_MINUTE``): GitHub's secondary limit counts 1 point
  per read and 5 per write, 900 a minute; a token bucket paces the installation under it.
- **ETags**: GET responses with an ETag are kept (bounded, per installation and URL) and
  revalidated with ``If-None-Match``; a 304 costs no rate limit and serves the kept body.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from framework.errors import GitHubAPIError

Sleep = Callable[[float], Awaitable[None]]

SECONDARY_MINIMUM = 60.0
"""GitHub's rule: after a secondary rate limit that gave no ``retry-after``, wait ≥ 1 minute."""


@dataclass(frozen=True)
class RateLimit:
    """An installation's REST budget, from the last response's ``x-ratelimit-*`` headers."""

    limit: int
    remaining: int
    used: int
    reset_at: float
    """When the budget refills (epoch seconds)."""
    resource: str = "core"


@dataclass
class ClientPolicy:
    """How the client retries and waits; from ``GITHUB_*`` settings."""

    max_retries: int = 3
    """Retries of a network error or a 5xx, where retrying is safe."""
    backoff: float = 0.5
    """The first retry's delay; doubled each time, with jitter."""
    backoff_max: float = 8.0
    max_rate_limit_wait: float = 60.0
    """Wait out a rate limit this long at most; longer raises RateLimited (the runner then
    retries the delivery when the limit resets)."""
    concurrency: int = 20
    points_per_minute: float = 0.0
    """0: no pacing; GitHub's secondary limit is 900 (reads 1 point, writes 5)."""
    etag_entries: int = 512


class RateState:
    """The waiting and pacing state of one installation (or the app, or a user token)."""

    def __init__(self, policy: ClientPolicy, clock: Callable[[], float], sleep: Sleep) -> None:
        self._policy = policy
        self._clock = clock
        self._sleep = sleep
        self.slots = asyncio.Semaphore(policy.concurrency)
        self.blocked_until = 0.0
        self.blocked_secondary = False
        self.secondary_strikes = 0
        self.rate_limit: RateLimit | None = None
        self._points = policy.points_per_minute
        self._points_at = clock()

    def blocked_for(self) -> float:
        """Seconds until this installation may send again (0: now)."""
        return max(0.0, self.blocked_until - self._clock())

    async def ready(self, points: int) -> None:
        """Wait while the installation is blocked, then for its points (if paced)."""
        for _ in range(1000):  # bounded: each pass sleeps until the known time
            wait = self.blocked_for()
            if wait <= 0:
                break
            await self._sleep(wait)
        rate = self._policy.points_per_minute
        if rate <= 0:
            return
        for _ in range(1000):
            now = self._clock()
            self._points = min(rate, self._points + (now - self._points_at) * rate / 60)
            self._points_at = now
            if self._points >= points:
                self._points -= points
                return
            await self._sleep((points - self._points) * 60 / rate)

    def block(self, seconds: float, *, secondary: bool = False) -> None:
        """Hold every request of this installation back for ``seconds`` from now."""
        until = self._clock() + seconds
        if until > self.blocked_until:
            self.blocked_until, self.blocked_secondary = until, secondary

    def secondary_wait(self) -> float:
        """How long to wait after a secondary limit that gave no ``retry-after``: 60 s, then
        doubling while they keep coming (reset by a success)."""
        self.secondary_strikes += 1
        return SECONDARY_MINIMUM * float(2 ** min(self.secondary_strikes - 1, 6))

    def observe(self, response: httpx.Response) -> RateLimit | None:
        """Note the budget a response reports, and return it (None: it reported none); a
        success ends a run of secondary limits."""
        if response.status_code < 400:
            self.secondary_strikes = 0
        # One pass over the raw headers: each httpx lookup by name walks all of them.
        found = {
            name.lower(): value
            for name, value in response.headers.raw
            if name[:12].lower() == b"x-ratelimit-"
        }
        remaining = found.get(b"x-ratelimit-remaining")
        if remaining is None or not remaining.isdigit():
            return None
        resource = found.get(b"x-ratelimit-resource")
        self.rate_limit = RateLimit(
            limit=_int(found.get(b"x-ratelimit-limit")),
            remaining=int(remaining),
            used=_int(found.get(b"x-ratelimit-used")),
            reset_at=float(_int(found.get(b"x-ratelimit-reset"))),
            resource="core" if resource is None else resource.decode("latin-1"),
        )
        if self.rate_limit.remaining == 0 and self.rate_limit.resource == "core":
            # The budget is spent: the next request would be refused; wait for the reset.
            self.block(self.rate_limit.reset_at - self._clock())
        return self.rate_limit


def _int(value: bytes | None) -> int:
    return int(value) if value is not None and value.isdigit() else 0


@dataclass
class _Kept:
    etag: str
    headers: list[tuple[bytes, bytes]]
    content: bytes


class EtagCache:
    """GET responses by (who asked, URL), least recently used out first."""

    def __init__(self, entries: int) -> None:
        self.entries = entries
        self._kept: OrderedDict[tuple[str, str], _Kept] = OrderedDict()
        self.hits = 0
        """How many 304s were served from here."""

    def etag(self, key: tuple[str, str]) -> str | None:
        kept = self._kept.get(key)
        return kept.etag if kept else None

    def keep(self, key: tuple[str, str], response: httpx.Response) -> None:
        etag = response.headers.get("etag")
        if not etag or self.entries <= 0 or len(response.content) > 1_000_000:
            return
        self._kept[key] = _Kept(etag, list(response.headers.raw), response.content)
        self._kept.move_to_end(key)
        while len(self._kept) > self.entries:
            self._kept.popitem(last=False)

    def revalidated(self, key: tuple[str, str], response: httpx.Response) -> httpx.Response:
        """The kept response, for a 304 to its ETag; its rate-limit headers are the 304's."""
        kept = self._kept[key]
        self._kept.move_to_end(key)
        self.hits += 1
        fresh = {k.lower() for k in response.headers if k.lower().startswith("x-ratelimit-")}
        headers = [(k, v) for k, v in kept.headers if k.decode().lower() not in fresh]
        headers += [(k.encode(), v.encode()) for k, v in response.headers.items() if k in fresh]
        return httpx.Response(200, headers=headers, content=kept.content, request=response.request)


@dataclass
class ClientShared:
    """Everything the clients of one app share: policy, per-installation state, ETags."""

    policy: ClientPolicy = field(default_factory=ClientPolicy)
    clock: Callable[[], float] = time.time
    sleep: Sleep = asyncio.sleep
    states: dict[str, RateState] = field(default_factory=dict)
    read_error: Callable[..., GitHubAPIError] | None = None
    """The platform's ``error_from_response`` (None: GitHub's,
    :func:`framework.client.responses.error_from_response`)."""
    etags: EtagCache = field(init=False)

    def __post_init__(self) -> None:
        self.etags = EtagCache(self.policy.etag_entries)

    def state(self, key: str) -> RateState:
        """The state of installation (or app, or user) ``key``, created on first use."""
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = RateState(self.policy, self.clock, self.sleep)
        return state
