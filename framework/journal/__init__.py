"""The delivery journal: every verified delivery, stored before GitHub is told 202.

The journal is what makes a delivery run once and never get lost:

- :meth:`Journal.record` stores a delivery and says whether it is new. A delivery id seen
  before (GitHub keeps the id on redelivery) is not run again while it is pending, running or
  done; one that failed for good runs again when it is redelivered.
- Handlers take deliveries with :meth:`Journal.claim`, under a lease. A consumer that dies
  (SIGKILL, OOM, power) stops renewing it, and :meth:`Journal.requeue_expired` hands its
  deliveries to the living: at-least-once.
- :meth:`Journal.complete`, :meth:`Journal.retry` (later, after a backoff) and
  :meth:`Journal.fail` (a dead letter, with its error) close a claim.
- :meth:`Journal.handler_done` records each handler of a delivery that finished; a claim
  hands them over (``Delivery.handlers_done``), so a later run skips them. A replay of a
  done delivery (:meth:`Journal.requeue`) runs them all again; a redelivered or replayed
  failed one runs only those that had not finished.
- :meth:`Journal.take_turn` lets one replica at a time do a periodic job (the redelivery
  sweep), and :meth:`Journal.last_success` says when it last succeeded.

Implementations: :class:`~framework.journal.sqlite.SQLiteJournal` (a file beside the bot,
the default) and :class:`~framework.journal.redis.RedisJournal` (``REDIS_URL``, for several
replicas).
"""

from __future__ import annotations

import enum
import os
import secrets
import socket
from dataclasses import dataclass, field
from typing import Literal, Protocol

from framework.errors import Unavailable
from framework.webhooks.delivery import Delivery


def consumer_name(pid: int | None = None) -> str:
    """A runner's name in the journal: host, pid and a random part (unique among runners)."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}:{secrets.token_hex(3)}"


class JournalUnavailable(Unavailable):
    """The journal cannot store or read deliveries (corrupt, locked, disk full, unreachable).

    Answered to GitHub as 503: a delivery that was not stored must not be acknowledged.
    GitHub is told what is wrong (``public``), not where: the message itself, which names the
    file or the Redis server, goes to the log only.
    """

    def __init__(self, message: str, public: str = "the delivery journal is unusable") -> None:
        super().__init__(message)
        self._public = public

    def public(self) -> str:
        return f"{self._public}: redeliver later"


class Status(enum.StrEnum):
    """Where a delivery is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class JournalDamaged(JournalUnavailable):
    """The journal's files are damaged: a bot refuses to start on them (or, noticing it while
    running, to accept deliveries) until ``python -m framework deliveries salvage`` ran."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "the delivery journal is damaged")


@dataclass(frozen=True)
class Attempt:
    """One run of a delivery's handlers."""

    number: int
    consumer: str
    started_at: float
    finished_at: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class Entry:
    """A delivery as the journal knows it: what ``deliveries show`` prints."""

    delivery: Delivery
    status: Status
    attempts: int
    received_at: float
    not_before: float = 0.0
    finished_at: float | None = None
    last_error: str | None = None
    history: list[Attempt] = field(default_factory=list)
    handlers_done: frozenset[str] = frozenset()
    """Handlers recorded as finished, of a delivery with several (read with its history)."""


@dataclass(frozen=True)
class Counts:
    """How many deliveries are in each state now (for ``/metrics``; reading them also shows
    the journal is reachable, for ``/readyz``)."""

    pending: int
    running: int
    dead: int
    """Failed for good: kept with their error (``deliveries list --failed``)."""
    oldest_pending_at: float | None = None
    """When the oldest pending delivery was received (epoch seconds); None if none is."""


Recorded = Literal["running", "pending", "duplicate"]
"""What became of a delivery handed to :meth:`Journal.record_running`."""


