"""How handlers run: concurrently per delivery, isolated from each other's failures, drained."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from framework import App, Context, Delivery, NoInstallation, Settings
from framework.events import IssuesOpened, PingEvent
from framework.testing import FakeGitHub, serve, serve_async
from framework.webhooks.signature import sign
from tests.support import INSTALLATION, PEM, PUBLIC, REPO, SECRET, issue_opened, signed


def new_app(fake_url: str = "http://127.0.0.1:9", **settings: Any) -> App:
    values: dict[str, Any] = {
        "app_id": "123",
        "private_key": PEM,
        "webhook_secret": SECRET,
        "github_api_url": fake_url,
        "shutdown_grace_seconds": 5,
    }
    values.update(settings)
    return App(Settings(**values), name="dispatch-bot")


def held_handlers(app: App) -> tuple[list[str], asyncio.Event]:
    """An ``issues.opened`` handler that notes its delivery id, then waits for the event."""
    started: list[str] = []
    release = asyncio.Event()

    @app.on("issues.opened")
    async def held(ctx: Context) -> None:
        started.append(ctx.delivery_id)
        await release.wait()

    return started, release


async def deliver(url: str, event: str, payload: dict[str, Any], delivery: str) -> httpx.Response:
    body, headers = signed(event, payload, delivery)
    async with httpx.AsyncClient() as client:
        return await client.post(url + "/api/github/webhooks", content=body, headers=headers)


async def test_a_failing_handler_stops_no_other_and_is_not_echoed_to_github(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = new_app(retry_max_attempts=1)  # the first failure is the last: on_error sees it
    seen: list[str] = []
    errors: list[tuple[str, str]] = []

    @app.on("issues.opened")
    async def explodes(ctx: Context) -> None:
        raise RuntimeError("database password is hunter2")

    @app.on("issues")
    async def survives(ctx: Context) -> None:
        await asyncio.sleep(0.01)
        seen.append(ctx.delivery_id)

    @app.on_error
    async def report(ctx: Context, error: Exception) -> None:
        errors.append((ctx.delivery_id, str(error)))

    async with serve_async(app) as url:
        response = await deliver(url, "issues", issue_opened(), "d-err")
        await app.wait_idle()
    assert response.status_code == 202
    assert "hunter2" not in response.text
    assert seen == ["d-err"]
    assert errors == [("d-err", "database password is hunter2")]
    [record] = [r for r in caplog.records if "explodes" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert record.bound_fields["delivery"] == "d-err"  # type: ignore[attr-defined]
    assert record.bound_fields["event"] == "issues"  # type: ignore[attr-defined]
    assert record.bound_fields["action"] == "opened"  # type: ignore[attr-defined]


async def test_the_handlers_of_one_delivery_run_concurrently() -> None:
    app = new_app()
    both_started = asyncio.Event()
    started: list[str] = []

    async def waiter(ctx: Context) -> None:
        started.append("x")
        if len(started) == 2:
            both_started.set()
        await asyncio.wait_for(both_started.wait(), timeout=2)

    class Waiter:  # a callable object with an async __call__ counts as async
        async def __call__(self, ctx: Context) -> None:
            await waiter(ctx)

    app.on("issues.opened")(waiter)
    app.on("issues")(lambda ctx: None)  # a plain function alongside
    app.on_any(Waiter())
    errors = await app.receive("issues", issue_opened(), delivery_id="d-conc")
    assert errors == []  # each waiter finished only because the other had started too


async def test_slow_handlers_do_not_delay_the_acknowledgement() -> None:
    app = new_app()
    release = asyncio.Event()

    @app.on("issues.opened")
    async def slow(ctx: Context) -> None:
        await release.wait()

    async with serve_async(app) as url:
        response = await asyncio.wait_for(deliver(url, "issues", issue_opened(), "d-s"), 5)
        assert response.status_code == 202
        journal = await app.open_journal()
        assert await journal.active() == 1
        release.set()
        await app.wait_idle()
        assert await journal.active() == 0


async def test_concurrency_is_bounded() -> None:
    app = new_app(handler_concurrency=3)
    running = peak = 0

    @app.on("issues.opened")
    async def track(ctx: Context) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1

    async with serve_async(app) as url:
        await asyncio.gather(*(deliver(url, "issues", issue_opened(n), f"d{n}") for n in range(12)))
        await app.wait_idle()
    assert peak == 3


async def test_stopping_finishes_in_flight_handlers_and_refuses_new_work() -> None:
    app = new_app(shutdown_grace_seconds=5)
    finished: list[str] = []
    started = asyncio.Event()

    @app.on("issues.opened")
    async def slow(ctx: Context) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.append(ctx.delivery_id)

    async with serve_async(app) as url:
        assert (await deliver(url, "issues", issue_opened(), "d-drain")).status_code == 202
        await asyncio.wait_for(started.wait(), 5)
    # Leaving serve_async stopped uvicorn, which ran the lifespan shutdown: the drain.
    assert finished == ["d-drain"]
    assert app.draining


async def test_handlers_past_the_grace_period_are_cancelled_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = new_app(shutdown_grace_seconds=0.2)
    started = asyncio.Event()

    @app.on("issues.opened")
    async def stuck(ctx: Context) -> None:
        started.set()
        await asyncio.sleep(60)

    async with serve_async(app) as url:
        await deliver(url, "issues", issue_opened(), "d-stuck")
        await asyncio.wait_for(started.wait(), 5)
    assert any(
        "d-stuck" in r.getMessage() and "unfinished" in r.getMessage() for r in caplog.records
    )


async def test_a_plain_function_runs_in_a_thread_and_can_call_github(
    fake: FakeGitHub, fake_url: str
) -> None:
    app = new_app(fake_url)
    threads: list[str] = []

    @app.on("issues.opened")
    def label(ctx: Context[IssuesOpened]) -> None:
        threads.append(threading.current_thread().name)
        ctx.github.sync.post(
            f"/repos/{ctx.repo_full_name}/issues/{ctx.event.issue.number}/labels",
            json={"labels": ["from-a-thread"]},
        )

    async with serve_async(app) as url:
        await deliver(url, "issues", issue_opened(5), "d-plain")
        await app.wait_idle()
    assert threads and threads[0] != threading.main_thread().name
    assert fake.issue_labels(REPO, 5) == ["from-a-thread"]


async def test_an_event_without_installation_gets_a_clear_error_and_the_app_client_works(
    fake: FakeGitHub, fake_url: str
) -> None:
    app = new_app(fake_url)
    results: list[Any] = []

    @app.on("ping")
    async def ping(ctx: Context[PingEvent]) -> None:
        try:
            ctx.github  # noqa: B018
        except NoInstallation as exc:
            results.append(str(exc))
        results.append((await ctx.app.github.get("/app")).json()["id"])

    payload = {"zen": "Design for failure.", "hook_id": 1, "hook": {"type": "App", "app_id": 123}}
    assert await app.receive("ping", payload) == []
    await app.close()
    assert "ping event was not sent for an installation" in results[0]
    assert "ctx.app.github" in results[0]
    assert results[1] == 123


async def test_installation_clients_outside_handlers(fake: FakeGitHub, fake_url: str) -> None:
    app = new_app(fake_url)
    installation_id = await app.installation_id(repo=REPO)
    assert installation_id == INSTALLATION
    assert await app.installation_id(user="Codertocat") == INSTALLATION
    fake.add_installation(77, account="octo-org", repositories=["octo-org/hello"])
    assert await app.installation_id(org="octo-org") == 77
    client = app.installation_client(installation_id)
    repo = (await client.get(f"/repos/{REPO}")).json()
    assert repo["full_name"] == REPO
    narrowed = app.installation_client(
        installation_id, repositories=["Hello-World"], permissions={"issues": "write"}
    )
    await narrowed.post(f"/repos/{REPO}/issues/9/labels", json={"labels": ["x"]})
    assert [m.installation_id for m in fake.mints] == [INSTALLATION, INSTALLATION]
    assert fake.mints[1].repositories == (REPO,)
    mint_requests = fake.calls_to("POST", f"/app/installations/{INSTALLATION}/access_tokens")
    assert [c.json for c in mint_requests] == [
        None,
        {"repositories": ["Hello-World"], "permissions": {"issues": "write"}},
    ]
    with pytest.raises(ValueError, match="exactly one"):
        await app.installation_id(repo=REPO, org="x")
    await app.http.aclose()


async def test_github_enterprise_server_works_by_setting_the_api_url(fake: FakeGitHub) -> None:
    ghes = Starlette(routes=[Mount("/api/v3", app=fake.app)])
    with serve(ghes) as base:
        app = new_app(base + "/api/v3")

        @app.on("issues.opened")
        async def label(ctx: Context[IssuesOpened]) -> None:
            await ctx.github.post(
                f"/repos/{ctx.repo_full_name}/issues/{ctx.event.issue.number}/labels",
                json={"labels": ["ghes"]},
            )

        assert await app.receive("issues", issue_opened(3)) == []
        await app.http.aclose()
    assert fake.issue_labels(REPO, 3) == ["ghes"]


async def test_form_encoded_deliveries_and_a_rotated_secret_are_accepted() -> None:
    app = new_app(webhook_secret="new", webhook_secret_previous=SECRET)
    got: list[str] = []
    app.on("issues.opened")(lambda ctx: got.append(ctx.delivery_id))
    form = urlencode({"payload": json.dumps(issue_opened())}).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": "d-form",
        "X-Hub-Signature-256": sign(form, "new"),
    }
    async with serve_async(app) as url, httpx.AsyncClient() as client:
        hook = url + "/api/github/webhooks"
        assert (await client.post(hook, content=form, headers=headers)).status_code == 202
        old = headers | {"X-GitHub-Delivery": "d-old", "X-Hub-Signature-256": sign(form, SECRET)}
        assert (await client.post(hook, content=form, headers=old)).status_code == 202
        bad = headers | {"X-GitHub-Delivery": "d-bad", "X-Hub-Signature-256": sign(form, "x")}
        assert (await client.post(hook, content=form, headers=bad)).status_code == 401
        await app.wait_idle()
    assert sorted(got) == ["d-form", "d-old"]


async def test_unsigned_deliveries_pass_only_with_the_explicit_development_flag() -> None:
    app = new_app(webhook_secret=None, allow_unsigned_webhooks=True)
    got: list[str] = []
    app.on("issues.opened")(lambda ctx: got.append(ctx.delivery_id))
    body = json.dumps(issue_opened()).encode()
    headers = {
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": "d-dev",
        "Content-Type": "application/json",
    }
    async with serve_async(app) as url, httpx.AsyncClient() as client:
        response = await client.post(url + "/api/github/webhooks", content=body, headers=headers)
        await app.wait_idle()
    assert response.status_code == 202
    assert got == ["d-dev"]


async def test_without_a_secret_the_app_refuses_to_serve(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = new_app(webhook_secret=None)
    with pytest.raises(RuntimeError, match="startup"):
        async with serve_async(app):
            pass
    assert any(
        "WEBHOOK_SECRET is not set" in r.getMessage()
        or "WEBHOOK_SECRET is not set" in str(r.exc_info)
        for r in caplog.records
    )


async def test_a_journal_that_cannot_store_answers_503_and_keeps_what_it_stored() -> None:
    # A cap of 100 pages: new deliveries stop at 90% of it, which some 18 KB deliveries fill.
    app = new_app(handler_concurrency=1, journal_max_bytes=100 * 4096)
    release = asyncio.Event()
    done: list[str] = []

    @app.on("issues.opened")
    async def slow(ctx: Context) -> None:
        await release.wait()
        done.append(ctx.delivery_id)

    async with serve_async(app) as url:
        statuses = [
            (await deliver(url, "issues", issue_opened(n), f"d{n}")).status_code for n in range(30)
        ]
        refused = await deliver(url, "issues", issue_opened(30), "d30")
        again = await deliver(url, "issues", issue_opened(0), "d0")  # stored: no room needed
        release.set()
        await app.wait_idle()
    stored = statuses.count(202)
    assert stored >= 1 and statuses == [202] * stored + [503] * (30 - stored)
    assert refused.status_code == 503
    assert "full" in refused.json()["error"]
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert "deliveries.sqlite3" not in refused.text  # GitHub is told what, not where
    assert set(done) == {f"d{n}" for n in range(stored)} and len(done) == stored


async def test_a_stopping_bot_refuses_new_deliveries_with_503() -> None:
    app = new_app()
    app.on("issues.opened")(lambda ctx: None)
    async with serve_async(app) as url:
        await app.drain()
        response = await deliver(url, "issues", issue_opened(), "d-late")
        async with httpx.AsyncClient(base_url=url) as client:
            ready, healthy = await client.get("/readyz"), await client.get("/healthz")
    assert response.status_code == 503
    assert "redeliver" in response.json()["error"]
    assert (ready.status_code, healthy.status_code) == (503, 200)


async def test_while_the_receiver_is_busy_only_a_few_handlers_start() -> None:
    app = new_app(handler_concurrency=4, handler_concurrency_under_load=1)
    started, release = held_handlers(app)
    runner = app.runner
    await runner.start(await app.open_journal())
    runner.load.enter()  # a request is being received
    for n in range(4):
        assert await app.accept(Delivery.from_payload(f"d{n}", "issues", issue_opened(n)))
    await asyncio.sleep(0.2)
    assert started == ["d0"]
    runner.load.leave()
    for _ in range(100):  # the receiver is idle 1 ms after the request left
        if len(started) == 4:
            break
        await asyncio.sleep(0.01)
    assert len(started) == 4
    release.set()
    await app.wait_idle()
    await app.drain()
    await app.close()


async def test_by_default_a_burst_holds_no_handler_back() -> None:
    """Handlers mostly wait for GitHub: by default as many run during a burst as at any time,
    so labels keep pace with it (bench/burst.py: the median label 0.25 s after its send,
    against 0.7 s with 2 under load)."""
    app = new_app(handler_concurrency=6)
    started, release = held_handlers(app)
    runner = app.runner
    await runner.start(await app.open_journal())
    runner.load.enter()  # a request is being received, and stays
    try:
        for n in range(8):
            assert await app.accept(Delivery.from_payload(f"d{n}", "issues", issue_opened(n)))
        for _ in range(100):
            if len(started) == 6:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert started == [f"d{n}" for n in range(6)]  # HANDLER_CONCURRENCY, load or not
    finally:
        runner.load.leave()
        release.set()
        await app.wait_idle()
        await app.drain()
        await app.close()


async def test_an_installation_deleted_event_drops_its_cached_tokens(
    fake: FakeGitHub, fake_url: str
) -> None:
    app = new_app(fake_url)

    @app.on("issues.opened")
    async def label(ctx: Context[IssuesOpened]) -> None:
        await ctx.github.post(
            f"/repos/{ctx.repo_full_name}/issues/{ctx.event.issue.number}/labels",
            json={"labels": ["x"]},
        )

    assert await app.receive("issues", issue_opened(1)) == []
    assert await app.receive("issues", issue_opened(2)) == []
    assert fake.mint_count(INSTALLATION) == 1
    # No handler wants installation events, and still the cache hears of it.
    deleted = {"action": "deleted", "installation": {"id": INSTALLATION}}
    delivery = Delivery.from_payload("d-del", "installation", deleted)
    assert await app.accept(delivery) == "accepted"
    await app.wait_idle()
    assert await app.receive("issues", issue_opened(3)) == []
    assert fake.mint_count(INSTALLATION) == 2
    await app.drain()
    await app.close()


async def test_the_client_id_can_be_the_jwt_issuer_and_every_client_shares_one_pool(
    app_key_fake: FakeGitHub,
) -> None:
    with serve(app_key_fake.app) as url:
        app = new_app(url, app_id=None, client_id="Iv1.e2e")
        pools: list[object] = []

        @app.on("issues.opened")
        async def label(ctx: Context[IssuesOpened]) -> None:
            pools.append(ctx.github.http)
            await ctx.github.post(
                f"/repos/{ctx.repo_full_name}/issues/{ctx.event.issue.number}/labels",
                json={"labels": ["by-client-id"]},
            )

        assert await app.receive("issues", issue_opened(1)) == []
        assert await app.receive("issues", issue_opened(2)) == []
        shared = app.http
        await shared.aclose()
    assert app_key_fake.issue_labels(REPO, 2) == ["by-client-id"]
    assert pools[0] is pools[1] is shared
    [mint] = app_key_fake.calls_to("POST", f"/app/installations/{INSTALLATION}/access_tokens")
    assert mint.status == 201


@pytest.fixture
def app_key_fake() -> FakeGitHub:
    """A fake that accepts only the client id as the JWT issuer."""
    fake = FakeGitHub(app_id=999_999, client_id="Iv1.e2e", public_key=PUBLIC)
    fake.add_installation(INSTALLATION, account="Codertocat", repositories=[REPO])
    return fake
