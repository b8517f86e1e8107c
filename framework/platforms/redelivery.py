"""Redelivering what GitHub could not deliver: the sweep behind ``deliveries sync``, the
tunnel's recovery, and the bot's own schedule (``REDELIVERY_SYNC_INTERVAL``).

GitHub does not retry a delivery the bot did not acknowledge (it was down, a proxy answered
502, a tunnel was away). An app can list its deliveries (``GET /app/hook/deliveries``, newest
first) and ask for one again (``POST /app/hook/deliveries/{id}/attempts``) for 3 days (7 on
GHES). A sweep lists them back to a moment and asks again for each delivery whose attempts all
failed and that the journal does not hold. A rate limit pauses a sweep until GitHub's reset;
it then resumes with the request that was refused, asking for nothing twice.

The bot sweeps by itself (:class:`RedeliverySchedule`): right after start-up, reaching back to
the last sweep that succeeded (kept in the journal's store, so a restart or another replica
knows it), then every interval, one replica at a time (a turn in the journal).

Which deliveries to ask for is a pure decision over the listed attempts:

>>> to_redeliver([
...     {"id": 3, "guid": "g-2", "delivered_at": "2026-01-01T10:02:00Z", "status": "OK"},
...     {"id": 2, "guid": "g-2", "delivered_at": "2026-01-01T10:01:00Z", "status": "502"},
...     {"id": 1, "guid": "g-1", "delivered_at": "2026-01-01T10:00:00Z", "status": "502"},
... ], since=0)
[('g-1', 1)]
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from framework.client.rest import GitHubClient
from framework.common.backoff import backoff
from framework.errors import FrameworkError, RateLimited
from framework.journal import Journal, consumer_name
from framework.webhooks.delivery import delivery_key

logger = logging.getLogger("framework.redelivery")

FIRST_PAGE = "/app/hook/deliveries?per_page=100"
MARGIN_SECONDS = 60.0
"""A sweep reaches back this much before the last one began: GitHub's clock and ours differ."""
RATE_LIMIT_PAUSES = 10
"""A sweep waits out GitHub's rate limit this many times at most, then gives up until the next."""
RATE_LIMIT_FALLBACK_SECONDS = 60.0
"""The pause when GitHub names no moment to come back at (GitHub's advice for secondary limits)."""
RECENT_SECONDS = 60.0
"""A sweep begun this shortly before a bot started counts as its start-up sweep."""
TURN_SECONDS = 600.0
"""How long a replica's turn lasts unless renewed: one that dies mid-sweep frees it by then."""
BUSY_SECONDS = 60.0
"""How soon a replica looks again while another replica sweeps."""
FAILURE_BACKOFF_SECONDS = 60.0
"""The wait after a failed sweep (doubling, up to the interval)."""

Pause = Callable[[float], Awaitable[None]]
"""``pause(seconds)``: wait out a rate limit (a test's clock, a CLI's message)."""


def epoch(timestamp: str) -> float:
    """GitHub's ISO 8601 time as epoch seconds.

    >>> epoch("2026-01-01T00:00:00Z")
    1767225600.0
    """
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def to_redeliver(
    attempts: Iterable[Mapping[str, Any]], since: float, *, only_failed: bool = True
) -> list[tuple[str, int]]:
    """``(guid, id of its latest attempt)`` of each delivery to ask for again, in the order
    listed: its latest attempt is at or after ``since`` and, with ``only_failed``, none of
    its attempts succeeded (``only_failed=False``: a tunnel's channel took them, so GitHub
    saw them delivered; the journal decides)."""
    by_guid: dict[str, list[Mapping[str, Any]]] = {}
    for attempt in attempts:
        by_guid.setdefault(attempt["guid"], []).append(attempt)
    wanted: list[tuple[str, int]] = []
    for guid, tries in by_guid.items():
        latest = max(tries, key=lambda t: epoch(t["delivered_at"]))
        if epoch(latest["delivered_at"]) < since:
            continue
        if only_failed and any(t["status"] == "OK" for t in tries):
            continue
        wanted.append((guid, int(latest["id"])))
    return wanted


