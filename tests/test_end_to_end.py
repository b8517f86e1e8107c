"""The labeler served by a real uvicorn, against a strict fake GitHub on another real uvicorn.

Every test here goes over loopback HTTP end to end: signed delivery in, 202 out, handler
runs in the background, JWT and installation token minted, API call made.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from framework import App, Context, Settings
from framework.events import IssuesOpened
from framework.testing import FakeGitHub, serve_async
from framework.webhooks.signature import sign
from tests.support import INSTALLATION, PEM, REPO, SECRET, issue_opened, signed


def make_app(fake_url: str, private_pem: str, **settings: Any) -> App:
    values: dict[str, Any] = {
        "app_id": "123",
        "private_key": private_pem,
        "webhook_secret": SECRET,
        "github_api_url": fake_url,
        "shutdown_grace_seconds": 5,
    }
    values.update(settings)
    return App(Settings(**values), name="e2e-bot")


def labeler(fake_url: str, private_pem: str, **settings: Any) -> App:
    app = make_app(fake_url, private_pem, **settings)

    @app.on("issues.opened")
    async def needs_response(ctx: Context[IssuesOpened]) -> None:
        await ctx.github.post(
            f"/repos/{ctx.repo_full_name}/issues/{ctx.event.issue.number}/labels",
            json={"labels": ["needs-response"]},
        )

    return app


@pytest.fixture
async def bot(fake_url: str) -> AsyncIterator[tuple[App, str]]:
    app = labeler(fake_url, PEM)
    async with serve_async(app) as url:
        yield app, url + "/api/github/webhooks"


async def test_a_signed_issues_opened_delivery_labels_the_issue(
    bot: tuple[App, str], fake: FakeGitHub
) -> None:
    app, url = bot
    body, headers = signed("issues", issue_opened(7), "d-1")
    async with httpx.AsyncClient() as client:
        response = await client.post(url, content=body, headers=headers)
    assert response.status_code == 202
    await app.wait_idle()
    [call] = fake.calls_to("POST", f"/repos/{REPO}/issues/7/labels")
    assert call.json == {"labels": ["needs-response"]}
    assert call.headers["accept"] == "application/vnd.github+json"
    assert call.headers["x-github-api-version"] == "2022-11-28"
    assert call.headers["user-agent"].startswith("e2e-bot")
    assert fake.issue_labels(REPO, 7) == ["needs-response"]


async def test_twenty_concurrent_deliveries_mint_exactly_one_token(
    bot: tuple[App, str], fake: FakeGitHub
) -> None:
    app, url = bot
    async with httpx.AsyncClient() as client:
        responses = await asyncio.gather(
            *(
                client.post(url, content=body, headers=headers)
                for body, headers in (
                    signed("issues", issue_opened(n), f"d-{n}") for n in range(1, 21)
                )
            )
        )
    assert [r.status_code for r in responses] == [202] * 20
    await app.wait_idle()
    assert fake.mint_count(INSTALLATION) == 1
    assert len([c for c in fake.calls if c.method == "POST" and c.path.endswith("/labels")]) == 20


async def test_the_app_jwt_is_reused_across_installations(
    bot: tuple[App, str], fake: FakeGitHub
) -> None:
    app, url = bot
    fake.add_installation(99, account="octo-org", repositories=["octo-org/hello"])
    other = issue_opened(3, installation=99)
    other["repository"]["full_name"] = "octo-org/hello"
    other["repository"]["name"] = "hello"
    other["repository"]["owner"]["login"] = "octo-org"
    async with httpx.AsyncClient() as client:
        for payload, delivery in ((issue_opened(2), "d-1"), (other, "d-2")):
            body, headers = signed("issues", payload, delivery)
            assert (await client.post(url, content=body, headers=headers)).status_code == 202
    await app.wait_idle()
    assert (fake.mint_count(INSTALLATION), fake.mint_count(99)) == (1, 1)
    assert fake.issue_labels("octo-org/hello", 3) == ["needs-response"]
    # One JWT signed and used for both mints, not one per mint or request.
    assert list(fake.jwt_verifications().values()) == [2]


async def test_a_bad_signature_is_refused_and_runs_nothing(
    bot: tuple[App, str], fake: FakeGitHub
) -> None:
    app, url = bot
    ran: list[str] = []
    app.on_any(lambda ctx: ran.append(ctx.delivery_id))
    body, headers = signed("issues", issue_opened(), "d-bad", secret="wrong-secret")
    async with httpx.AsyncClient() as client:
        forged = await client.post(url, content=body, headers=headers)
        del headers["X-Hub-Signature-256"]
        unsigned = await client.post(url, content=body, headers=headers)
    assert (forged.status_code, unsigned.status_code) == (401, 401)
    assert "secret" not in forged.text.replace("webhook secret", "")
    await app.wait_idle()
    assert ran == []
    assert fake.calls == []


async def test_an_expired_token_is_replaced_and_the_request_retried(
    bot: tuple[App, str], fake: FakeGitHub
) -> None:
    app, url = bot
    async with httpx.AsyncClient() as client:
        body, headers = signed("issues", issue_opened(1), "d-a")
        assert (await client.post(url, content=body, headers=headers)).status_code == 202
        await app.wait_idle()
        fake.expire_all_tokens()  # GitHub expires it while the app still holds it
        body, headers = signed("issues", issue_opened(2), "d-b")
        assert (await client.post(url, content=body, headers=headers)).status_code == 202
        await app.wait_idle()
    assert fake.mint_count(INSTALLATION) == 2
    statuses = [c.status for c in fake.calls_to("POST", f"/repos/{REPO}/issues/2/labels")]
    assert statuses == [401, 200]
    assert fake.issue_labels(REPO, 2) == ["needs-response"]


async def test_refusals_have_short_json_bodies_and_the_right_status(
    bot: tuple[App, str],
) -> None:
    _, url = bot
    body, headers = signed("issues", issue_opened(), "d-x")
    no_event = {k: v for k, v in headers.items() if k != "X-GitHub-Event"}
    star_body, star_headers = signed("star", {"action": "created"}, "d-star")

    def resigned(raw: bytes) -> dict[str, str]:
        return headers | {"X-Hub-Signature-256": sign(raw, SECRET)}

    async with httpx.AsyncClient(timeout=30) as client:
        cases = {
            "no event": await client.post(url, content=body, headers=no_event),
            "malformed": await client.post(url, content=b"{oops", headers=resigned(b"{oops")),
            "array": await client.post(url, content=b"[]", headers=resigned(b"[]")),
            "GET": await client.get(url),
            "unhandled": await client.post(url, content=star_body, headers=star_headers),
        }
        health = await client.get(url.replace("/api/github/webhooks", "/healthz"))
    statuses = {name: r.status_code for name, r in cases.items()}
    assert statuses == {
        "no event": 400,
        "malformed": 400,
        "array": 400,
        "GET": 405,
        "unhandled": 202,
    }
    assert cases["GET"].headers["allow"] == "POST"
    for name, response in cases.items():
        assert len(response.content) < 200, name
        assert response.headers["content-type"] == "application/json"
    assert "X-GitHub-Event" in cases["no event"].json()["error"]
    assert cases["unhandled"].json() == {"ok": True, "handled": False}
    assert health.status_code == 200


async def test_bodies_over_the_cap_are_refused_without_reading_them_whole(
    fake_url: str,
) -> None:
    app = labeler(fake_url, PEM, webhook_max_bytes=64 * 1024)
    read = [0]

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        async def counted() -> Any:
            message = await receive()
            read[0] += len(message.get("body", b""))
            return message

        await app(scope, counted, send)

    body, headers = signed("issues", issue_opened(), "d-big")

    async def stream() -> AsyncIterator[bytes]:
        for _ in range(64):  # 4 MiB in 64 KiB chunks, with no Content-Length
            yield b" " * (64 * 1024)

    async with serve_async(counting) as base, httpx.AsyncClient(timeout=10) as client:
        url = base + "/api/github/webhooks"
        declared = await client.post(url, content=body + b" " * 4_000_000, headers=headers)
        read_declared, read[0] = read[0], 0
        try:
            streamed_status = (
                await client.post(url, content=stream(), headers=headers)
            ).status_code
        except httpx.TransportError:
            streamed_status = 413  # the server answered and closed while the client still sent
    assert declared.status_code == 413
    assert read_declared == 0  # refused on Content-Length alone
    assert streamed_status == 413
    # uvicorn hands over whatever arrived since the last read, so the cut is not exact; what
    # matters is that the 4 MiB were never all read.
    assert read[0] < 1024 * 1024
