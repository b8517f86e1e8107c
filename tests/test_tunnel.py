"""The development tunnel against a local smee.io (FakeSmee) and a real bot on loopback:
signed bytes survive smee's re-parsing, trouble on the stream is survived, nothing it saw is
lost while the bot is down."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from framework import App, Context, Settings
from framework.cli import main
from framework.cli.tunnel import has_app_credentials, recovery, reloading
from framework.dev.signed_body import JsonForm
from framework.dev.tunnel import Tunnel
from framework.testing import FakeSmee, run_bot, serve_async
from framework.webhooks.signature import sign

SECRET = "tunnel-secret"
PING = 0.3  # the fake's ping interval: the watchdog fires after 0.6 s of silence


@dataclass
class Seen:
    """What the bot's handler received, in order."""

    deliveries: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [delivery_id for delivery_id, _ in self.deliveries]


def recording_bot() -> tuple[App, Seen]:
    app = App(name="tunnel-test")
    seen = Seen()

    @app.on_any
    async def record(ctx: Context) -> None:
        seen.deliveries.append((ctx.delivery_id, ctx.payload))

    return app, seen


async def eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError("the condition did not hold in time")
        await asyncio.sleep(0.02)


@dataclass
class Channel:
    smee: FakeSmee
    url: str
    client: httpx.AsyncClient

    async def post(self, body: bytes, delivery_id: str | None = None, event: str = "issues") -> str:
        """Post ``body`` as GitHub would, signed with SECRET; return its delivery id."""
        delivery_id = delivery_id or str(uuid.uuid4())
        response = await self.client.post(
            self.url + "?from=github",
            content=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": "GitHub-Hookshot/test",
                "X-GitHub-Event": event,
                "X-GitHub-Delivery": delivery_id,
                "X-Hub-Signature-256": sign(body, SECRET),
            },
        )
        assert response.status_code == 200, response.text
        return delivery_id


@asynccontextmanager
async def smee_channel(port: int = 0) -> AsyncIterator[Channel]:
    smee = FakeSmee(ping_interval=PING)
    async with serve_async(smee.app, port=port) as base, httpx.AsyncClient() as client:
        new = await client.get(f"{base}/new")
        assert new.status_code == 307
        yield Channel(smee, new.headers["location"], client)


@asynccontextmanager
async def running(tunnel: Tunnel) -> AsyncIterator[Tunnel]:
    task = asyncio.create_task(tunnel.run())
    try:
        yield tunnel
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled(), "the tunnel stopped by itself"


def tunnel_to(channel: Channel, target: str, **options: Any) -> Tunnel:
    defaults: dict[str, Any] = {
        "secrets": [SECRET],
        "ping_interval": PING,
        "reconnect_base": 0.05,
        "reconnect_cap": 0.3,
        "forward_base": 0.05,
        "forward_cap": 0.3,
    }
    return Tunnel(channel.url, target, **(defaults | options))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Bytes as GitHub sends them (compact; upper-case \u escapes; UTF-8), and as others do.
SIGNED_BODIES = {
    "non-ascii": '{"action":"opened","issue":{"title":"Café, naïve, 日本語, Ünïcödé"}}',
    "control characters": '{"action":"opened","body":"\\u001B[31mred\\u001B[0m\\u0000\x7f"}',
    "escaped slashes": '{"action":"opened","url":"https:\\/\\/github.com\\/octo\\/hello"}',
    "html characters": '{"action":"opened","body":"<script>alert(1)</script> & <b>"}',
    "html escapes": '{"action":"opened","body":"\\u003Cb\\u003E \\u0026 \\u2028"}',
    "emoji": '{"action":"opened","body":"🎉 shipped 👍🏽 🚀"}',
    "ascii-only escapes": '{"action":"opened","body":"caf\\u00e9 \\ud83d\\ude00 \\u2603"}',
    "large integers": '{"action":"opened","id":9007199254740991,"node":1234567890123,"n":-1}',
    "numbers": '{"action":"opened","score":0.5,"tiny":1e-7,"big":1e+21,"neg":-2.25}',
    "integer-like keys first": '{"action":"opened","labels":{"1":"a","20":"b","x":"c"}}',
    "empty and nested": '{"action":"opened","a":{},"b":[],"c":[[{"d":null,"e":false}]]}',
    "escapes": '{"action":"opened","body":"line\\nbreak\\ttab \\"quoted\\" back\\\\slash"}',
}