def reaches_before(page: list[Mapping[str, Any]], since: float) -> bool:
    """Whether a page (newest first) ends before ``since``: the pages after it are older.

    >>> page = [{"delivered_at": "2026-01-01T00:00:00Z"}]
    >>> reaches_before(page, since=epoch("2026-01-02T00:00:00Z"))
    True
    """
    return not page or min(epoch(a["delivered_at"]) for a in page) < since


def rate_limit_pause(error: RateLimited) -> float:
    """How long a sweep waits before the request GitHub refused: until GitHub's reset.

    >>> limited = RateLimited("GET", "/x", 403, None, None, 120.0, reset_at=0, secondary=False)
    >>> rate_limit_pause(limited)
    120.0
    """
    return error.retry_after if error.retry_after is not None else RATE_LIMIT_FALLBACK_SECONDS


async def sweep(
    client: GitHubClient,
    journal: Journal,
    since: float,
    *,
    only_failed: bool = True,
    dry_run: bool = False,
    pause: Pause = asyncio.sleep,
    platform: str = "github",
) -> list[str]:
    """Ask GitHub (``client``: the app's, JWT) to redeliver what it failed to deliver since
    ``since`` (epoch seconds) and the journal does not hold; return the guids asked for.

    A delivery the journal holds is skipped whatever GitHub saw: it runs or ran here (a dead
    letter is replayed on purpose, with ``deliveries replay``, not by a sweep). Raises
    :class:`~framework.errors.RateLimited` after :data:`RATE_LIMIT_PAUSES` pauses.
    """
    patient = _Patient(pause)
    attempts: list[Mapping[str, Any]] = []
    url: str | None = FIRST_PAGE
    while url is not None:
        response = await patient(client.get, url)
        page: list[Mapping[str, Any]] = response.json()
        attempts += page
        url = None if reaches_before(page, since) else response.links.get("next", {}).get("url")
    asked: list[str] = []
    for guid, attempt_id in to_redeliver(attempts, since, only_failed=only_failed):
        if await journal.get(delivery_key(platform, guid)) is not None:
            continue
        if not dry_run:
            await patient(client.post, f"/app/hook/deliveries/{attempt_id}/attempts")
        asked.append(guid)
    return asked


class _Patient:
    """Makes requests, waiting out rate limits (at most :data:`RATE_LIMIT_PAUSES` a sweep)."""

    def __init__(self, pause: Pause) -> None:
        self._pause = pause
        self._pauses = 0

    async def __call__(
        self, method: Callable[[str], Awaitable[httpx.Response]], url: str
    ) -> httpx.Response:
        while True:
            try:
                return await method(url)
            except RateLimited as exc:
                self._pauses += 1
                if self._pauses > RATE_LIMIT_PAUSES:
                    raise
                seconds = rate_limit_pause(exc)
                logger.warning("GitHub's rate limit: the sweep resumes in %.0f s", seconds)
                await self._pause(seconds)


def sweep_since(now: float, last_success: float | None, window: float) -> float:
    """Where a sweep starting ``now`` reaches back to: the last successful sweep's start (less
    :data:`MARGIN_SECONDS`), never further than ``window`` (GitHub forgets older deliveries).

    >>> sweep_since(100_000.0, None, 3600.0), sweep_since(100_000.0, 99_000.0, 3600.0)
    (96400.0, 98940.0)
    >>> sweep_since(100_000.0, 1_000.0, 3600.0)  # the last one was long ago
    96400.0
    """
    if last_success is None:
        return now - window
    return max(last_success - MARGIN_SECONDS, now - window)


def next_sweep_in(now: float, last_success: float | None, interval: float, started: float) -> float:
    """Seconds until a sweep is due (0: now), for a bot that ``started`` then.

    At start-up one is due at once: what failed while the bot was down is not covered yet,
    unless a sweep began after it started or at most :data:`RECENT_SECONDS` before (another
    replica's, in a rolling restart: what failed since waits for the next one). Then one is
    due ``interval`` after the last, whichever replica ran it.

    >>> next_sweep_in(1000.0, None, 900.0, started=990.0)  # never swept
    0.0
    >>> next_sweep_in(1000.0, 500.0, 900.0, started=990.0)  # not since before the bot started
    0.0
    >>> next_sweep_in(1000.0, 995.0, 900.0, started=990.0)  # a replica just swept
    895.0
    """
    if last_success is None or last_success < started - RECENT_SECONDS:
        return 0.0
    return max(0.0, last_success + interval - now)


