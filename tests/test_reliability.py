"""Never lost, never run twice: each behaviour on the SQLite journal and on a real Redis.

Bots run as real processes (receiver and handler process) against the strict fake GitHub;
a label call recorded by the fake is one run of a handler, so runs are counted across
processes, kills and restarts.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from framework import App, Context, Settings
from framework.journal import Journal, Status
from framework.testing import FakeGitHub, serve_async
from tests.support import (
    INSTALLATION,
    PEM,
    ROOT,
    SECRET,
    RedisServer,
    issue_opened,
    signed,
    start_bot,
)
from tests.test_handler_process import handler_pids, labelled

T = TypeVar("T")
SLOW_BOT = str(ROOT / "tests" / "bots" / "slow_labeler.py")
HOOK = "/api/github/webhooks"


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Settings (as environment variables) that select one journal backend."""
    if request.param == "sqlite":
        return {"JOURNAL_PATH": str(tmp_path / "journal.sqlite3")}
    server: RedisServer = request.getfixturevalue("redis_server")
    # A short lease, so a killed replica's work is taken over within the test's patience.
    return {"REDIS_URL": server.url, "REDIS_PREFIX": tmp_path.name, "JOURNAL_LEASE_SECONDS": "2"}


def new_app(backend: dict[str, str], fake_url: str = "http://127.0.0.1:9", **values: Any) -> App:
    settings: dict[str, Any] = {
        "app_id": "123",
        "private_key": PEM,
        "webhook_secret": SECRET,
        "github_api_url": fake_url,
        "shutdown_grace_seconds": 5,
        **{k.lower(): v for k, v in backend.items()},
        **values,
    }
    return App(Settings(**settings), name="reliable-bot")


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.05)


def post_all(base: str, numbers: range, expect: int = 202) -> None:
    async def go() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:

            async def one(n: int) -> None:
                body, headers = signed("issues", issue_opened(n), f"d-{n}")
                response = await client.post(HOOK, content=body, headers=headers)
                assert response.status_code == expect, response.text

            for start in range(numbers.start, numbers.stop, 10):
                await asyncio.gather(*(one(n) for n in range(start, min(start + 10, numbers.stop))))

    asyncio.run(go())


def runs(fake: FakeGitHub) -> dict[int, int]:
    """Issue number -> how many times its handler ran to the label call."""
    return {number: len(labels) for number, labels in labelled(fake).items()}


def stop(bot: subprocess.Popen[str], *, signalled: bool = False) -> str:
    """SIGTERM the bot (unless ``signalled`` already: a second one stops at once) and wait."""
    if bot.poll() is None and not signalled:
        bot.send_signal(signal.SIGTERM)
    try:
        return bot.communicate(timeout=40)[0]
    finally:
        if bot.poll() is None:
            os.killpg(bot.pid, signal.SIGKILL)


def test_a_killed_bot_runs_every_accepted_delivery_after_its_restart(
    backend: dict[str, str], fake: FakeGitHub, fake_url: str, tmp_path: Path
) -> None:
    env = {**backend, "SLOW_SECONDS": "0.3", "HANDLER_CONCURRENCY": "8"}
    bot, base = start_bot(SLOW_BOT, fake_url, tmp_path, **env)
    try:
        post_all(base, range(1, 101))  # every one stored before its 202
        wait_until(lambda: len(runs(fake)) >= 10, 30, "some deliveries to be handled")
    finally:
        os.killpg(bot.pid, signal.SIGKILL)  # receiver and handler process: no goodbye
        bot.wait(10)
    at_kill = len(runs(fake))
    assert at_kill < 100, "the kill came too late to test anything"
    bot, base = start_bot(SLOW_BOT, fake_url, tmp_path, **env)
    try:
        wait_until(lambda: len(runs(fake)) == 100, 60, "all 100 deliveries after the restart")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {len(runs(fake))} done\n{stop(bot)}") from None
    finally:
        output = stop(bot)
    counts = runs(fake)
    assert sorted(counts) == list(range(1, 101)), output
    # Only those in flight at the kill (at most HANDLER_CONCURRENCY) may have run twice.
    assert sum(counts.values()) - 100 <= 8, counts


def test_the_same_delivery_sent_three_times_runs_once(
    backend: dict[str, str], fake: FakeGitHub, fake_url: str, tmp_path: Path
) -> None:
    bot, base = start_bot(SLOW_BOT, fake_url, tmp_path, **backend, SLOW_SECONDS="0.5")
    try:
        body, headers = signed("issues", issue_opened(7), "d-same")
        first = httpx.post(base + HOOK, content=body, headers=headers)
        again = httpx.post(base + HOOK, content=body, headers=headers)  # while it runs
        wait_until(lambda: runs(fake) == {7: 1}, 20, "the first run")
        wait_until(lambda: _status(backend, "d-same") is Status.DONE, 20, "its completion")
        after = httpx.post(base + HOOK, content=body, headers=headers)  # after it succeeded
        time.sleep(1)
    finally:
        stop(bot)
    assert (first.status_code, again.status_code, after.status_code) == (202, 200, 200)
    assert again.json() == {"ok": True, "duplicate": True}
    assert runs(fake) == {7: 1}


