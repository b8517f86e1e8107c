"""An expected network failure reads as its real cause, in one line per attempt."""

from __future__ import annotations

import logging

import pytest

from framework import App, Context
from framework.common.network import network_failure
from framework.testing import payloads, run_bot

CASES = [
    # what httpx-aiohttp raises for a failed DNS lookup: a "ConnectTimeout"
    ("ConnectTimeout",
     "Cannot connect to host api.github.com:443 ssl:default [Name or service not known]",
     "cannot resolve api.github.com (DNS: Name or service not known)"),
    ("ConnectError", "[Errno -3] Temporary failure in name resolution",
     "cannot resolve the host name (DNS: Temporary failure in name resolution)"),
    ("ConnectError", "[Errno 8] nodename nor servname provided, or not known",
     "cannot resolve the host name (DNS: nodename nor servname provided, or not known)"),
    ("ConnectTimeout",
     "Cannot connect to host 127.0.0.1:9 ssl:default [Connect call failed ('127.0.0.1', 9)]",
     "connection refused by 127.0.0.1"),
    ("ConnectError", "[Errno 111] Connection refused", "connection refused"),
    ("ConnectError", "All connection attempts failed", "connection refused"),
    ("ReadError", "[Errno 104] Connection reset by peer", "connection reset"),
    ("ConnectError", "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed",
     "TLS failed ([SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed)"),
    ("ConnectTimeout", "", "timed out connecting (ConnectTimeout)"),
    ("ReadTimeout", "", "timed out waiting for the answer (ReadTimeout)"),
    ("PoolTimeout", "", "timed out for a free connection (PoolTimeout)"),
    ("RemoteProtocolError", "Server disconnected", "RemoteProtocolError: Server disconnected"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "message", "expected"), CASES)
def test_the_cause_is_named(kind: str, message: str, expected: str) -> None:
    assert network_failure(kind, message) == expected


async def test_an_unreachable_github_is_one_clear_line_per_attempt_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App(name="unreachable")

    @app.on("issues.opened")
    async def label(ctx: Context) -> None:
        await ctx.github.get(f"/repos/{ctx.repo_full_name}")

    caplog.set_level(logging.INFO)
    async with run_bot(
        app, github_api_url="http://127.0.0.1:9", github_retry_backoff_seconds=0.01
    ) as bot:
        result = await bot.receive("issues", payloads.issues_opened())
    assert result.status == "failed"
    [failure] = [r for r in caplog.records if "handler" in r.getMessage() and "failed" in
                 r.getMessage()]  # fmt: skip
    assert failure.exc_info is None  # no traceback at INFO
    assert "connection refused by 127.0.0.1" in failure.getMessage()
    retries = [r for r in caplog.records if "retry" in r.getMessage()]
    assert retries and all("connection refused" in r.getMessage() for r in retries)
    assert all(r.exc_info is None for r in caplog.records if r.levelno >= logging.INFO)
    assert not any("ConnectTimeout" in r.getMessage() for r in caplog.records)


async def test_the_traceback_is_there_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    app = App(name="unreachable-debug")

    @app.on("issues.opened")
    async def label(ctx: Context) -> None:
        await ctx.github.get(f"/repos/{ctx.repo_full_name}")

    caplog.set_level(logging.DEBUG)
    async with run_bot(app, github_api_url="http://127.0.0.1:9", github_max_retries=0) as bot:
        await bot.receive("issues", payloads.issues_opened())
    assert any(r.levelno == logging.DEBUG and r.exc_info for r in caplog.records)
