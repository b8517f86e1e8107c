"""``python -m framework deliveries``: list, show, replay, purge and sync, on a real journal."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from framework import App, Settings
from framework.cli import main
from framework.journal.sqlite import SQLiteJournal
from framework.testing import FakeGitHub, serve_async
from framework.webhooks.delivery import Delivery
from tests.support import APP_ID, PEM, ROOT, SECRET, issue_opened, signed, start_bot
from tests.test_handler_process import labelled

SLOW_BOT = str(ROOT / "tests" / "bots" / "slow_labeler.py")


@pytest.fixture
def journal_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "journal.sqlite3"
    monkeypatch.setenv("JOURNAL_PATH", str(path))
    monkeypatch.delenv("REDIS_URL", raising=False)
    return path


def fill(path: Path) -> None:
    """d-1 done, d-2 failed (twice), d-3 pending."""

    async def go() -> None:
        journal = await SQLiteJournal.open(path)
        for n in (1, 2, 3):
            headers = {"x-github-event": "issues", "x-github-delivery": f"d-{n}"}
            await journal.record(
                Delivery.from_payload(f"d-{n}", "issues", issue_opened(n), headers)
            )
            await asyncio.sleep(0.01)  # distinct receipt times: a stable order
        claimed = {d.id for d in await journal.claim("worker", 2, lease=30)}
        assert claimed == {"d-1", "d-2"}
        await journal.complete("d-1", "worker")
        await journal.handler_done("d-2", "bot:comment")  # of its two handlers, one finished
        await journal.retry("d-2", "worker", "RuntimeError: first", at=0)
        [again] = await journal.claim("worker", 1, lease=30)
        await journal.fail(again.id, "worker", "RuntimeError: second")
        await journal.close()

    asyncio.run(go())


def test_list_and_show_tell_an_operator_what_happened(
    journal_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(journal_path)
    assert main(["deliveries", "list"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [r.split()[:3] for r in rows] == [
        ["d-3", "pending", "0"],
        ["d-2", "failed", "2"],
        ["d-1", "done", "1"],
    ]
    assert "RuntimeError: second" in rows[1]
    assert main(["deliveries", "list", "--failed"]) == 0
    assert [r.split()[0] for r in capsys.readouterr().out.splitlines()[1:]] == ["d-2"]
    assert main(["deliveries", "show", "d-2"]) == 0
    shown = capsys.readouterr().out
    assert "status:    failed" in shown
    assert "1. " in shown and "RuntimeError: first" in shown
    assert "2. " in shown and "RuntimeError: second" in shown
    assert "handlers done (not run again): bot:comment" in shown
    assert "x-github-delivery: d-2" in shown
    assert '"number": 2' in shown  # the payload
    assert main(["deliveries", "show", "nope"]) == 1
    assert "no delivery nope" in capsys.readouterr().err


def test_purge_deletes_only_finished_deliveries_older_than_asked(
    journal_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(journal_path)
    assert main(["deliveries", "purge", "--older-than", "7d"]) == 0
    assert "purged 0" in capsys.readouterr().out
    time.sleep(0.05)
    assert main(["deliveries", "purge", "--older-than", "0s"]) == 0
    assert "purged 2" in capsys.readouterr().out
    assert main(["deliveries", "list"]) == 0
    assert [r.split()[0] for r in capsys.readouterr().out.splitlines()[1:]] == ["d-3"]


def test_a_bad_duration_is_refused_clearly(
    journal_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["deliveries", "purge", "--older-than", "a week"])
    assert exit_info.value.code == 2
    assert "not a duration such as 90s, 15m, 24h, 7d" in capsys.readouterr().err


def test_replay_runs_a_delivery_again_on_the_running_bot(
    journal_path: Path, fake: FakeGitHub, fake_url: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    bot, base = start_bot(SLOW_BOT, fake_url, tmp_path, SLOW_SECONDS="0")
    try:
        body, headers = signed("issues", issue_opened(5), "d-again")
        assert httpx.post(base + "/api/github/webhooks", content=body, headers=headers).is_success
        deadline = time.monotonic() + 20
        while not labelled(fake) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # its completion is recorded
        assert main(["deliveries", "replay", "d-again", "--wait", "20"]) == 0
        assert "ran: done" in capsys.readouterr().out
        # Running or pending work is not replayed behind the bot's back.
        assert main(["deliveries", "replay", "unknown"]) == 1
    finally:
        bot.terminate()
        bot.communicate(timeout=30)
    assert len(labelled(fake)[5]) == 2


def test_sync_redelivers_what_github_failed_to_deliver_and_the_journal_lacks(
    journal_path: Path, fake: FakeGitHub, fake_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    for name, value in {"APP_ID": str(APP_ID), "PRIVATE_KEY": PEM, "GITHUB_API_URL": fake_url,
                        "WEBHOOK_SECRET": SECRET}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    day = 86400
    old = fake.add_hook_delivery("g-old", status_code=503, delivered_at=time.time() - 2 * day)
    lost = fake.add_hook_delivery("g-lost", status_code=0, delivered_at=time.time() - 3600)
    fake.add_hook_delivery("g-fixed", status_code=503)
    fake.add_hook_delivery("g-fixed", status_code=202)  # a later attempt succeeded
    for n in range(150):  # g-lost ends up on the second page
        fake.add_hook_delivery(f"g-ok-{n}")
    fill(journal_path)
    fake.add_hook_delivery("d-1", status_code=502)  # GitHub saw a 502 (a proxy), yet stored
    assert main(["deliveries", "sync", "--since", "24h", "--dry-run"]) == 0
    assert "would ask GitHub to redeliver 1 deliveries\n  g-lost" in capsys.readouterr().out
    assert fake.redeliveries == []
    assert main(["deliveries", "sync", "--since", "24h"]) == 0
    assert fake.redeliveries == [lost]
    assert old not in fake.redeliveries
    pages = fake.calls_to("GET", "/app/hook/deliveries")
    assert len(pages) == 4  # two pages, twice
    assert all(c.status == 200 for c in pages)  # authenticated with the app's JWT


def test_sync_without_credentials_says_what_is_missing(
    journal_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("APP_ID", "CLIENT_ID", "PRIVATE_KEY", "PRIVATE_KEY_PATH"):
        monkeypatch.delenv(name, raising=False)
    assert main(["deliveries", "sync"]) == 2
    err = capsys.readouterr().err
    assert "APP_ID is not set" in err and "PRIVATE_KEY is not set" in err


async def test_a_serving_bot_prunes_finished_deliveries_past_the_retention(
    journal_path: Path,
) -> None:
    await asyncio.to_thread(fill, journal_path)
    await asyncio.sleep(0.1)
    settings = Settings(
        webhook_secret=SECRET,
        journal_path=journal_path,
        journal_retention_days=0.05 / 86400,  # 50 ms
    )
    app = App(settings)
    async with serve_async(app):
        journal = await app.open_journal()
        remaining = [e.delivery.id for e in await journal.entries()]
    assert remaining == ["d-3"]  # the pending one stays, whatever its age


def test_list_has_a_title_for_every_column_and_cuts_errors_between_words(
    journal_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(journal_path)

    async def long_error() -> None:
        journal = await SQLiteJournal.open(journal_path)
        await journal.record(Delivery.from_payload("d-4", "issues", issue_opened(4), {}))
        [claimed] = [d for d in await journal.claim("worker", 5, lease=30) if d.id == "d-4"]
        message = "ValidationFailed: POST /repos/o/r/issues/4/labels answered 422 " * 3
        await journal.fail(claimed.id, "worker", message.strip())
        await journal.close()

    asyncio.run(long_error())
    assert main(["deliveries", "list"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["DELIVERY", "STATUS", "RUNS", "RECEIVED", "(UTC)", "EVENT",
                              "LAST", "ERROR"]  # fmt: skip
    assert header.index("LAST ERROR") == rows[0].index("ValidationFailed")
    error = rows[0][header.index("LAST ERROR") :]
    assert error.endswith("…") and len(error) <= 60
    assert (
        error[:-1].split()[-1] in "ValidationFailed: POST /repos/o/r/issues/4/labels answered 422"
    )


def test_a_command_without_a_journal_says_where_it_looked_and_creates_none(
    journal_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert not journal_path.exists()
    assert main(["deliveries", "list"]) == 2
    err = capsys.readouterr().err
    assert f"no delivery journal at {journal_path}" in err and "JOURNAL_PATH" in err
    assert not journal_path.exists()


async def claimed_by_a_bot(path: Path, delivery_id: str) -> SQLiteJournal:
    """The journal, once a "bot" has claimed ``delivery_id`` (as a running bot would)."""
    journal = await SQLiteJournal.open(path)
    for _ in range(200):
        if [d for d in await journal.claim("bot", 5, lease=30) if d.id == delivery_id]:
            break
        await asyncio.sleep(0.05)
    return journal


def run_in_thread(work: Callable[[], Awaitable[None]]) -> threading.Thread:
    thread = threading.Thread(target=lambda: asyncio.run(work()), daemon=True)
    thread.start()
    return thread


def test_replay_says_when_the_delivery_ran_and_failed(
    journal_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(journal_path)  # d-1 is done

    async def failing_bot() -> None:  # what a bot does with a replayed delivery that fails
        journal = await claimed_by_a_bot(journal_path, "d-1")
        await journal.retry("d-1", "bot", "RuntimeError: still broken", time.time() + 60)
        await journal.close()

    thread = run_in_thread(failing_bot)
    assert main(["deliveries", "replay", "d-1", "--wait", "10"]) == 1
    thread.join(10)
    out = capsys.readouterr().out
    assert "d-1 ran and failed: RuntimeError: still broken; the bot runs it again at" in out
    assert "is the bot running" not in out


def test_replay_of_a_delivery_still_running_says_so(
    journal_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(journal_path)

    async def slow_bot() -> None:  # claims it and is still at it
        await (await claimed_by_a_bot(journal_path, "d-1")).close()

    thread = run_in_thread(slow_bot)
    assert main(["deliveries", "replay", "d-1", "--wait", "2"]) == 3
    thread.join(10)
    assert "d-1 is running (since" in capsys.readouterr().out
