"""Redelivery of what GitHub could not deliver: which deliveries a sweep asks for, the turns
replicas take in the journal, and the bot's own sweeps (at start-up, every interval, one
replica at a time, through rate limits), against the fake GitHub's delivery list."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from framework import App, Settings
from framework.journal import Journal
from framework.journal.redis import RedisJournal
from framework.journal.sqlite import SQLiteJournal
from framework.platforms import redelivery
from framework.platforms.redelivery import (
    RedeliverySchedule,
    next_sweep_in,
    sweep,
    sweep_since,
    to_redeliver,
)
from framework.testing import FakeGitHub, run_bot, serve_async
from framework.webhooks.delivery import Delivery
from tests.support import APP_ID, PEM, SECRET, RedisServer, issue_opened

JOB = "redelivery:github"
DAY = 86400.0


class Clock:
    """Time the schedule keeps: its sleeps return at once, moving the clock on."""

    def __init__(self) -> None:
        self.now = time.time()
        self.sleeps: list[float] = []
        self.on_sleep: list[Callable[[float], Awaitable[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        for hook in self.on_sleep:
            await hook(seconds)


class Stop(Exception):
    """Ends a schedule's endless run in a test."""


def settings(fake_url: str, tmp_path: Path, **values: Any) -> Settings:
    defaults: dict[str, Any] = {
        "app_id": str(APP_ID),
        "private_key": PEM,
        "webhook_secret": SECRET,
        "github_api_url": fake_url,
        "journal_path": tmp_path / "deliveries.sqlite3",
    }
    return Settings(_env_file=None, **(defaults | values))  # type: ignore[call-arg]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def app(fake_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[App]:
    """An app whose client keeps the test's time (its waits for a rate limit too)."""
    app = App(settings(fake_url, tmp_path))
    app.client_shared.clock = clock
    app.client_shared.sleep = clock.sleep
    yield app
    await app.close()


