"""The installation client against real API limits, on the strict fake: retries, rate limits
(primary, secondary, per installation), pagination, GraphQL, typed errors, ETags, scopes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from framework import (
    App,
    Context,
    Forbidden,
    GraphQLError,
    NetworkError,
    NotFound,
    RateLimited,
    ServerError,
    Settings,
    ValidationFailed,
)
from framework.client.limits import ClientShared
from framework.client.rest import GitHubClient
from framework.testing import ApiRequest, FakeGitHub, Reply, serve_async
from tests.support import APP_ID, INSTALLATION, PEM, PUBLIC, REPO, issue_opened

SECONDARY = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
LABELS = f"/repos/{REPO}/issues/1/labels"


class Clock:
    """A clock the client's waits advance instantly; records each wait."""

    def __init__(self) -> None:
        self.now = time.time()
        self.waits: list[float] = []
        self.on_wait: list[Any] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(round(seconds, 1))
        self.now += seconds
        for hook in self.on_wait:
            hook()


_apps: list[App] = []


def new_app(fake_url: str, **settings: Any) -> App:
    values: dict[str, Any] = {
        "app_id": str(APP_ID),
        "private_key": PEM,
        "webhook_secret": "x",
        "github_api_url": fake_url,
        **settings,
    }
    app = App(Settings(**values), name="limits-bot")
    _apps.append(app)
    return app


@pytest.fixture(autouse=True)
async def _close_apps() -> AsyncIterator[None]:
    yield
    while _apps:
        await _apps.pop().close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def client(app: App, clock: Clock, installation: int = INSTALLATION) -> GitHubClient:
    shared = app.client_shared
    shared.clock, shared.sleep = clock, clock.sleep
    return app.installation_client(installation)


# Rate limits ------------------------------------------------------------------------------


async def test_a_secondary_limit_with_retry_after_waits_that_long(
    fake: FakeGitHub, fake_url: str, clock: Clock
) -> None:
    fake.respond("POST", LABELS, status=403, json={"message": SECONDARY},
                 headers={"retry-after": "7"}, times=1)  # fmt: skip
    gh = client(new_app(fake_url), clock)
    await gh.post(LABELS, json={"labels": ["bug"]})
    assert clock.waits == [7.0]
    assert fake.issue_labels(REPO, 1) == ["bug"]


async def test_a_secondary_limit_without_retry_after_waits_a_minute_then_backs_off(
    fake: FakeGitHub, fake_url: str, clock: Clock
) -> None:
    fake.respond("POST", LABELS, status=403, json={"message": SECONDARY}, times=3)
    gh = client(new_app(fake_url, github_max_rate_limit_wait_seconds=150), clock)
    with pytest.raises(RateLimited) as err:
        await gh.post(LABELS, json={"labels": ["bug"]})
    # 60 s, then 120 s; the third would be 240 s, past the 150 s the client may wait.
    assert clock.waits == [60.0, 120.0]
    assert err.value.secondary and err.value.retry_after == 240
    assert err.value.reset_at == pytest.approx(clock.now + 240)
    assert "secondary rate limit; try again in 240 s" in str(err.value)


async def test_an_exhausted_primary_limit_waits_for_its_reset(
    fake: FakeGitHub, fake_url: str, clock: Clock
) -> None:
    gh = client(new_app(fake_url, github_max_rate_limit_wait_seconds=7200), clock)
    await gh.get(f"/repos/{REPO}")
    fake.set_rate_limit(INSTALLATION, remaining=0)
    clock.on_wait.append(lambda: fake.set_rate_limit(INSTALLATION, remaining=5000))  # reset
    response = await gh.get(f"/repos/{REPO}/issues/1/labels")
    assert response.status_code == 200
    assert gh.rate_limit is not None
    (waited,) = clock.waits
    assert waited == pytest.approx(gh.rate_limit.reset_at - (clock.now - waited), abs=2)


async def test_a_primary_reset_beyond_the_maximum_wait_raises_with_the_reset_time(
    fake: FakeGitHub, fake_url: str, clock: Clock
) -> None:
    gh = client(new_app(fake_url), clock)  # waits 60 s at most
    fake.set_rate_limit(INSTALLATION, remaining=0)
    with pytest.raises(RateLimited) as err:
        await gh.get(f"/repos/{REPO}")
    assert clock.waits == []
    assert not err.value.secondary and err.value.status == 403
    assert err.value.reset_at > clock.now + 60
    assert "API rate limit exceeded" in str(err.value)


