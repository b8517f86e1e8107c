"""Handlers in a separate process: nothing lost when it is killed, drained on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from framework.dispatch.handler_process import encode_frame, read_frame, serve_receiver
from framework.testing import FakeGitHub
from framework.webhooks.delivery import Delivery
from tests.support import ROOT, issue_opened, signed, start_bot
from tests.test_dispatch import held_handlers, new_app

SLOW_BOT = str(ROOT / "tests" / "bots" / "slow_labeler.py")


def handler_pids(bot: subprocess.Popen[str]) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(bot.pid)], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def deliver_many(base: str, numbers: range) -> None:
    async def go() -> None:
        async with httpx.AsyncClient() as client:
            for n in numbers:
                body, headers = signed("issues", issue_opened(n), f"d-{n}")
                response = await client.post(
                    base + "/api/github/webhooks", content=body, headers=headers
                )
                assert response.status_code == 202

    asyncio.run(go())


def labelled(fake: FakeGitHub) -> dict[int, list[str]]:
    """Issue number -> labels, from every successful label call the fake recorded."""
    found: dict[int, list[str]] = {}
    for call in fake.calls:
        if call.method == "POST" and call.path.endswith("/labels") and call.status == 200:
            number = int(call.path.split("/")[-2])
            found.setdefault(number, []).extend(call.json["labels"])
    return found


def test_handlers_run_in_another_process_at_lower_priority(
    fake: FakeGitHub, fake_url: str, tmp_path: Path
) -> None:
    bot, base = start_bot(SLOW_BOT, fake_url, tmp_path, HANDLER_PROCESSES="1", SLOW_SECONDS="0")
    try:
        [child] = handler_pids(bot)
        assert (
            os.getpriority(os.PRIO_PROCESS, child) == os.getpriority(os.PRIO_PROCESS, bot.pid) + 10
        )
        deliver_many(base, range(1, 4))
        deadline = time.monotonic() + 20
        while len(labelled(fake)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        bot.send_signal(signal.SIGTERM)
        bot.communicate(timeout=30)
    assert labelled(fake) == {n: [f"by-{child}"] for n in range(1, 4)}


def test_a_killed_handler_process_is_replaced_and_loses_nothing(
    fake: FakeGitHub, fake_url: str, tmp_path: Path
) -> None:
    bot, base = start_bot(SLOW_BOT, fake_url, tmp_path, HANDLER_PROCESSES="1", SLOW_SECONDS="0.5")
    try:
        [first] = handler_pids(bot)
        deliver_many(base, range(1, 21))
        time.sleep(0.2)  # the handlers are running, none has finished
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while len(labelled(fake)) < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        [second] = handler_pids(bot)
    finally:
        bot.send_signal(signal.SIGTERM)
        output, _ = bot.communicate(timeout=30)
    assert second != first
    assert "exited unexpectedly" in output and "runs them again" in output
    result = labelled(fake)
    assert sorted(result) == list(range(1, 21)), output
    # Every delivery was handled by the replacement, once.
    assert all(labels == [f"by-{second}"] for labels in result.values())


def test_sigterm_waits_for_handlers_in_the_handler_process(
    fake: FakeGitHub, fake_url: str, tmp_path: Path
) -> None:
    bot, base = start_bot(SLOW_BOT, fake_url, tmp_path, HANDLER_PROCESSES="1", SLOW_SECONDS="1.0")
    try:
        deliver_many(base, range(1, 11))
        time.sleep(0.1)
        bot.send_signal(signal.SIGTERM)
        output, _ = bot.communicate(timeout=30)
    finally:
        if bot.poll() is None:
            bot.kill()
    assert sorted(labelled(fake)) == list(range(1, 11)), output
    assert "unfinished" not in output
    assert handler_pids(bot) == []


def test_sigterm_past_the_grace_period_reports_what_did_not_finish(
    fake: FakeGitHub, fake_url: str, tmp_path: Path
) -> None:
    bot, base = start_bot(
        SLOW_BOT,
        fake_url,
        tmp_path,
        HANDLER_PROCESSES="1",
        SLOW_SECONDS="30",
        SHUTDOWN_GRACE_SECONDS="0.5",
    )
    try:
        deliver_many(base, range(1, 3))
        time.sleep(0.1)
        started = time.monotonic()
        bot.send_signal(signal.SIGTERM)
        output, _ = bot.communicate(timeout=30)
    finally:
        if bot.poll() is None:
            bot.kill()
    assert time.monotonic() - started < 15
    assert "2 deliveries unfinished" in output and "d-1" in output and "d-2" in output
    assert labelled(fake) == {}


async def test_frames_round_trip_and_end_cleanly() -> None:
    reader = asyncio.StreamReader()
    message = ("delivery", "d-1", "issues", b'{"a": 1}', "opened", 42, {"x": "y"}, 1.5)
    reader.feed_data(encode_frame(message) + encode_frame(("stop", 2.0)))
    reader.feed_eof()
    assert await read_frame(reader) == message
    assert await read_frame(reader) == ("stop", 2.0)
    assert await read_frame(reader) is None


async def test_a_handler_process_starts_few_handlers_while_the_receiver_says_busy() -> None:
    app = new_app(handler_concurrency=4, handler_concurrency_under_load=1)
    started, release = held_handlers(app)
    ours, theirs = socket.socketpair()
    journal = await app.open_journal()
    # the handler process's side
    child = asyncio.create_task(serve_receiver(app.runner, journal, theirs))
    reader, writer = await asyncio.open_unix_connection(sock=ours)
    writer.write(encode_frame(("load", True)))  # the receiver is taking a burst
    for n in range(4):
        assert await journal.record(Delivery.from_payload(f"d{n}", "issues", issue_opened(n)))
    writer.write(encode_frame(("wake",)))
    await asyncio.sleep(0.3)
    assert started == ["d0"]
    writer.write(encode_frame(("load", False)))  # idle again: the rest start
    for _ in range(100):
        if len(started) == 4:
            break
        await asyncio.sleep(0.01)
    assert sorted(started) == ["d0", "d1", "d2", "d3"]
    release.set()
    writer.write(encode_frame(("stop", 5.0)))
    assert await read_frame(reader) == ("stopped", [])
    await child
    await app.close()
    writer.close()


def test_the_receivers_load_reaches_its_handler_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    app = new_app()
    app.run_handlers_in_processes("bot.py", 1)
    sent: list[bytes] = []
    processes = app.handler_processes
    assert processes is not None
    monkeypatch.setattr(processes, "_send", sent.append)
    load = app._receiver_load()
    load.set_busy(True)
    load.set_busy(True)  # no change: nothing sent
    load.set_busy(False)
    assert sent == [encode_frame(("load", True)), encode_frame(("load", False))]