class TurnLost(FrameworkError):
    """Another replica took the sweep's turn while this one waited out a rate limit."""


class RedeliverySchedule:
    """The bot's own sweeps: ``await schedule.run()`` until cancelled.

    ``client()`` gives the app's client when a sweep starts (the app may be registered while
    the bot runs); ``clock`` and ``sleep`` are the time it keeps (a test's, in tests).

    >>> schedule = RedeliverySchedule(lambda: app.github, journal, interval=900, window=259200)
    ...  # doctest: +SKIP
    """

    def __init__(
        self,
        client: Callable[[], GitHubClient],
        journal: Journal,
        *,
        interval: float,
        window: float,
        platform: str = "github",
        holder: str | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Pause = asyncio.sleep,
    ) -> None:
        if interval <= 0:
            raise ValueError("the interval must be positive (0 means: do not schedule sweeps)")
        self.client = client
        self.journal = journal
        self.interval = interval
        self.window = window
        self.platform = platform
        self.job = f"redelivery:{platform}"
        self.holder = holder or consumer_name()
        self.clock = clock
        self.sleep = sleep
        self.started = clock()
        self.failures = 0

    async def run(self) -> None:
        """Sweep whenever one is due, forever (cancel the task to stop)."""
        while True:
            await self.sleep(await self.step())

    async def step(self) -> float:
        """Sweep if one is due and no other replica sweeps now; return the seconds until the
        next look. A failed sweep is logged and tried again after a backoff."""
        try:
            return await self._step()
        except Exception as exc:
            self.failures += 1
            cap = max(self.interval, FAILURE_BACKOFF_SECONDS)
            wait = backoff(self.failures, base=FAILURE_BACKOFF_SECONDS, cap=cap)
            logger.warning(
                "could not sweep for %s deliveries that failed: %s: %s; trying again in %.0f s",
                self.platform, type(exc).__name__, exc, wait,
                exc_info=not isinstance(exc, FrameworkError),  # a bug: its traceback too
            )  # fmt: skip
            return wait

    async def _step(self) -> float:
        journal = self.journal
        wait = next_sweep_in(
            self.clock(), await journal.last_success(self.job), self.interval, self.started
        )
        if wait > 0:
            return wait
        if not await journal.take_turn(self.job, self.holder, TURN_SECONDS):
            return min(BUSY_SECONDS, self.interval)  # another replica sweeps now
        succeeded_at: float | None = None
        try:
            # Read again in the turn: another replica may have finished a sweep meanwhile.
            last = await journal.last_success(self.job)
            begun = self.clock()
            wait = next_sweep_in(begun, last, self.interval, self.started)
            if wait > 0:
                return wait
            since = sweep_since(begun, last, self.window)
            asked = await sweep(
                self.client(), journal, since, pause=self._pause, platform=self.platform
            )
            succeeded_at = begun
        finally:
            await journal.end_turn(self.job, self.holder, succeeded_at)
        self.failures = 0
        if asked:
            logger.info(
                "asked %s to redeliver %d deliveries it could not deliver since %s UTC: %s",
                self.platform, len(asked), _when(since),
                ", ".join(asked[:20]) + (" ..." if len(asked) > 20 else ""),
            )  # fmt: skip
        return next_sweep_in(self.clock(), begun, self.interval, self.started)

    async def _pause(self, seconds: float) -> None:
        # The turn outlasts the wait: no other replica starts the same sweep meanwhile.
        if not await self.journal.take_turn(self.job, self.holder, seconds + TURN_SECONDS):
            raise TurnLost("another replica took the redelivery sweep's turn")
        await self.sleep(seconds)


def _when(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")