def at(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def attempt(guid: str, number: int, moment: float, status: str = "OK") -> dict[str, Any]:
    return {"id": number, "guid": guid, "delivered_at": at(moment), "status": status}


# Which deliveries a sweep asks for ----------------------------------------------------------

T = 1_800_000_000.0


@pytest.mark.parametrize(
    ("attempts", "only_failed", "wanted"),
    [
        ([attempt("a", 1, T, "Invalid HTTP Response: 503")], True, [("a", 1)]),
        ([attempt("a", 1, T)], True, []),  # delivered
        ([attempt("a", 1, T)], False, [("a", 1)]),  # a tunnel's channel took it
        # failed, then delivered on a later attempt: nothing to ask for
        ([attempt("a", 2, T + 60), attempt("a", 1, T, "502")], True, []),
        # failed twice: the latest attempt is the one to redeliver
        ([attempt("a", 2, T + 60, "502"), attempt("a", 1, T, "502")], True, [("a", 2)]),
        ([attempt("a", 1, T - 1, "502")], True, []),  # before `since`
        # a later retry of an old failure brings it within reach
        ([attempt("a", 2, T + 5, "502"), attempt("a", 1, T - DAY, "502")], True, [("a", 2)]),
        (
            [attempt("b", 3, T + 9, "502"), attempt("c", 2, T + 8), attempt("a", 1, T, "502")],
            True,
            [("b", 3), ("a", 1)],
        ),
    ],
)
def test_a_sweep_asks_for_each_delivery_whose_attempts_since_then_all_failed(
    attempts: list[dict[str, Any]], only_failed: bool, wanted: list[tuple[str, int]]
) -> None:
    assert to_redeliver(attempts, since=T, only_failed=only_failed) == wanted


@pytest.mark.parametrize(
    ("now", "last", "started", "due_in"),
    [
        (T, None, T, 0.0),  # never swept: at once
        (T + 10, T - 3600, T, 0.0),  # the last sweep was before this bot's downtime
        (T + 10, T - 30, T, 860.0),  # another replica swept as this one started
        (T + 10, T + 5, T, 895.0),  # another replica swept just now
        (T + 900, T, T, 0.0),  # an interval since the last: due
        (T + 1000, T, T, 0.0),  # overdue
        (T + 899, T, T, 1.0),
    ],
)
def test_a_sweep_is_due_at_start_up_then_an_interval_after_the_last(
    now: float, last: float | None, started: float, due_in: float
) -> None:
    assert next_sweep_in(now, last, 900.0, started) == due_in


@pytest.mark.parametrize(
    ("last", "since"),
    [
        (None, T - 3 * DAY),  # the first sweep: GitHub's window
        (T - 3600, T - 3600 - 60),  # back to the last sweep's start, a minute's margin
        (T - 30 * DAY, T - 3 * DAY),  # never further back than GitHub keeps deliveries
    ],
)
def test_a_sweep_reaches_back_to_the_last_one_within_the_window(
    last: float | None, since: float
) -> None:
    assert sweep_since(T, last, 3 * DAY) == since


# Turns in the journal -----------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "redis"])
async def journal(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Journal]:
    if request.param == "sqlite":
        journal: Journal = await SQLiteJournal.open(tmp_path / "journal.sqlite3")
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        journal = await RedisJournal.open(server.url, prefix=tmp_path.name)
    yield journal
    await journal.close()


async def test_one_holder_at_a_time_takes_a_turn_and_the_last_success_is_kept(
    journal: Journal,
) -> None:
    assert await journal.last_success(JOB) is None
    assert await journal.take_turn(JOB, "replica-a", 60)
    assert not await journal.take_turn(JOB, "replica-b", 60)
    assert await journal.take_turn(JOB, "replica-a", 60)  # its own: extended
    assert await journal.take_turn("another-job", "replica-b", 60)  # jobs are apart
    await journal.end_turn(JOB, "replica-b", T)  # not its turn: it stays replica-a's
    assert not await journal.take_turn(JOB, "replica-c", 60)
    await journal.end_turn(JOB, "replica-a", T + 10)
    assert await journal.take_turn(JOB, "replica-b", 60)
    await journal.end_turn(JOB, "replica-b", None)  # failed: the last success stays
    assert await journal.last_success(JOB) == T + 10
    await journal.end_turn(JOB, "replica-b", T + 5)  # an older success does not win
    assert await journal.last_success(JOB) == T + 10
    assert await journal.last_success("another-job") is None


async def test_the_turn_of_a_holder_that_died_lapses(journal: Journal) -> None:
    assert await journal.take_turn(JOB, "died", 0.05)
    assert not await journal.take_turn(JOB, "living", 60)
    await asyncio.sleep(0.1)
    assert await journal.take_turn(JOB, "living", 60)


# The sweep ----------------------------------------------------------------------------------


def many_delivered(fake: FakeGitHub, count: int = 150) -> None:
    """Deliveries that succeeded: the failed ones added before end up on the second page."""
    for n in range(count):
        fake.add_hook_delivery(f"g-ok-{n}")


@pytest.mark.parametrize(
    ("remaining", "statuses"),
    [
        (0, [403, 200, 200]),  # GitHub refuses the first page: wait for its reset, ask again
        (1, [200, 200]),  # the first page spends the budget: the second waits, then goes
    ],
)
async def test_a_rate_limited_sweep_waits_for_the_reset_and_resumes_where_it_stopped(
    fake: FakeGitHub, app: App, clock: Clock, tmp_path: Path, remaining: int, statuses: list[int]
) -> None:
    old = fake.add_hook_delivery("g-old", status_code=0, delivered_at=clock.now - 3600)
    many_delivered(fake)
    new = fake.add_hook_delivery("g-new", status_code=502)
    fake.set_app_rate_limit(remaining=remaining)
    journal = await SQLiteJournal.open(tmp_path / "journal.sqlite3", clock=clock)
    schedule = RedeliverySchedule(
        lambda: app.github, journal, interval=900, window=3 * DAY, clock=clock, sleep=clock.sleep
    )
    held: list[bool] = []

    async def github_resets(_: float) -> None:
        held.append(await journal.take_turn(JOB, "another-replica", 60))
        fake.set_app_rate_limit(remaining=5000)

    clock.on_sleep.append(github_resets)
    try:
        # The next one is due an interval after this one began: after an hour's wait, now.
        assert await schedule.step() == 0
        assert len(clock.sleeps) == 1
        # Until GitHub's reset, as it said: a whole second of real time (the fake's window
        # opened after this clock was read, perhaps past a second's turn), so up to 3601 s.
        assert 3500 < clock.sleeps[0] <= 3601
        assert held == [False]  # the turn outlasted the wait: no other replica swept meanwhile
        pages = fake.calls_to("GET", "/app/hook/deliveries")
        assert [c.status for c in pages] == statuses  # the first page was not read twice
        assert sorted(fake.redeliveries) == sorted([new, old])  # each asked for once
        assert await journal.last_success(JOB) is not None
    finally:
        await journal.close()


async def test_a_sweep_gives_up_after_waiting_out_the_limit_too_often(
    fake: FakeGitHub, app: App, clock: Clock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add_hook_delivery("g-lost", status_code=0)
    limited = {"message": "You have exceeded a secondary rate limit."}
    fake.respond(
        "GET", "/app/hook/deliveries", status=403, json=limited, headers={"retry-after": "120"}
    )
    journal = await SQLiteJournal.open(tmp_path / "journal.sqlite3", clock=clock)
    schedule = RedeliverySchedule(
        lambda: app.github, journal, interval=900, window=3 * DAY, clock=clock, sleep=clock.sleep
    )
    try:
        wait = await schedule.step()
        assert clock.sleeps == [120] * redelivery.RATE_LIMIT_PAUSES
        assert 30 <= wait <= 60  # tried again after a backoff, not at once
        assert "could not sweep" in caplog.text and "RateLimited" in caplog.text
        assert await journal.last_success(JOB) is None  # the next sweep reaches as far back
        assert await journal.take_turn(JOB, "another-replica", 60)  # the turn was let go
    finally:
        await journal.close()
    assert fake.redeliveries == []


async def test_the_bot_sweeps_at_start_up_then_every_interval_of_its_clock(
    fake: FakeGitHub, app: App, clock: Clock, tmp_path: Path
) -> None:
    down = fake.add_hook_delivery("g-down", status_code=0, delivered_at=clock.now - 3600)
    journal = await SQLiteJournal.open(tmp_path / "journal.sqlite3", clock=clock)
    schedule = RedeliverySchedule(
        lambda: app.github, journal, interval=900, window=3 * DAY, clock=clock, sleep=clock.sleep
    )
    failed_later: list[int] = []

    async def meanwhile(_: float) -> None:
        # A delivery fails during each interval (GitHub's clock is the test's here).
        n = len(clock.sleeps)
        failed_later.append(
            fake.add_hook_delivery(f"g-later-{n}", status_code=503, delivered_at=clock.now - 300)
        )
        if n == 3:
            raise Stop

    clock.on_sleep.append(meanwhile)
    try:
        with pytest.raises(Stop):
            await schedule.run()
    finally:
        await journal.close()
    assert clock.sleeps == [900, 900, 900]
    assert len(fake.calls_to("GET", "/app/hook/deliveries")) == 3  # at start-up, then twice
    # Each asked for once, by the first sweep after it failed; the third's sweep is due next.
    assert fake.redeliveries == [down, *failed_later[:2]]


async def test_a_sweep_between_intervals_waits_for_its_time(
    fake: FakeGitHub, app: App, clock: Clock, tmp_path: Path
) -> None:
    journal = await SQLiteJournal.open(tmp_path / "journal.sqlite3", clock=clock)
    schedule = RedeliverySchedule(
        lambda: app.github, journal, interval=900, window=3 * DAY, clock=clock, sleep=clock.sleep
    )
    try:
        assert await schedule.step() == 900
        clock.now += 600
        assert await schedule.step() == 300  # woken early: not due yet, nothing listed
        assert len(fake.calls_to("GET", "/app/hook/deliveries")) == 1
    finally:
        await journal.close()


# The bot ------------------------------------------------------------------------------------


async def eventually(condition: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the condition did not hold in time")
        await asyncio.sleep(0.02)


async def stored(path: Path, *guids: str, last_success: float | None = None) -> None:
    """What a bot that ran before left in its journal: deliveries done, a successful sweep."""
    journal = await SQLiteJournal.open(path)
    for guid in guids:
        headers = {"x-github-event": "issues", "x-github-delivery": guid}
        await journal.record(Delivery.from_payload(guid, "issues", issue_opened(), headers))
        [claimed] = await journal.claim("earlier-bot", 1, lease=30)
        await journal.complete(claimed.id, "earlier-bot")
    if last_success is not None:
        await journal.end_turn(JOB, "earlier-bot", last_success)
    await journal.close()


async def test_a_bot_started_after_deliveries_failed_has_github_redeliver_them(
    fake: FakeGitHub, fake_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REDELIVERY_SYNC_INTERVAL")  # the default: on, with app credentials
    now = time.time()
    lost = fake.add_hook_delivery("g-lost", status_code=0, delivered_at=now - 3600)
    fake.add_hook_delivery("g-expired", status_code=0, delivered_at=now - 4 * DAY)
    fake.add_hook_delivery("g-fine", status_code=202)
    fake.add_hook_delivery("g-stored", status_code=502)  # a proxy's 502, yet the bot had it
    await stored(tmp_path / "deliveries.sqlite3", "g-stored")
    app = App(settings(fake_url, tmp_path))
    assert app.settings.redelivery_interval() == 900
    async with serve_async(app):
        journal = await app.open_journal()
        await eventually(lambda: _swept(journal))
    assert fake.redeliveries == [lost]


async def _swept(journal: Journal) -> bool:
    return await journal.last_success(JOB) is not None


async def test_a_restarted_bot_reaches_back_to_its_last_successful_sweep(
    fake: FakeGitHub, fake_url: str, tmp_path: Path
) -> None:
    now = time.time()
    fake.add_hook_delivery("g-asked-before", status_code=0, delivered_at=now - 3 * 3600)
    down = fake.add_hook_delivery("g-while-down", status_code=0, delivered_at=now - 600)
    await stored(tmp_path / "deliveries.sqlite3", last_success=now - 2 * 3600)
    app = App(settings(fake_url, tmp_path, redelivery_sync_interval="15m"))
    async with serve_async(app):
        journal = await app.open_journal()
        await eventually(lambda: _swept_after(journal, now))
    assert fake.redeliveries == [down]
    assert len(fake.calls_to("GET", "/app/hook/deliveries")) == 1


async def _swept_after(journal: Journal, moment: float) -> bool:
    last = await journal.last_success(JOB)
    return last is not None and last >= moment


@pytest.mark.parametrize(("interval", "sweeps"), [("0", False), ("1h", True)])
async def test_redelivery_sync_interval_0_turns_the_bots_sweeps_off(
    fake: FakeGitHub, fake_url: str, tmp_path: Path, interval: str, sweeps: bool
) -> None:
    fake.add_hook_delivery("g-lost", status_code=0)
    app = App(settings(fake_url, tmp_path, redelivery_sync_interval=interval))
    async with serve_async(app):
        names = {task.get_name() for task in asyncio.all_tasks()}
        assert ("redelivery:github" in names) is sweeps
        if sweeps:
            await eventually(lambda: _swept_app(app))
    assert bool(fake.redeliveries) is sweeps


async def _swept_app(app: App) -> bool:
    return await _swept(await app.open_journal())


@pytest.mark.parametrize(
    ("values", "interval"),
    [
        ({}, 900.0),  # the default, with the app's credentials
        ({"redelivery_sync_interval": "1h"}, 3600.0),
        ({"redelivery_sync_interval": "90"}, 90.0),
        ({"redelivery_sync_interval": "0"}, 0.0),
        ({"app_id": None}, 0.0),  # no app to list deliveries with
    ],
)
def test_the_interval_is_15_minutes_with_the_apps_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, values: dict[str, Any], interval: float
) -> None:
    monkeypatch.delenv("REDELIVERY_SYNC_INTERVAL")
    assert settings("http://127.0.0.1:1", tmp_path, **values).redelivery_interval() == interval


def test_the_first_sweeps_window_is_githubs_unless_set(tmp_path: Path) -> None:
    assert settings("http://127.0.0.1:1", tmp_path).redelivery_window == 3 * DAY
    assert settings("http://127.0.0.1:1", tmp_path, redelivery_window="7d").redelivery_window == (
        7 * DAY
    )


async def test_two_replicas_on_one_redis_sweep_once(
    fake: FakeGitHub,
    fake_url: str,
    tmp_path: Path,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lost = [
        fake.add_hook_delivery(f"g-lost-{n}", status_code=0, delivered_at=time.time() - 3600)
        for n in range(3)
    ]
    steps: list[str] = []
    real_step = RedeliverySchedule.step

    async def counted(schedule: RedeliverySchedule) -> float:
        wait = await real_step(schedule)
        steps.append(schedule.holder)
        return wait

    monkeypatch.setattr(RedeliverySchedule, "step", counted)
    replicas = [
        App(
            settings(
                fake_url,
                tmp_path / name,
                redis_url=redis_server.url,
                redis_prefix=tmp_path.name,
                redelivery_sync_interval="15m",
            ),
            name=name,
        )
        for name in ("replica-a", "replica-b")
    ]
    async with AsyncExitStack() as stack:
        # Both start at once: one's sweep runs while the other looks.
        await asyncio.gather(*(stack.enter_async_context(serve_async(r)) for r in replicas))
        await eventually(lambda: _true(len(set(steps)) == 2))  # each replica looked
        journal = await replicas[0].open_journal()
        assert await journal.last_success(JOB) is not None
    assert len(fake.calls_to("GET", "/app/hook/deliveries")) == 1
    assert sorted(fake.redeliveries) == sorted(lost)


async def _true(value: bool) -> bool:
    return value


async def test_the_cli_sync_and_the_tunnel_use_the_same_sweep(
    fake: FakeGitHub, app: App, clock: Clock, tmp_path: Path
) -> None:
    """``only_failed=False`` (the tunnel): what a channel took and the journal lacks."""
    taken = fake.add_hook_delivery("g-taken-by-the-channel", status_code=200)
    journal = await SQLiteJournal.open(tmp_path / "journal.sqlite3")
    try:
        assert await sweep(app.github, journal, clock.now - 3600, dry_run=True) == []
        asked = await sweep(app.github, journal, clock.now - 3600, only_failed=False)
    finally:
        await journal.close()
    assert asked == ["g-taken-by-the-channel"]
    assert fake.redeliveries == [taken]


async def test_a_bot_under_run_bot_sweeps_only_when_the_test_asks() -> None:
    for interval, listings in ((None, 0), (900, 1)):
        app = App()
        options = {} if interval is None else {"redelivery_sync_interval": interval}
        async with run_bot(app, **options) as bot:
            names = {task.get_name() for task in asyncio.all_tasks()}
            assert ("redelivery:github" in names) is bool(listings)
            if listings:
                await eventually(lambda: _swept_app(app))  # noqa: B023 - awaited at once
        assert len(bot.fake.calls_to("GET", "/app/hook/deliveries")) == listings