async def test_every_kind_of_payload_reaches_the_bot_with_a_valid_signature() -> None:
    app, seen = recording_bot()
    async with (
        run_bot(app, webhook_secret=SECRET) as bot,
        smee_channel() as channel,
        running(tunnel_to(channel, bot.url)) as tunnel,
    ):
        await eventually(lambda: channel.smee.open_streams == 1)
        ids = {}
        for name, text in SIGNED_BODIES.items():
            ids[name] = await channel.post(text.encode())
        big = {"action": "opened", "body": "x" * 900_000 + " é/<&\\u001B"}
        big_text = ('{"action":"opened","body":"' + "x" * 900_000 + ' é/<&\\u001B"}').encode()
        ids["900 KB"] = await channel.post(big_text)
        await eventually(lambda: len(tunnel.forwarded) == len(ids), within=30)

    statuses = {f.delivery_id: (status, f.rebuilt.form) for f, status in tunnel.forwarded}
    for name, delivery_id in ids.items():
        status, form = statuses[delivery_id]
        assert status == 202, f"{name}: the bot answered {status}"
        assert form is not None, name
    assert seen.ids == list(ids.values())  # in the order posted
    payloads = dict(seen.deliveries)
    assert payloads[ids["non-ascii"]]["issue"]["title"] == "Café, naïve, 日本語, Ünïcödé"
    assert payloads[ids["control characters"]]["body"] == "\x1b[31mred\x1b[0m\x00\x7f"
    assert payloads[ids["large integers"]]["id"] == 9007199254740991
    assert payloads[ids["900 KB"]] == big | {"body": big["body"].replace("\\u001B", "\x1b")}
    # The original headers went through, smee's own and the hop-by-hop ones did not.
    forward = tunnel.forwarded[0][0]
    assert forward.headers["user-agent"] == "GitHub-Hookshot/test"
    assert not {"host", "content-length", "timestamp"} & set(forward.headers)
    assert forward.query == [("from", "github")]
    assert channel.smee.accept_headers == ["text/event-stream"]


async def test_bytes_that_cannot_be_rebuilt_are_forwarded_refused_and_explained_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, seen = recording_bot()
    caplog.set_level(logging.INFO, "framework.tunnel")
    async with (
        run_bot(app, webhook_secret=SECRET) as bot,
        smee_channel() as channel,
        running(tunnel_to(channel, bot.url)) as tunnel,
    ):
        await eventually(lambda: channel.smee.open_streams == 1)
        lost = [await channel.post(b'{"action":"opened","id":12345678901234567890}')]
        lost.append(await channel.post(b'{"action":"opened","score":1.0}'))
        kept = await channel.post(b'{"action":"opened","id":1}')
        await eventually(lambda: len(tunnel.forwarded) == 3)

    assert [status for _, status in tunnel.forwarded] == [401, 401, 202]
    assert seen.ids == [kept]
    lines = [r.getMessage() for r in caplog.records]
    assert sum("could not be rebuilt" in line for line in lines) == 1
    for delivery_id in lost:
        assert any(delivery_id in line and "signature NOT rebuilt" in line for line in lines)


async def test_without_the_secret_the_github_form_is_sent_unchecked() -> None:
    app, seen = recording_bot()
    async with (
        run_bot(app, webhook_secret=SECRET) as bot,
        smee_channel() as channel,
        running(tunnel_to(channel, bot.url, secrets=[])) as tunnel,
    ):
        await eventually(lambda: channel.smee.open_streams == 1)
        delivery_id = await channel.post(b'{"action":"opened","t":"\\u001B caf\xc3\xa9"}')
        await eventually(lambda: len(tunnel.forwarded) == 1)
    forward, status = tunnel.forwarded[0]
    assert (status, forward.rebuilt.checked, seen.ids) == (202, False, [delivery_id])