def _from_journal(backend: dict[str, str], read: Callable[[Journal], Awaitable[T]]) -> T:
    """Read the backend's journal from outside the bot, as an operator's command would."""

    async def go() -> T:
        app = new_app(backend)
        try:
            return await read(await app.open_journal())
        finally:
            await app.close()

    return asyncio.run(go())


def _running(backend: dict[str, str]) -> int:
    async def read(journal: Journal) -> int:
        return len(await journal.entries(Status.RUNNING))

    return _from_journal(backend, read)


def _status(backend: dict[str, str], delivery_id: str) -> Status | None:
    async def read(journal: Journal) -> Status | None:
        entry = await journal.get(delivery_id)
        return entry.status if entry else None

    return _from_journal(backend, read)


async def test_a_handler_failing_twice_then_succeeding_runs_three_times_and_is_done(
    backend: dict[str, str],
) -> None:
    app = new_app(backend, retry_backoff_seconds=0.05)
    attempts: list[int] = []
    reported: list[BaseException] = []

    @app.on("issues.opened")
    async def flaky(ctx: Context) -> None:
        attempts.append(ctx.delivery.attempt)
        if len(attempts) < 3:
            raise RuntimeError(f"flaky {len(attempts)}")

    app.on_error(lambda ctx, error: reported.append(error))
    async with serve_async(app) as url:
        body, headers = signed("issues", issue_opened(1), "d-flaky")
        async with httpx.AsyncClient() as client:
            assert (await client.post(url + HOOK, content=body, headers=headers)).status_code == 202
        await app.wait_idle(within=20)
        entry = await (await app.open_journal()).get("d-flaky")
    assert attempts == [1, 2, 3]
    assert reported == []  # it succeeded in the end: nothing for on_error
    assert entry is not None and entry.status is Status.DONE and entry.attempts == 3
    assert [a.error for a in entry.history] == [
        "RuntimeError: flaky 1",
        "RuntimeError: flaky 2",
        None,
    ]
    first, second, third = (a.started_at for a in entry.history)
    # Backoff 0.05 s doubling, jittered over its upper half: >= 0.025 s, then >= 0.05 s.
    assert second - first >= 0.025 and third - second >= 0.05


async def test_a_handler_that_keeps_failing_is_kept_as_failed_and_on_error_sees_it(
    backend: dict[str, str],
) -> None:
    app = new_app(backend, retry_backoff_seconds=0.01, retry_max_attempts=3)
    attempts: list[int] = []
    reported: list[tuple[str, str]] = []

    @app.on("issues.opened")
    async def broken(ctx: Context) -> None:
        attempts.append(ctx.delivery.attempt)
        raise ValueError("always")

    @app.on_error
    async def report(ctx: Context, error: Exception) -> None:
        reported.append((ctx.delivery_id, str(error)))

    async with serve_async(app) as url:
        body, headers = signed("issues", issue_opened(1), "d-dead")
        async with httpx.AsyncClient() as client:
            await client.post(url + HOOK, content=body, headers=headers)
            await app.wait_idle(within=20)
            # A dead letter runs again when GitHub redelivers it.
            again = await client.post(url + HOOK, content=body, headers=headers)
            await app.wait_idle(within=20)
        entry = await (await app.open_journal()).get("d-dead")
    assert again.status_code == 202
    # Three runs; the redelivery gets three more (a fresh budget: maybe a fix was deployed).
    assert attempts == [1, 2, 3, 1, 2, 3]
    assert reported == [("d-dead", "always"), ("d-dead", "always")]
    assert entry is not None and entry.status is Status.FAILED
    assert entry.last_error == "ValueError: always"
    assert entry.attempts == len(entry.history) == 6


async def test_a_rate_limited_handler_waits_as_long_as_github_asks(
    backend: dict[str, str], fake: FakeGitHub, fake_url: str
) -> None:
    # The client waits out short limits itself (test_client_limits); told not to wait at all,
    # it raises RateLimited, and the runner runs the delivery again when GitHub said.
    app = new_app(
        backend, fake_url, retry_backoff_seconds=0.01, github_max_rate_limit_wait_seconds=0
    )
    fake.respond(
        "POST",
        "/repos/{owner}/{repo}/issues/{number}/labels",
        status=403,
        json={"message": "You have exceeded a secondary rate limit."},
        headers={"retry-after": "1"},
        times=1,
    )
    starts: list[float] = []

    @app.on("issues.opened")
    async def label(ctx: Context) -> None:
        starts.append(time.monotonic())
        path = f"/repos/{ctx.repo_full_name}/issues/1/labels"
        await ctx.github.post(path, json={"labels": ["x"]})

    async with serve_async(app) as url:
        body, headers = signed("issues", issue_opened(1), "d-limited")
        async with httpx.AsyncClient() as client:
            await client.post(url + HOOK, content=body, headers=headers)
        await app.wait_idle(within=20)
    assert len(starts) == 2
    assert starts[1] - starts[0] >= 1.0  # retry-after, not the 10 ms backoff
    assert runs(fake) == {1: 1}