async def test_one_installation_at_its_limit_does_not_slow_another() -> None:
    fake = FakeGitHub(app_id=APP_ID, public_key=PUBLIC)
    fake.add_installation(1, account="limited", repositories=["limited/repo"])
    fake.add_installation(2, account="free", repositories=["free/repo"])
    fake.respond("GET", "/repos/limited/repo", status=403, json={"message": SECONDARY},
                 headers={"retry-after": "2"}, times=1)  # fmt: skip
    async with serve_async(fake.app) as url:
        app = new_app(url)
        limited, free = app.installation_client(1), app.installation_client(2)
        await asyncio.gather(limited.get("/rate_limit"), free.get("/rate_limit"))  # tokens
        started = time.monotonic()
        finished: dict[str, float] = {}

        async def timed(name: str, gh: GitHubClient, path: str) -> None:
            await gh.get(path)
            finished[name] = time.monotonic() - started

        waiting = asyncio.create_task(timed("limited", limited, "/repos/limited/repo"))
        limited_state = app.client_shared.state("installation:1")
        for _ in range(200):  # until GitHub has told the first installation to wait
            if limited_state.blocked_for() > 0:
                break
            await asyncio.sleep(0.005)
        assert limited_state.blocked_for() > 1
        await asyncio.gather(*(timed(f"free{n}", free, "/repos/free/repo") for n in range(4)))
        await waiting
        await app.close()
    assert finished["limited"] >= 2.0
    assert max(v for k, v in finished.items() if k.startswith("free")) < 1.0


# Retries ------------------------------------------------------------------------------------


async def test_a_502_is_retried_and_the_retry_is_logged_with_the_delivery_id(
    fake: FakeGitHub, fake_url: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    fake.respond("GET", f"/repos/{REPO}", status=502, json={"message": "Server Error"}, times=1)
    app = new_app(fake_url)
    app.client_shared.clock, app.client_shared.sleep = clock, clock.sleep
    seen: list[str] = []

    @app.on("issues.opened")
    async def read(ctx: Context) -> None:
        seen.append((await ctx.github.get(f"/repos/{REPO}")).json()["full_name"])

    payload = issue_opened(1, installation=INSTALLATION)
    with caplog.at_level(logging.WARNING):
        assert await app.receive("issues", payload, delivery_id="d-502") == []
    assert seen == [REPO]
    assert [c.status for c in fake.calls_to("GET", f"/repos/{REPO}")] == [502, 200]
    (retry,) = [r for r in caplog.records if "retry 1 of 3" in r.getMessage()]
    assert "502" in retry.getMessage()
    assert getattr(retry, "bound_fields", {}).get("delivery") == "d-502"
    assert len(clock.waits) == 1 and 0.25 <= clock.waits[0] <= 0.5


async def test_a_post_that_may_have_reached_github_is_not_repeated_unless_safe(
    fake: FakeGitHub, fake_url: str, clock: Clock
) -> None:
    fake.respond("POST", f"/repos/{REPO}/issues", status=502, times=1)
    fake.respond("POST", LABELS, status=503, times=1)
    gh = client(new_app(fake_url), clock)
    with pytest.raises(ServerError, match=f"POST /repos/{REPO}/issues -> 502"):
        await gh.post(f"/repos/{REPO}/issues", json={"title": "twice?"})
    assert len(fake.calls_to("POST", f"/repos/{REPO}/issues")) == 1  # not created twice
    await gh.post(LABELS, json={"labels": ["bug"]})  # adding a label twice is adding it once
    assert [c.status for c in fake.calls_to("POST", LABELS)] == [503, 200]


async def test_server_errors_give_up_after_the_configured_retries(
    fake: FakeGitHub, fake_url: str, clock: Clock
) -> None:
    fake.respond("GET", f"/repos/{REPO}", status=500, times=10)
    gh = client(new_app(fake_url, github_max_retries=2), clock)
    with pytest.raises(ServerError):
        await gh.get(f"/repos/{REPO}")
    assert len(fake.calls_to("GET", f"/repos/{REPO}")) == 3
    assert len(clock.waits) == 2 and clock.waits[1] >= clock.waits[0] * 0.5


async def test_a_network_error_is_retried_then_reported_clearly(clock: Clock) -> None:
    app = new_app("http://127.0.0.1:9")  # nothing listens there
    shared = app.client_shared
    shared.clock, shared.sleep = clock, clock.sleep
    with pytest.raises(NetworkError, match=r"could not be reached .*after 4 attempt"):
        await app.github.get("/app")
    assert len(clock.waits) == 3
    await app.close()


async def test_a_token_that_expires_between_two_calls_is_replaced(
    fake: FakeGitHub, fake_url: str, clock: Clock
) -> None:
    gh = client(new_app(fake_url), clock)
    await gh.get(f"/repos/{REPO}")
    fake.expire_all_tokens()
    assert (await gh.get(f"/repos/{REPO}")).status_code == 200
    assert fake.mint_count(INSTALLATION) == 2


async def test_concurrency_per_installation_is_capped() -> None:
    in_flight = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200, json={})

    shared = ClientShared()
    shared.policy.concurrency = 3
    shared.states.clear()
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(handler), base_url="http://github.test"
    ) as http:
        gh = GitHubClient(http, httpx.Auth(), shared=shared)
        await asyncio.gather(*(gh.get(f"/n/{n}") for n in range(12)))
    assert peak == 3