class Journal(Protocol):
    """What the receiver and the handler runners need from durable storage."""

    async def record(self, delivery: Delivery) -> bool:
        """Store a delivery durably; True if its handlers should run, False for a duplicate."""
        ...

    async def record_running(self, delivery: Delivery, consumer: str, lease: float) -> Recorded:
        """Store a delivery durably, a new one already claimed by ``consumer`` (the receiving
        process's runner) for ``lease`` seconds, its first attempt begun: ``"running"``. The
        runner runs the delivery it holds, with no claim reading it back. ``"pending"``: stored
        for a claim (a failed delivery redelivered, or a journal that does not hand over);
        ``"duplicate"``: seen before."""
        ...

    async def claim(self, consumer: str, limit: int, lease: float) -> list[Delivery]:
        """Take up to ``limit`` due deliveries for ``consumer`` for ``lease`` seconds."""
        ...

    async def renew(self, consumer: str, delivery_ids: list[str], lease: float) -> None:
        """Extend the lease of deliveries ``consumer`` is still running."""
        ...

    async def complete(self, delivery_id: str, consumer: str) -> bool:
        """The delivery's handlers all finished; False if ``consumer`` no longer held it."""
        ...

    async def retry(self, delivery_id: str, consumer: str, error: str, at: float) -> bool:
        """Run the delivery again at ``at`` (epoch seconds); ``error`` says why."""
        ...

    async def fail(self, delivery_id: str, consumer: str, error: str) -> bool:
        """Give up on the delivery: it stays as a dead letter with its error."""
        ...

    async def handler_done(self, delivery_id: str, handler: str) -> None:
        """One of the delivery's handlers (named by its key) finished: no later run repeats it."""
        ...

    async def requeue_expired(self) -> list[str]:
        """Make deliveries whose lease ran out pending again; return their ids."""
        ...

    async def release(self, consumer: str) -> list[str]:
        """Make every delivery ``consumer`` holds pending again now (it stopped or died)."""
        ...

    async def requeue(self, delivery_id: str) -> bool:
        """Run a done or failed delivery again (``deliveries replay``); False if it is not one."""
        ...

    async def active(self) -> int:
        """How many deliveries are pending (due or later) or running."""
        ...

    async def counts(self) -> Counts:
        """Deliveries pending, running and dead now."""
        ...

    async def get(self, delivery_id: str) -> Entry | None:
        """Everything known of one delivery, or None."""
        ...

    async def entries(self, status: Status | None = None, limit: int = 100) -> list[Entry]:
        """The newest deliveries, optionally only those with ``status``."""
        ...

    async def purge(self, finished_before: float) -> int:
        """Delete done and failed deliveries finished before a time; return how many."""
        ...

    async def close(self) -> None:
        """Release the journal's resources."""
        ...

    def damaged(self) -> str | None:
        """What damage was found in the journal's storage, or None: while damaged, the bot
        accepts no delivery and ``/readyz`` answers 503."""
        ...

    # Turns: periodic work done by one replica at a time (the redelivery sweep).

    async def take_turn(self, job: str, holder: str, seconds: float) -> bool:
        """Hold ``job`` for ``seconds`` from now (``holder`` holding it already: extend it);
        True if ``holder`` holds it now, False while another holder does."""
        ...

    async def end_turn(self, job: str, holder: str, succeeded_at: float | None) -> None:
        """Let go of ``job``; ``succeeded_at`` (when a run that succeeded began) is kept for
        :meth:`last_success`, unless a later one is kept already."""
        ...

    async def last_success(self, job: str) -> float | None:
        """When the last run of ``job`` that succeeded began (epoch seconds), or None."""
        ...


class ClaimFinisher:
    """``complete``, ``retry`` and ``fail`` for journals that close a claim in one step.

    A journal defines ``_finish``: if ``consumer`` still holds the running delivery, give it
    ``status`` (keeping ``error``, pending again from ``at``) and return True.
    """

    async def _finish(
        self, delivery_id: str, consumer: str, status: Status, error: str | None, at: float = 0
    ) -> bool:
        raise NotImplementedError

    async def complete(self, delivery_id: str, consumer: str) -> bool:
        """Mark the delivery done; False if ``consumer`` no longer held it."""
        return await self._finish(delivery_id, consumer, Status.DONE, None)

    async def retry(self, delivery_id: str, consumer: str, error: str, at: float) -> bool:
        """Make the delivery pending again from ``at``; False if ``consumer`` lost it."""
        return await self._finish(delivery_id, consumer, Status.PENDING, error, at)

    async def fail(self, delivery_id: str, consumer: str, error: str) -> bool:
        """Keep the delivery as a dead letter; False if ``consumer`` no longer held it."""
        return await self._finish(delivery_id, consumer, Status.FAILED, error)


__all__ = [
    "Attempt",
    "ClaimFinisher",
    "Counts",
    "Entry",
    "Journal",
    "JournalDamaged",
    "JournalUnavailable",
    "Recorded",
    "Status",
]