async def test_a_dropped_stream_a_503_garbage_and_silence_are_survived() -> None:
    app, seen = recording_bot()
    recoveries: list[float] = []

    async def recover(since: float) -> None:
        recoveries.append(since)

    async with (
        run_bot(app, webhook_secret=SECRET) as bot,
        smee_channel() as channel,
        running(tunnel_to(channel, bot.url, on_reconnect=recover)) as tunnel,
    ):
        smee = channel.smee
        await eventually(lambda: smee.open_streams == 1)
        ids = [await channel.post(b'{"action":"opened","n":1}')]

        smee.refuse_connections(2, status=503)
        smee.drop_streams()  # closed stream, then two 503s, then a stream again
        await eventually(lambda: smee.connections == 2 and smee.open_streams == 1)
        assert len(smee.accept_headers) == 4
        ids.append(await channel.post(b'{"action":"opened","n":2}'))

        smee.send_garbage()
        ids.append(await channel.post(b'{"action":"opened","n":3}'))
        await eventually(lambda: len(seen.ids) == 3)

        smee.go_silent()  # no ping any more: the watchdog reconnects after 2 pings' time
        await eventually(lambda: smee.connections == 3 and smee.open_streams >= 1)
        await eventually(lambda: smee.open_streams == 1)  # the silent one was left
        ids.append(await channel.post(b'{"action":"opened","n":4}'))
        await eventually(lambda: len(seen.ids) == 4)

    assert seen.ids == ids
    assert [status for _, status in tunnel.forwarded] == [202] * 4
    assert len(recoveries) == 2  # after the drop and after the silence
    assert recoveries == sorted(recoveries)


async def test_an_unreachable_channel_at_start_is_retried_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, seen = recording_bot()
    port = free_port()
    caplog.set_level(logging.INFO, "framework.tunnel")
    async with run_bot(app, webhook_secret=SECRET) as bot:
        channel_url = f"http://127.0.0.1:{port}/somechannel"
        tunnel = Tunnel(channel_url, bot.url, secrets=[SECRET], ping_interval=PING,
                        reconnect_base=0.05, reconnect_cap=0.2)  # fmt: skip
        async with running(tunnel):
            await eventually(
                lambda: (
                    sum("cannot reach the channel" in r.getMessage() for r in caplog.records) >= 2
                )
            )
            smee = FakeSmee(ping_interval=PING)
            async with serve_async(smee.app, port=port), httpx.AsyncClient() as client:
                await eventually(lambda: smee.open_streams == 1)
                channel = Channel(smee, channel_url, client)
                delivery_id = await channel.post(b'{"action":"opened"}')
                await eventually(lambda: seen.ids == [delivery_id])
    failures = [r for r in caplog.records if "cannot reach the channel" in r.getMessage()]
    assert all(r.exc_info is None for r in failures)  # one line each, no traceback
    assert "connection refused" in failures[0].getMessage()


async def test_a_bot_that_is_down_gets_every_delivery_afterwards_in_order() -> None:
    app, seen = recording_bot()
    port = free_port()
    target = f"http://127.0.0.1:{port}/api/github/webhooks"
    async with (
        smee_channel() as channel,
        running(tunnel_to(channel, target, give_up_after=60)) as tunnel,
    ):
        await eventually(lambda: channel.smee.open_streams == 1)
        ids = [await channel.post(f'{{"action":"opened","n":{n}}}'.encode()) for n in range(6)]
        await asyncio.sleep(1.5)  # the bot is down: the tunnel keeps the deliveries
        assert tunnel.forwarded == []
        async with run_bot(app, webhook_secret=SECRET, port=port):
            await eventually(lambda: len(seen.ids) == 6, within=20)
    assert seen.ids == ids
    assert [payload["n"] for _, payload in seen.deliveries] == list(range(6))
    assert tunnel.given_up == []