# Typed errors -------------------------------------------------------------------------------


async def test_errors_are_typed_and_say_what_github_said_without_the_token(
    fake: FakeGitHub, fake_url: str, clock: Clock
) -> None:
    fake.respond("POST", f"/repos/{REPO}/issues", status=422, json={
        "message": "Validation Failed",
        "errors": [{"resource": "Issue", "field": "title", "code": "missing_field"}],
        "documentation_url": "https://docs.github.com/rest/issues/issues#create-an-issue",
    })  # fmt: skip
    fake.respond("DELETE", f"/repos/{REPO}", status=403,
                 json={"message": "Must have admin rights to Repository."})  # fmt: skip
    gh = client(new_app(fake_url), clock)
    with pytest.raises(ValidationFailed) as invalid:
        await gh.post(f"/repos/{REPO}/issues", json={})
    assert invalid.value.errors == [
        {"resource": "Issue", "field": "title", "code": "missing_field"}
    ]
    assert str(invalid.value) == (
        f"POST /repos/{REPO}/issues -> 422: Validation Failed (Issue title missing_field) "
        "(see https://docs.github.com/rest/issues/issues#create-an-issue)"
    )
    with pytest.raises(Forbidden, match="Must have admin rights"):
        await gh.delete(f"/repos/{REPO}")
    with pytest.raises(NotFound, match="GET /repos/someone/else -> 404: Not Found"):
        await gh.get("/repos/someone/else")
    token = fake.mints[-1].token
    assert token not in str(invalid.value) and token not in repr(invalid.value.__dict__)


# Pagination ---------------------------------------------------------------------------------


async def test_paginate_follows_three_pages_and_stops_at_a_cap(
    fake: FakeGitHub, fake_url: str, clock: Clock
) -> None:
    names = [f"Codertocat/repo-{n}" for n in range(250)]
    fake.add_installation(7, account="Codertocat", repositories=names)
    gh = client(new_app(fake_url), clock, installation=7)
    got = [repo["full_name"] async for repo in gh.paginate("/installation/repositories")]
    assert got == names
    pages = fake.calls_to("GET", "/installation/repositories")
    assert [c.query.get("page", "1") for c in pages] == ["1", "2", "3"]
    fake.clear_calls()
    capped = [r async for r in gh.paginate("/installation/repositories", limit=150)]
    assert len(capped) == 150 and len(fake.calls_to("GET", "/installation/repositories")) == 2


async def test_paginate_unwraps_search_results(
    fake: FakeGitHub, fake_url: str, clock: Clock
) -> None:
    @fake.route("GET", "/search/issues")
    def search(request: ApiRequest) -> Reply:
        page = int(request.query.get("page", "1"))
        items = [{"number": page * 10 + n} for n in range(2)]
        headers = {}
        if page < 2:
            query = f"q={request.query['q']}&per_page=100&page=2"
            headers["link"] = f'<{request.base_url}/search/issues?{query}>; rel="next"'
        return Reply(200, {"total_count": 4, "incomplete_results": False, "items": items}, headers)

    gh = client(new_app(fake_url), clock)
    got = [i["number"] async for i in gh.paginate("/search/issues", params={"q": "is:open"})]
    assert got == [10, 11, 20, 21]