def test_sigterm_finishes_running_handlers_and_keeps_the_rest(
    backend: dict[str, str], fake: FakeGitHub, fake_url: str, tmp_path: Path
) -> None:
    env = {**backend, "SLOW_SECONDS": "1", "HANDLER_CONCURRENCY": "4"}
    bot, base = start_bot(SLOW_BOT, fake_url, tmp_path, SHUTDOWN_GRACE_SECONDS="20", **env)
    post_all(base, range(1, 11))
    # Four run (HANDLER_CONCURRENCY); with SQLite the rest are held, running for this bot too.
    wait_until(lambda: _running(backend) >= 4, 20, "four handlers in their sleep")
    bot.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    try:
        ready = httpx.get(base + "/readyz")
        healthy = httpx.get(base + "/healthz")
        body, headers = signed("issues", issue_opened(99), "d-late")
        late = httpx.post(base + HOOK, content=body, headers=headers)
    finally:
        output = stop(bot, signalled=True)
    assert bot.returncode == 0, output
    assert (ready.status_code, healthy.status_code, late.status_code) == (503, 200, 503)
    done_at_exit = runs(fake)
    assert len(done_at_exit) >= 4  # the four in flight finished, not cancelled
    # What was left (with Redis, the rest is for other replicas) runs at the next start.
    bot, base = start_bot(SLOW_BOT, fake_url, tmp_path, **env)
    try:
        wait_until(lambda: len(runs(fake)) == 10, 30, "the rest after the restart")
    finally:
        stop(bot)
    assert runs(fake) == {n: 1 for n in range(1, 11)}


def test_two_replicas_on_one_redis_share_the_work_and_one_token(
    redis_server: RedisServer, fake: FakeGitHub, fake_url: str, tmp_path: Path
) -> None:
    env = {
        "REDIS_URL": redis_server.url,
        "REDIS_PREFIX": tmp_path.name,
        "HANDLER_PROCESSES": "1",
        "SLOW_SECONDS": "0.05",
        "HANDLER_CONCURRENCY": "8",
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, base_a = start_bot(SLOW_BOT, fake_url, tmp_path / "a", **env)
    second, base_b = start_bot(SLOW_BOT, fake_url, tmp_path / "b", **env)
    [child_a], [child_b] = handler_pids(first), handler_pids(second)
    try:
        # A load balancer alternating between them; each replica sends its work onward.
        _alternate(base_a, base_b, range(1, 201))
        wait_until(lambda: len(runs(fake)) == 200, 60, "all 200 deliveries")
        time.sleep(0.5)
    finally:
        stop(first)
        stop(second)
    assert runs(fake) == {n: 1 for n in range(1, 201)}
    assert fake.mint_count(INSTALLATION) == 1
    ran_in = {n: labels[0] for n, labels in labelled(fake).items()}
    assert set(ran_in.values()) <= {f"by-{child_a}", f"by-{child_b}"}
    # Odd numbers went to replica A, even to B: work crossed from one replica to the other.
    crossed = [n for n, label in ran_in.items() if label != f"by-{child_a if n % 2 else child_b}"]
    assert crossed


def _alternate(base_a: str, base_b: str, numbers: range) -> None:
    async def go() -> None:
        async with httpx.AsyncClient(timeout=20) as client:

            async def one(n: int) -> None:
                base = base_a if n % 2 else base_b
                body, headers = signed("issues", issue_opened(n), f"d-{n}")
                response = await client.post(base + HOOK, content=body, headers=headers)
                assert response.status_code == 202, response.text

            for start in range(numbers.start, numbers.stop, 20):
                await asyncio.gather(*(one(n) for n in range(start, min(start + 20, numbers.stop))))

    asyncio.run(go())


def test_handler_processes_on_sqlite_share_one_token(
    fake: FakeGitHub, fake_url: str, tmp_path: Path
) -> None:
    env = {
        "JOURNAL_PATH": str(tmp_path / "journal.sqlite3"),
        "HANDLER_PROCESSES": "2",
        "SLOW_SECONDS": "0.05",
        "HANDLER_CONCURRENCY": "8",
    }
    bot, base = start_bot(SLOW_BOT, fake_url, tmp_path, **env)
    children = handler_pids(bot)
    try:
        post_all(base, range(1, 201))
        wait_until(lambda: len(runs(fake)) == 200, 60, "all 200 deliveries")
    finally:
        output = stop(bot)
    assert len(children) == 2, output
    assert runs(fake) == {n: 1 for n in range(1, 201)}
    ran_in = {labels[0] for labels in labelled(fake).values()}
    assert ran_in == {f"by-{pid}" for pid in children}  # both processes needed a token
    assert fake.mint_count(INSTALLATION) == 1, output
