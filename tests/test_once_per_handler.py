"""Exactly once per handler: a retry, a recovery or a redelivery reruns only the handlers of
the delivery that did not finish. Each behaviour on the SQLite journal and on a real Redis,
against the strict fake GitHub."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path

import httpx
import pytest

from framework import App, Context
from framework.dispatch.routing import Router
from framework.journal import Status
from framework.journal.sqlite import SCHEMA_VERSION, SQLiteJournal
from framework.testing import FakeGitHub, serve_async
from framework.webhooks.delivery import Delivery
from tests import test_reliability
from tests.support import ROOT, issue_opened, signed, start_bot
from tests.test_reliability import HOOK, new_app, post_all, stop, wait_until

backend = test_reliability.backend  # the fixture: each test on SQLite and on a real Redis

TWO_HANDLERS_BOT = str(ROOT / "tests" / "bots" / "comment_and_slow_label.py")


def posted(fake: FakeGitHub, what: str) -> dict[int, int]:
    """Issue number -> successful POSTs to its ``what`` (``comments``, ``labels``)."""
    found: dict[int, int] = {}
    for call in fake.calls:
        if call.method == "POST" and call.path.endswith(f"/{what}") and call.status < 300:
            number = int(call.path.split("/")[-2])
            found[number] = found.get(number, 0) + 1
    return found


def comments(fake: FakeGitHub) -> dict[int, int]:
    return posted(fake, "comments")


def slow_labels(fake: FakeGitHub) -> dict[int, int]:
    return posted(fake, "labels")


def with_comment(app: App) -> None:
    """Give ``app`` a handler that comments on the issue."""

    @app.on("issues.opened")
    async def comment(ctx: Context) -> None:
        await ctx.github.post(
            f"/repos/{ctx.repo_full_name}/issues/1/comments", json={"body": "thanks"}
        )


def comment_and_flaky(app: App) -> list[int]:
    """Give ``app`` a handler that comments and one that fails its first run; return the
    attempts the flaky one saw."""
    flaky_runs: list[int] = []
    with_comment(app)

    @app.on("issues.opened")
    async def flaky(ctx: Context) -> None:
        flaky_runs.append(ctx.delivery.attempt)
        if len(flaky_runs) == 1:
            raise RuntimeError("once")

    return flaky_runs


async def _send(url: str, delivery_id: str, number: int = 1) -> httpx.Response:
    body, headers = signed("issues", issue_opened(number), delivery_id)
    async with httpx.AsyncClient() as client:
        return await client.post(url + HOOK, content=body, headers=headers)


async def test_a_retry_reruns_only_the_failing_handler_so_the_comment_is_posted_once(
    backend: dict[str, str], fake: FakeGitHub, fake_url: str
) -> None:
    app = new_app(backend, fake_url, retry_backoff_seconds=0.01)
    flaky_runs = comment_and_flaky(app)
    reported: list[BaseException] = []
    app.on_error(lambda ctx, error: reported.append(error))
    async with serve_async(app) as url:
        assert (await _send(url, "d-two")).status_code == 202
        await app.wait_idle(within=20)
        entry = await (await app.open_journal()).get("d-two")
    assert flaky_runs == [1, 2]
    assert comments(fake) == {1: 1}
    assert reported == []
    assert entry is not None and entry.status is Status.DONE and entry.attempts == 2


async def test_on_error_sees_each_failing_handler_once_and_a_redelivery_spares_the_comment(
    backend: dict[str, str], fake: FakeGitHub, fake_url: str
) -> None:
    app = new_app(backend, fake_url, retry_backoff_seconds=0.01, retry_max_attempts=3)
    runs: dict[str, list[int]] = {"first": [], "second": []}
    reported: list[tuple[str, str]] = []
    with_comment(app)

    @app.on("issues.opened")
    async def first(ctx: Context) -> None:
        runs["first"].append(ctx.delivery.attempt)
        raise ValueError("first broke")

    @app.on("issues.opened")
    async def second(ctx: Context) -> None:
        runs["second"].append(ctx.delivery.attempt)
        raise KeyError("second broke")

    @app.on_error
    async def report(ctx: Context, error: Exception) -> None:
        reported.append((ctx.delivery_id, str(error)))

    async with serve_async(app) as url:
        await _send(url, "d-dead")
        await app.wait_idle(within=20)
        after_first = sorted(reported)
        # GitHub redelivers the dead letter: the failing handlers run again, the comment not.
        again = await _send(url, "d-dead")
        await app.wait_idle(within=20)
        entry = await (await app.open_journal()).get("d-dead")
    assert after_first == [("d-dead", "'second broke'"), ("d-dead", "first broke")]
    assert again.status_code == 202
    assert runs == {"first": [1, 2, 3, 1, 2, 3], "second": [1, 2, 3, 1, 2, 3]}
    assert len(reported) == 4
    assert comments(fake) == {1: 1}
    assert entry is not None and entry.status is Status.FAILED and entry.attempts == 6
    assert entry.handlers_done == {f"{__name__}:with_comment.<locals>.comment"}


async def test_a_replay_of_a_done_delivery_runs_every_handler_again(
    backend: dict[str, str], fake: FakeGitHub, fake_url: str
) -> None:
    app = new_app(backend, fake_url, retry_backoff_seconds=0.01)
    flaky_runs = comment_and_flaky(app)
    async with serve_async(app) as url:
        await _send(url, "d-replay")
        await app.wait_idle(within=20)
        journal = await app.open_journal()
        assert await journal.requeue("d-replay")  # what `deliveries replay` does
        app.runner.wake()
        await app.wait_idle(within=20)
    assert comments(fake) == {1: 2}  # the operator asked for it all again
    assert flaky_runs == [1, 2, 1]


def test_a_handler_process_killed_mid_delivery_reruns_only_the_unfinished_handler(
    backend: dict[str, str], fake: FakeGitHub, fake_url: str, tmp_path: Path
) -> None:
    env = {**backend, "HANDLER_PROCESSES": "1", "SLOW_SECONDS": "3"}
    bot, base = start_bot(TWO_HANDLERS_BOT, fake_url, tmp_path, **env)
    try:
        post_all(base, range(1, 3))
        wait_until(lambda: comments(fake) == {1: 1, 2: 1}, 20, "both comments")
        # The comments' records follow their calls at once; the labels are seconds away.
        wait_until(lambda: _recorded(backend, ["d-1", "d-2"]), 10, "the comments recorded")
    finally:
        os.killpg(bot.pid, signal.SIGKILL)  # receiver and handler process, mid-delivery
        bot.wait(10)
    assert slow_labels(fake) == {}, "the kill came too late to test anything"
    bot, base = start_bot(TWO_HANDLERS_BOT, fake_url, tmp_path, **env)
    try:
        wait_until(lambda: slow_labels(fake) == {1: 1, 2: 1}, 40, "the labels after the restart")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stop(bot)}") from None
    finally:
        output = stop(bot)
    assert comments(fake) == {1: 1, 2: 1}, output  # not posted again


def _recorded(backend: dict[str, str], delivery_ids: list[str]) -> bool:
    """Whether each delivery's ``comment`` handler is recorded as finished in the journal."""
    key = "comment_and_slow_label:comment"  # a bot file is imported as a module of its name
    if "JOURNAL_PATH" in backend:
        with sqlite3.connect(backend["JOURNAL_PATH"]) as conn:
            rows = conn.execute("SELECT delivery_id FROM handlers_done WHERE handler = ?", (key,))
            return {row[0] for row in rows} >= set(delivery_ids)
    import redis

    client = redis.Redis.from_url(backend["REDIS_URL"])
    prefix = "{" + backend["REDIS_PREFIX"] + "}:h:"
    try:
        return all(client.sismember(prefix + d, key) for d in delivery_ids)
    finally:
        client.close()


