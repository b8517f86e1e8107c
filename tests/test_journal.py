"""The journal contract, for SQLite and Redis alike: once-only recording, claims under
leases, retries, dead letters. Then what is particular to each: files, servers."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from framework.journal import Counts, Journal, JournalUnavailable, Status
from framework.journal.redis import RedisJournal, redact
from framework.journal.sqlite import SQLiteJournal
from framework.webhooks.delivery import Delivery
from tests.support import RedisServer, issue_opened


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def delivery(n: int, received_at: float | None = None) -> Delivery:
    d = Delivery.from_payload(f"d-{n}", "issues", issue_opened(n), {"x-github-event": "issues"})
    if received_at is not None:
        d.received_at = received_at
    return d


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", "redis"])
async def journal(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> AsyncIterator[Journal]:
    if request.param == "sqlite":
        journal: Journal = await SQLiteJournal.open(tmp_path / "journal.sqlite3", clock=clock)
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        journal = await RedisJournal.open(server.url, prefix=tmp_path.name, clock=clock)
    yield journal
    await journal.close()


@pytest.fixture
async def redis_journal(
    request: pytest.FixtureRequest, redis_server: RedisServer, clock: Clock
) -> AsyncIterator[RedisJournal]:
    """A Redis journal with keys of its own (the test's name as prefix)."""
    journal = await RedisJournal.open(redis_server.url, prefix=request.node.name, clock=clock)
    yield journal
    await journal.close()


@pytest.fixture
async def sqlite_journal(tmp_path: Path, clock: Clock) -> AsyncIterator[SQLiteJournal]:
    journal = await SQLiteJournal.open(tmp_path / "journal.sqlite3", clock=clock)
    yield journal
    await journal.close()


async def test_counts_follow_deliveries_through_their_states(
    journal: Journal, clock: Clock
) -> None:
    assert await journal.counts() == Counts(0, 0, 0, None)
    for n in range(1, 5):
        await journal.record(delivery(n, received_at=clock.now + n))
    first, second, third = await journal.claim("c1", 3, lease=30)
    counts = await journal.counts()
    assert (counts.pending, counts.running, counts.dead) == (1, 3, 0)
    assert counts.oldest_pending_at is not None and counts.oldest_pending_at <= clock.now + 4
    await journal.complete(first.id, "c1")
    await journal.fail(second.id, "c1", "boom")
    await journal.retry(third.id, "c1", "again", clock.now + 60)  # pending, later
    counts = await journal.counts()
    assert (counts.pending, counts.running, counts.dead) == (2, 0, 1)
    assert await journal.record(delivery(2)) is True  # the dead one, redelivered
    assert (await journal.counts()).dead == 0
    [again] = [d for d in await journal.claim("c1", 10, lease=30) if d.id == "d-2"]
    await journal.fail(again.id, "c1", "boom")
    assert (await journal.counts()).dead == 1
    assert await journal.requeue("d-2") is True  # replayed
    assert (await journal.counts()).dead == 0


async def test_a_delivery_is_new_once_and_a_duplicate_after(journal: Journal) -> None:
    assert await journal.record(delivery(1)) is True
    assert await journal.record(delivery(1)) is False
    [claimed] = await journal.claim("c1", 10, lease=30)
    assert await journal.record(delivery(1)) is False  # while running
    assert await journal.complete(claimed.id, "c1")
    assert await journal.record(delivery(1)) is False  # after it succeeded


async def test_sqlite_stores_a_delivery_handed_over_as_running_with_its_first_attempt(
    sqlite_journal: SQLiteJournal, clock: Clock
) -> None:
    assert await sqlite_journal.record_running(delivery(1), "c1", 30) == "running"
    entry = await sqlite_journal.get("d-1")
    assert entry is not None and (entry.status, entry.attempts) == (Status.RUNNING, 1)
    assert [(a.number, a.consumer, a.finished_at) for a in entry.history] == [(1, "c1", None)]
    assert await sqlite_journal.claim("c2", 10, lease=30) == []  # held: nobody claims it
    assert await sqlite_journal.record_running(delivery(1), "c1", 30) == "duplicate"
    assert await sqlite_journal.record(delivery(1)) is False
    assert await sqlite_journal.complete("d-1", "c1")  # finished like a claimed one
    entry = await sqlite_journal.get("d-1")
    assert entry is not None and entry.status is Status.DONE
    assert entry.history[0].finished_at == clock.now
    # The lease is a claim's: it runs out, and the delivery goes to another consumer.
    await sqlite_journal.record_running(delivery(2), "c1", 30)
    clock.now += 31
    assert await sqlite_journal.requeue_expired() == ["d-2"]
    [again] = await sqlite_journal.claim("c2", 10, lease=30)
    assert (again.id, again.attempt) == ("d-2", 2)


async def test_a_delivery_handed_over_is_stored_for_a_claim_where_it_cannot_be_held(
    journal: Journal,
) -> None:
    """A failed delivery redelivered runs the handlers it has not finished: it is stored
    pending, for a claim that reads them; Redis never holds one (a stream entry is for the
    first replica to read it)."""
    expected = "running" if isinstance(journal, SQLiteJournal) else "pending"
    assert await journal.record_running(delivery(1), "c1", 30) == expected
    assert await journal.record_running(delivery(1), "c1", 30) == "duplicate"
    if expected == "pending":
        await journal.claim("c1", 1, lease=30)
    await journal.fail("d-1", "c1", "boom")
    assert await journal.record_running(delivery(1), "c1", 30) == "pending"
    [claimed] = await journal.claim("c1", 10, lease=30)
    assert claimed.id == "d-1"


async def test_sqlite_outcomes_wait_for_company_before_they_commit(tmp_path: Path) -> None:
    journal = await SQLiteJournal.open(tmp_path / "journal.sqlite3", outcome_delay=0.5)
    try:
        for n in (1, 2):
            await journal.record(delivery(n))
        await journal.claim("c1", 2, lease=30)
        before = journal.transactions
        loop = asyncio.get_running_loop()
        started = loop.time()
        done = asyncio.ensure_future(journal.complete("d-1", "c1"))
        await asyncio.sleep(0.05)
        assert not done.done()  # waiting for company, up to 0.5 s
        # A delivery being recorded does not wait: it commits at once, with the outcome.
        assert await journal.record(delivery(3))
        assert await done
        assert journal.transactions - before == 1
        assert loop.time() - started < 0.4
        # Alone, an outcome commits once the delay is over, no later.
        started = loop.time()
        assert await journal.complete("d-2", "c1")
        assert 0.4 < loop.time() - started < 5
        assert (await journal.counts()).running == 0
    finally:
        await journal.close()


async def test_a_failed_delivery_runs_again_when_redelivered(journal: Journal) -> None:
    await journal.record(delivery(1))
    await journal.claim("c1", 1, lease=30)
    assert await journal.fail("d-1", "c1", "RuntimeError: boom")
    assert (await journal.get("d-1")).status is Status.FAILED  # type: ignore[union-attr]
    assert await journal.record(delivery(1)) is True
    assert (await journal.get("d-1")).status is Status.PENDING  # type: ignore[union-attr]


async def test_a_failed_delivery_redelivered_twice_at_once_runs_once_more(
    journal: Journal,
) -> None:
    await journal.record(delivery(1))
    await journal.claim("c1", 1, lease=30)
    await journal.fail("d-1", "c1", "RuntimeError: boom")
    again = await asyncio.gather(journal.record(delivery(1)), journal.record(delivery(1)))
    assert sorted(again) == [False, True]  # in one batch: the first runs, the second is a dup
    assert len(await journal.claim("c2", 10, lease=30)) == 1


async def test_what_is_stored_comes_back_byte_for_byte(
    tmp_path: Path, sqlite_journal: SQLiteJournal
) -> None:
    journal = sqlite_journal
    original = delivery(7)
    await journal.record(original)
    await journal.close()
    reopened = await SQLiteJournal.open(tmp_path / "journal.sqlite3")
    [claimed] = await reopened.claim("c", 1, lease=30)
    await reopened.close()
    assert claimed.body == original.body
    assert (claimed.id, claimed.name, claimed.action, claimed.installation_id) == (
        "d-7",
        "issues",
        "opened",
        original.installation_id,
    )
    assert claimed.headers == {"x-github-event": "issues"}
    assert claimed.event.issue.number == 7  # type: ignore[attr-defined]


async def test_claims_take_deliveries_in_order_and_never_the_same_twice(
    journal: Journal,
) -> None:
    for n in (1, 2, 3):
        await journal.record(delivery(n, received_at=1000.0 + n))
    first = await journal.claim("a", 2, lease=30)
    second = await journal.claim("b", 2, lease=30)
    assert [d.id for d in first] == ["d-1", "d-2"]
    assert [d.id for d in second] == ["d-3"]
    assert await journal.claim("c", 2, lease=30) == []


async def test_sqlite_claims_due_retries_and_new_deliveries_oldest_received_first(
    sqlite_journal: SQLiteJournal, clock: Clock
) -> None:
    # SQLite's claim asks for new deliveries and due retries apart (so that its index gives
    # the new ones in order, unsorted) and merges them. (Redis orders by when each is due.)
    journal = sqlite_journal
    for n in (1, 2, 3, 4, 5):
        await journal.record(delivery(n, received_at=1000.0 + n))
    assert [d.id for d in await journal.claim("c", 2, lease=30)] == ["d-1", "d-2"]
    await journal.retry("d-1", "c", "boom", at=clock.now + 5)
    await journal.retry("d-2", "c", "boom", at=clock.now + 300)
    clock.now += 10  # d-1 is due again, d-2 not yet
    assert [d.id for d in await journal.claim("c", 2, lease=30)] == ["d-1", "d-3"]
    assert [d.id for d in await journal.claim("c", 9, lease=30)] == ["d-4", "d-5"]
    clock.now += 300
    assert [d.id for d in await journal.claim("c", 9, lease=30)] == ["d-2"]


async def test_an_expired_lease_hands_the_delivery_to_another_consumer(
    journal: Journal, clock: Clock
) -> None:
    await journal.record(delivery(1))
    await journal.claim("dead", 1, lease=30)
    clock.now += 10
    assert await journal.requeue_expired() == []  # still leased
    await journal.renew("dead", ["d-1"], lease=30)  # until t+40
    clock.now += 25  # t+35: the first lease (t+30) is over, the renewed one is not
    assert await journal.requeue_expired() == []
    clock.now += 10  # t+45
    assert await journal.requeue_expired() == ["d-1"]
    [again] = await journal.claim("alive", 1, lease=30)
    assert again.id == "d-1"
    assert not await journal.complete("d-1", "dead")  # the dead consumer lost it
    assert await journal.complete("d-1", "alive")
    entry = await journal.get("d-1")
    assert entry is not None and entry.status is Status.DONE and entry.attempts == 2
    assert [(a.consumer, a.error) for a in entry.history] == [
        ("dead", "its consumer stopped (lease expired)"),
        ("alive", None),
    ]


async def test_a_retry_waits_until_its_time_and_keeps_the_error(
    journal: Journal, clock: Clock
) -> None:
    await journal.record(delivery(1))
    await journal.claim("c", 1, lease=30)
    assert await journal.retry("d-1", "c", "ConnectError: refused", at=clock.now + 60)
    assert await journal.claim("c", 1, lease=30) == []
    clock.now += 61
    [again] = await journal.claim("c", 1, lease=30)
    assert again.id == "d-1"
    entry = await journal.get("d-1")
    assert entry is not None
    assert (entry.status, entry.attempts, entry.last_error) == (
        Status.RUNNING,
        2,
        "ConnectError: refused",
    )
    assert [a.error for a in entry.history] == ["ConnectError: refused", None]


async def test_entries_list_newest_first_and_filter_by_status(journal: Journal) -> None:
    for n in range(1, 4):
        await journal.record(delivery(n, received_at=1000.0 + n))
    await journal.claim("c", 1, lease=30)
    await journal.fail("d-1", "c", "boom")
    assert [e.delivery.id for e in await journal.entries()] == ["d-3", "d-2", "d-1"]
    assert [e.delivery.id for e in await journal.entries(Status.FAILED)] == ["d-1"]
    assert await journal.get("nope") is None


async def test_purge_removes_only_finished_deliveries_older_than_asked(
    journal: Journal, clock: Clock
) -> None:
    for n in range(1, 4):
        await journal.record(delivery(n, received_at=1000.0 + n))
    await journal.claim("c", 2, lease=30)
    await journal.complete("d-1", "c")
    clock.now += 100
    await journal.fail("d-2", "c", "boom")
    assert await journal.purge(finished_before=clock.now - 50) == 1
    assert [e.delivery.id for e in await journal.entries()] == ["d-3", "d-2"]
    assert (await journal.get("d-1")) is None


async def test_a_duplicate_leaves_the_stored_body_alone(journal: Journal) -> None:
    first = delivery(1)
    await journal.record(first)
    second = delivery(1)
    second.body = b'{"action": "opened", "other": true}'
    assert await journal.record(second) is False
    [claimed] = await journal.claim("c", 5, lease=30)
    assert claimed.body == first.body


async def test_concurrent_records_are_all_stored_once(journal: Journal) -> None:
    results = await asyncio.gather(*(journal.record(delivery(n % 150)) for n in range(200)))
    assert sum(results) == 150  # 50 duplicates among them
    assert len(await journal.entries(limit=500)) == 150


async def test_concurrent_sqlite_records_share_transactions(
    sqlite_journal: SQLiteJournal,
) -> None:
    before = sqlite_journal.transactions
    assert all(await asyncio.gather(*(sqlite_journal.record(delivery(n)) for n in range(200))))
    assert sqlite_journal.transactions - before < 200  # group commit: fewer syncs than records


async def test_concurrent_redis_records_share_commands(redis_server: RedisServer) -> None:
    journal = await RedisJournal.open(redis_server.url, prefix="batched")
    try:
        await journal.record(delivery(0))  # loads the script
        before = await evalsha_calls(journal)
        results = await asyncio.gather(*(journal.record(delivery(n)) for n in range(200)))
        assert results == [False] + [True] * 199  # d-0 was recorded before
        assert await evalsha_calls(journal) - before < 20  # one command per batch, not each
        assert len(await journal.entries(limit=500)) == 200
    finally:
        await journal.close()


async def evalsha_calls(journal: RedisJournal) -> int:
    stats = await journal._redis.info("commandstats")
    return int(stats["cmdstat_evalsha"]["calls"])


async def test_the_file_is_in_wal_mode(tmp_path: Path, sqlite_journal: SQLiteJournal) -> None:
    await sqlite_journal.record(delivery(1))
    with sqlite3.connect(tmp_path / "journal.sqlite3") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_corrupt_file_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    path.write_bytes(b"this is not a database " * 100)
    with pytest.raises(JournalUnavailable, match="not a valid SQLite database") as err:
        await SQLiteJournal.open(path)
    assert str(path) in str(err.value)
    assert err.value.status == 503


async def test_a_locked_file_is_a_clear_error_and_stores_nothing(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = await SQLiteJournal.open(path, busy_timeout=0.2)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(JournalUnavailable, match="another process holds a lock"):
            await journal.record(delivery(1))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert await journal.entries() == []
    assert await journal.record(delivery(1)) is True  # and it recovers once the lock is gone
    await journal.close()


async def test_an_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(JournalUnavailable, match="cannot be opened"):
        await SQLiteJournal.open(tmp_path / "missing-dir" / "journal.sqlite3")


async def test_a_closed_journal_says_so(tmp_path: Path) -> None:
    journal = await SQLiteJournal.open(tmp_path / "j.sqlite3")
    await journal.close()
    with pytest.raises(JournalUnavailable, match="closed"):
        await journal.record(delivery(1))


async def test_headers_survive_as_json(journal: Journal) -> None:
    d = Delivery.from_payload("d-h", "push", {"ref": "x"}, {"x-github-hook-id": "9", "ü": "é"})
    await journal.record(d)
    entry = await journal.get("d-h")
    assert entry is not None and dict(entry.delivery.headers) == {"x-github-hook-id": "9", "ü": "é"}
    assert json.loads(entry.delivery.body) == {"ref": "x"}


async def test_a_full_journal_refuses_new_deliveries_and_keeps_the_stored_ones(
    tmp_path: Path,
) -> None:
    # The cap raises SQLITE_FULL, the same error a full disk gives.
    journal = await SQLiteJournal.open(tmp_path / "j.sqlite3", max_bytes=256 * 1024)
    stored = 0
    with pytest.raises(JournalUnavailable, match="the disk is full") as err:
        for n in range(1000):
            await journal.record(delivery(n))
            stored += 1
    assert 0 < stored < 1000
    assert err.value.status == 503
    assert len(await journal.entries(limit=2000)) == stored
    await journal.claim("c", 5, lease=30)  # what was stored is still worked off
    await journal.close()


async def test_a_burst_near_the_cap_stores_what_fits_and_refuses_only_the_rest(
    tmp_path: Path,
) -> None:
    journal = await SQLiteJournal.open(tmp_path / "j.sqlite3", max_bytes=256 * 1024)
    outcomes = await asyncio.gather(
        *(journal.record(delivery(n)) for n in range(200)), return_exceptions=True
    )
    stored = [o for o in outcomes if o is True]
    refused = [o for o in outcomes if isinstance(o, JournalUnavailable)]
    assert len(stored) + len(refused) == 200
    assert 0 < len(stored) < 200
    assert all(r.status == 503 and "the disk is full" in str(r) for r in refused)
    assert len(await journal.entries(limit=500)) == len(stored)
    await journal.close()


async def test_redis_going_away_is_a_clear_error_and_its_return_is_picked_up(
    tmp_path: Path,
) -> None:
    server = RedisServer.start(tmp_path, appendonly=True)
    journal = await RedisJournal.open(server.url)
    try:
        assert await journal.record(delivery(1))
        server.stop()
        with pytest.raises(JournalUnavailable, match="unusable: ConnectionError") as err:
            await journal.record(delivery(2))
        assert err.value.status == 503
        server.restart()
        assert await journal.record(delivery(1)) is False  # still known: appendonly kept it
        assert await journal.record(delivery(2)) is True
    finally:
        await journal.close()
        server.stop()


async def test_redis_keeps_bodies_beside_the_hashes_and_purges_them_too(
    redis_journal: RedisJournal, clock: Clock
) -> None:
    journal = redis_journal
    for n in (1, 2):
        await journal.record(delivery(n))
    assert await journal._raw.get(f"{journal._prefix}b:d-1") == delivery(1).body
    await journal.claim("c", 5, lease=30)
    await journal.complete("d-1", "c")
    clock.now += 10
    assert await journal.purge(finished_before=clock.now) == 1
    assert await journal._raw.exists(f"{journal._prefix}b:d-1") == 0
    assert await journal._raw.exists(f"{journal._prefix}b:d-2") == 1


async def test_redis_scripts_flushed_since_loading_are_loaded_again(
    redis_journal: RedisJournal,
) -> None:
    journal = redis_journal
    assert await journal.record(delivery(1))
    await journal._raw.script_flush()
    assert await journal.record(delivery(2))
    assert await journal.record(delivery(2)) is False
    assert len(await journal.claim("c", 5, lease=30)) == 2


async def test_a_redis_delivery_whose_body_was_deleted_fails_clearly(
    redis_journal: RedisJournal,
) -> None:
    journal = redis_journal
    for n in (1, 2):
        await journal.record(delivery(n))
    await journal._raw.delete(f"{journal._prefix}b:d-1")
    claimed = await journal.claim("c", 5, lease=30)
    assert [d.id for d in claimed] == ["d-2"]  # the other still runs
    entry = await journal.get("d-1")
    assert entry is not None and entry.status is Status.FAILED
    assert f"body is missing from Redis ({journal._prefix}b:d-1)" in (entry.last_error or "")


def test_redis_passwords_stay_out_of_messages() -> None:
    assert redact("redis://:hunter2@cache:6379/0") == "redis://***@cache:6379/0"
    assert redact("redis://bot:hunter2@cache:6379") == "redis://bot:***@cache:6379"
    assert redact("redis://cache:6379") == "redis://cache:6379"
