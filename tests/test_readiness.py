"""``/readyz``: ready only while the journal answers and the bot is not draining."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from framework import App
from framework.errors import Unavailable
from framework.journal import Counts, Journal
from framework.server.health import Health
from framework.testing import payloads, run_bot
from tests.support import RedisServer


def labeler() -> App:
    app = App(name="ready")
    app.on("issues.opened")(lambda ctx: None)
    return app


async def probe(url: str) -> tuple[int, dict[str, str]]:
    async with httpx.AsyncClient() as client:
        response = await client.get(url.split("/api/")[0] + "/readyz")
    return response.status_code, response.json()


async def test_ready_on_sqlite_and_not_while_draining() -> None:
    app = labeler()
    async with run_bot(app) as bot:
        assert await probe(bot.url) == (200, {"status": "ready"})
        await app.drain()
        assert await probe(bot.url) == (503, {"status": "draining"})


async def test_not_ready_while_redis_is_down_and_ready_again_after(tmp_path: Path) -> None:
    server = RedisServer.start(tmp_path, appendonly=True)  # its own: this test stops it
    try:
        async with run_bot(labeler(), redis_url=server.url, redis_prefix="ready") as bot:
            assert (await probe(bot.url))[0] == 200
            server.stop()
            status, body = await probe(bot.url)
            assert status == 503 and body["status"] == "unavailable"
            assert "Redis" in body["error"] and "127.0.0.1" not in body["error"]
            result = await bot.receive("issues", payloads.issues_opened(number=2))
            assert result.status_code == 503  # and GitHub is told so, too
            server.restart()
            # Pooled connections the restart closed fail once each, then reconnect.
            for _ in range(50):
                if (await probe(bot.url))[0] == 200:
                    break
                await asyncio.sleep(0.1)
            assert (await probe(bot.url))[0] == 200
    finally:
        server.stop()


class _SlowJournal:
    async def counts(self) -> Counts:
        await asyncio.sleep(10)
        raise AssertionError("not reached")


async def test_a_journal_that_does_not_answer_in_time_is_not_ready() -> None:
    async def journal() -> Journal:
        return _SlowJournal()  # type: ignore[return-value]

    health = Health(journal, lambda: False, timeout=0.05)
    try:
        await health.counts()
    except Unavailable as exc:
        assert "did not answer within" in str(exc)
    else:
        raise AssertionError("a silent journal counted as ready")