# GraphQL ------------------------------------------------------------------------------------


async def test_graphql_sends_the_query_and_variables_and_returns_data(
    fake: FakeGitHub, fake_url: str, clock: Clock
) -> None:
    @fake.route("POST", "/graphql")
    def answer(request: ApiRequest) -> Reply:
        assert request.json["variables"] == {"owner": "Codertocat", "name": "Hello-World"}
        return Reply(200, {"data": {"repository": {"stargazerCount": 3}}})

    gh = client(new_app(fake_url), clock)
    query = "query($owner: String!, $name: String!) { repository(owner: $owner, name: $name) { stargazerCount } }"  # noqa: E501
    data = await gh.graphql(query, owner="Codertocat", name="Hello-World")
    assert data == {"repository": {"stargazerCount": 3}}
    assert fake.calls_to("POST", "/graphql")[0].installation_id == INSTALLATION


async def test_graphql_errors_raise_a_typed_error(
    fake: FakeGitHub, fake_url: str, clock: Clock
) -> None:
    fake.respond("POST", "/graphql", json={
        "data": None,
        "errors": [{"type": "NOT_FOUND", "message": "Could not resolve to a Repository."}],
    })  # fmt: skip
    gh = client(new_app(fake_url), clock)
    with pytest.raises(GraphQLError, match=r"GraphQL Repo: Could not resolve .* \[NOT_FOUND\]"):
        await gh.graphql('query Repo { repository(owner: "x", name: "y") { id } }')


async def test_the_fake_refuses_a_graphql_body_without_a_query(
    fake: FakeGitHub, fake_url: str, clock: Clock
) -> None:
    gh = client(new_app(fake_url), clock)
    with pytest.raises(Exception, match="A query attribute must be specified"):
        await gh.post("/graphql", json={"variables": {}})


# ETags ----------------------------------------------------------------------------------------


async def test_a_get_is_revalidated_with_its_etag_and_a_304_costs_no_rate_limit(
    fake: FakeGitHub, fake_url: str, clock: Clock
) -> None:
    gh = client(new_app(fake_url), clock)
    first = await gh.get(f"/repos/{REPO}")
    assert gh.rate_limit is not None
    used = gh.rate_limit.used
    second = await gh.get(f"/repos/{REPO}")
    calls = fake.calls_to("GET", f"/repos/{REPO}")
    assert [c.status for c in calls] == [200, 304]
    assert calls[1].headers["if-none-match"] == first.headers["etag"]
    assert second.status_code == 200 and second.json() == first.json()
    assert gh.rate_limit.used == used  # the 304 was free
    assert gh.shared.etags.hits == 1


async def test_etags_are_kept_per_installation(
    fake: FakeGitHub, fake_url: str, clock: Clock
) -> None:
    fake.add_installation(8, account="Codertocat", repositories=[REPO])
    app = new_app(fake_url)
    await client(app, clock).get(f"/repos/{REPO}")
    await client(app, clock, installation=8).get(f"/repos/{REPO}")
    calls = fake.calls_to("GET", f"/repos/{REPO}")
    assert [c.status for c in calls] == [200, 200]
    assert "if-none-match" not in calls[1].headers


# Scopes and budget ----------------------------------------------------------------------------


async def test_a_scoped_client_mints_a_narrow_token_and_shares_the_budget(
    fake: FakeGitHub, fake_url: str, clock: Clock
) -> None:
    gh = client(new_app(fake_url), clock)
    narrow = gh.scoped(repositories=["Hello-World"], permissions={"issues": "write"})
    await narrow.post(LABELS, json={"labels": ["scoped"]})
    mint = fake.mints[-1]
    assert mint.repositories == (REPO,) and mint.permissions == {
        "issues": "write",
        "metadata": "read",
    }
    assert narrow.rate_limit is not None and narrow.rate_limit is gh.rate_limit
    assert fake.issue_labels(REPO, 1) == ["scoped"]