def test_handlers_with_equal_names_are_told_apart_by_registration_order() -> None:
    router = Router()

    def make() -> object:
        async def handler(ctx: Context) -> None: ...

        return handler

    first, second = make(), make()
    router.add("issues", first)  # type: ignore[arg-type]
    router.add("issues", second)  # type: ignore[arg-type]
    router.add("push", first)  # type: ignore[arg-type]
    keys = [h.key for h in router.match("issues", None)]
    base = f"{__name__}:{_qualname(make)}.<locals>.handler"
    assert keys == [base, base + "#2"]
    assert [h.key for h in router.match("push", None)] == [base]  # one function, one name


def _qualname(fn: object) -> str:
    return str(getattr(fn, "__qualname__", ""))


async def test_a_layout_3_journal_is_migrated_and_keeps_its_deliveries(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    journal = await SQLiteJournal.open(path)
    await journal.record(Delivery.from_payload("d-old", "issues", issue_opened(1)))
    await journal.close()
    with sqlite3.connect(path) as conn:  # as a version 3 journal left it
        conn.execute("DROP TABLE handlers_done")
        conn.execute("PRAGMA user_version = 3")
    journal = await SQLiteJournal.open(path)
    try:
        [claimed] = await journal.claim("c", 10, 30)
        await journal.handler_done("d-old", "bot:one")
        assert await journal.retry("d-old", "c", "boom", 0)
        [again] = await journal.claim("c", 10, 30)
    finally:
        await journal.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    assert claimed.handlers_done == frozenset()
    assert again.handlers_done == frozenset({"bot:one"}) and again.attempt == 2


@pytest.mark.parametrize("handlers", [1, 2])
async def test_a_lone_handler_costs_no_record_of_its_own(tmp_path: Path, handlers: int) -> None:
    from framework.dispatch.dispatcher import Dispatcher

    router = Router()
    for _ in range(handlers):

        async def handler(ctx: Context) -> None: ...

        router.add("issues", handler)
    recorded: list[str] = []

    async def done(key: str) -> None:
        recorded.append(key)

    dispatcher = Dispatcher(router, clients=None)  # type: ignore[arg-type]
    delivery = Delivery.from_payload("d", "issues", issue_opened(1))
    assert await dispatcher.run(delivery, done=done) == []
    assert len(recorded) == (0 if handlers == 1 else 2)


async def test_a_salvaged_journal_keeps_which_handlers_finished(tmp_path: Path) -> None:
    from framework.journal.salvage import _copy

    path = tmp_path / "journal.sqlite3"
    journal = await SQLiteJournal.open(path)
    try:
        await journal.record(Delivery.from_payload("d-1", "issues", issue_opened(1)))
        await journal.claim("c", 10, 30)
        await journal.handler_done("d-1", "bot:comment")
    finally:
        await journal.close()
    with sqlite3.connect(path) as damaged:
        _copy(damaged, tmp_path / "rebuilt.sqlite3")
    with sqlite3.connect(tmp_path / "rebuilt.sqlite3") as rebuilt:
        rows = rebuilt.execute("SELECT delivery_id, handler FROM handlers_done").fetchall()
    assert rows == [("d-1", "bot:comment")]