async def test_a_bot_that_stays_down_is_given_up_on_with_a_hint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "framework.tunnel")
    target = f"http://127.0.0.1:{free_port()}/api/github/webhooks"
    async with (
        smee_channel() as channel,
        running(tunnel_to(channel, target, give_up_after=0.5)) as tunnel,
    ):
        await eventually(lambda: channel.smee.open_streams == 1)
        first = await channel.post(b'{"action":"opened"}')
        await eventually(lambda: len(tunnel.given_up) == 1)
    assert tunnel.given_up[0].delivery_id == first
    assert any("gave up" in r.getMessage() and "sync" in r.getMessage() for r in caplog.records)


async def test_after_a_reconnect_github_redelivers_what_the_journal_lacks() -> None:
    app, seen = recording_bot()
    async with run_bot(app, webhook_secret=SECRET) as bot, smee_channel() as channel:
        fake, settings = bot.fake, bot.app.settings
        assert has_app_credentials(settings)
        tunnel = tunnel_to(channel, bot.url, on_reconnect=recovery(lambda: settings))
        async with running(tunnel):
            await eventually(lambda: channel.smee.open_streams == 1)
            held = await channel.post(b'{"action":"opened"}')
            await eventually(lambda: seen.ids == [held])
            fake.add_hook_delivery(held, status_code=200)  # smee took it; so did the bot
            fake.add_hook_delivery("g-long-ago", status_code=200, delivered_at=time.time() - 7200)
            missed = fake.add_hook_delivery("g-missed", status_code=200)  # smee took it only
            channel.smee.drop_streams()
            await eventually(lambda: fake.redeliveries != [])
            await asyncio.sleep(0.5)  # the sweep has finished
    assert fake.redeliveries == [missed]  # not the one held, not the one before the drop


async def test_without_credentials_a_reconnect_says_how_to_recover(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "framework.tunnel")
    settings = Settings(webhook_secret=SECRET, app_id=None, private_key=None)
    assert not has_app_credentials(settings)
    await recovery(lambda: settings)(time.time())
    [line] = [r.getMessage() for r in caplog.records]
    assert "may have been missed" in line and "Recent Deliveries" in line


def test_the_command_needs_a_channel(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WEBHOOK_PROXY_URL", raising=False)
    assert main(["tunnel"]) == 2
    assert "WEBHOOK_PROXY_URL" in capsys.readouterr().err


async def test_a_secret_that_appears_while_the_tunnel_runs_is_used() -> None:
    app, seen = recording_bot()
    known: list[str] = []  # the app is registered (from the setup page) while we run
    async with (
        run_bot(app, webhook_secret=SECRET) as bot,
        smee_channel() as channel,
        running(tunnel_to(channel, bot.url, secrets=lambda: known)) as tunnel,
    ):
        await eventually(lambda: channel.smee.open_streams == 1)
        await channel.post(b'{"action":"opened","url":"a\\/b"}')
        await eventually(lambda: len(tunnel.forwarded) == 1)
        known.append(SECRET)
        await channel.post(b'{"action":"opened","url":"a\\/b"}')
        await eventually(lambda: len(tunnel.forwarded) == 2)
    [(before, refused), (after, taken)] = tunnel.forwarded
    assert (before.rebuilt.checked, refused) == (False, 401)  # GitHub's form: no \/
    assert (after.rebuilt.form, taken) == (JsonForm(escape_slash=True), 202)
    assert len(seen.ids) == 1


def test_the_command_rereads_its_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("WEBHOOK_SECRET", "PORT", "APP_ID"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text("WEBHOOK_SECRET=first\n")
    current = reloading(Settings(webhook_secret="initial"))
    assert current().webhook_secrets() == ["first"]
    (tmp_path / ".env").write_text("WEBHOOK_SECRET=second\nAPP_ID=7\n")
    assert (current().webhook_secrets(), current().app_id) == (["second"], "7")
    (tmp_path / ".env").write_text("PORT=abc\n")  # invalid for a moment: keep the first
    assert current().webhook_secrets() == ["initial"]
