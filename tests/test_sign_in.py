"""Signing in through the bot's routes, end to end: a real browser-like client (following
redirects, keeping cookies) against the bot on uvicorn and a strict fake of each platform."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse

from framework import App, Context
from framework.auth.user_tokens import NotSignedIn
from framework.errors import ConfigurationError
from framework.server.login import SignedIn, check_callback_url
from framework.settings import Settings
from framework.testing import FakeOAuth, serve_async
from tests.signin_support import PLATFORMS, fake_for, served, settings_for
from tests.support import signed


def bot_with_pages() -> tuple[App, list[SignedIn]]:
    """A bot with a page that fetches the signed-in user's data with their own token."""
    app = App(name="sign-in-test")
    logins: list[SignedIn] = []

    @app.on_login
    def remember(signed_in: SignedIn) -> None:  # a plain function: run in a thread
        logins.append(signed_in)

    @app.route("/mine", methods=["GET"])
    async def mine(request: Request) -> JSONResponse:
        found: dict[str, Any] = {}
        for platform, user in app.users.signed_in(request).items():
            client = await app.user_client(platform, user)
            found[platform] = await user_data(platform, client)
        return JSONResponse(found)

    return app, logins


async def user_data(platform: str, client: Any) -> list[str]:
    """A few of the user's things, fetched as the user."""
    if platform == "coding":
        answer = await client.open_api("DescribeCodingProjects")
        return [p["Name"] for p in answer["Data"]["ProjectList"]]
    if platform == "tapd":
        stored = await client.data("GET", "/users/info")
        assert stored["nick"] == "octocat"
        return []
    return [r["full_name"] for r in (await client.get("/user/repos")).json()]


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_a_sign_in_round_trip_stores_the_grant_and_acts_as_the_user(
    platform: str, tmp_path: Path
) -> None:
    app, logins = bot_with_pages()
    with served(fake_for(platform)) as fake:
        app.configure(settings_for({platform: fake}, tmp_path))
        async with serve_async(app) as bot, httpx.AsyncClient(follow_redirects=True) as browser:
            fake.callback_url = f"{bot}/login/{platform}/callback"
            page = await browser.get(f"{bot}/login/{platform}?next=/mine")
            assert page.status_code == 200, page.text
            assert str(page.url) == f"{bot}/mine"
            expected = {"github": ["octocat/hello-world", "octocat/spoon-knife"],
                        "atomgit": ["octocat/hello-world", "octocat/spoon-knife"],
                        "coding": ["hello-world", "spoon-knife"], "tapd": []}  # fmt: skip
            assert page.json() == {platform: expected[platform]}
            hops = [str(r.url).split("?")[0] for r in page.history]
            assert hops[0] == f"{bot}/login/{platform}"
            assert hops[-1] == f"{bot}/login/{platform}/callback"
    assert fake.exchanges == 1 and fake.refused == []
    assert [(s.platform, s.user_id, s.login) for s in logins] == [(platform, "583231", "octocat")]
    if platform == "tapd":
        assert logins[0].resource == {"type": "workspace", "workspace_id": 10022001}


async def test_signed_in_on_two_platforms_the_session_names_both(tmp_path: Path) -> None:
    app, _ = bot_with_pages()
    with served(fake_for("github")) as github, served(fake_for("tapd")) as tapd:
        app.configure(settings_for({"github": github, "tapd": tapd}, tmp_path))
        async with serve_async(app) as bot, httpx.AsyncClient(follow_redirects=True) as browser:
            github.callback_url = f"{bot}/login/github/callback"
            tapd.callback_url = f"{bot}/login/tapd/callback"
            await browser.get(f"{bot}/login/github?next=/")
            page = await browser.get(f"{bot}/login/tapd?next=/mine")
            assert sorted(page.json()) == ["github", "tapd"]


class Browser:
    """A bot with sign-in on one platform, served, and a client that does not follow
    redirects (so each step can be tampered with)."""

    def __init__(self, fake: FakeOAuth, bot: str, client: httpx.AsyncClient, app: App) -> None:
        self.fake, self.bot, self.client, self.app = fake, bot, client, app

    async def authorize(self, next_path: str = "/") -> httpx.Response:
        """Start signing in, and follow the fake's redirect back: the callback's URL."""
        start = await self.client.get(f"{self.bot}/login/{self.fake.platform}?next={next_path}")
        assert start.status_code == 302, start.text
        back = await self.client.get(start.headers["location"])
        assert back.status_code == 302, back.text
        return back

    async def stored(self) -> list[Any]:
        tokens = await self.app.users.tokens()
        return await tokens.store.rows()


@pytest.fixture
async def browser(tmp_path: Path) -> Any:
    app, _ = bot_with_pages()
    with served(fake_for("github")) as fake:
        app.configure(settings_for({"github": fake}, tmp_path))
        async with serve_async(app) as bot, httpx.AsyncClient() as client:
            fake.callback_url = f"{bot}/login/github/callback"
            yield Browser(fake, bot, client, app)


async def test_a_replayed_callback_is_refused(browser: Browser) -> None:
    back = await browser.authorize()
    nonce = browser.client.cookies.get("framework_oauth_github")
    assert nonce is not None
    first = await browser.client.get(back.headers["location"])
    assert first.status_code == 303
    assert browser.client.cookies.get("framework_oauth_github") is None  # the bot dropped it
    browser.client.cookies.set("framework_oauth_github", nonce)  # an attacker who kept it
    again = await browser.client.get(back.headers["location"])
    assert again.status_code == 400
    assert "already used" in again.text
    assert browser.fake.exchanges == 1


async def test_a_callback_from_another_browser_is_refused(browser: Browser) -> None:
    back = await browser.authorize()
    async with httpx.AsyncClient() as stranger:  # no state cookie
        answer = await stranger.get(back.headers["location"])
    assert answer.status_code == 400
    assert "another browser" in answer.text
    assert await browser.stored() == [] and browser.fake.exchanges == 0


async def test_a_forged_state_is_refused(browser: Browser) -> None:
    back = await browser.authorize()
    location = back.headers["location"]
    forged = location.replace("state=", "state=x")
    answer = await browser.client.get(forged)
    assert answer.status_code == 400 and "forged" in answer.text
    assert await browser.stored() == []


async def test_a_missing_state_is_refused(browser: Browser) -> None:
    answer = await browser.client.get(f"{browser.bot}/login/github/callback?code=abc")
    assert answer.status_code == 400 and "no state" in answer.text
    assert await browser.stored() == []


async def test_an_expired_state_is_refused(browser: Browser) -> None:
    back = await browser.authorize()
    now = browser.app.users.clock
    browser.app.users.clock = lambda: now() + 601
    answer = await browser.client.get(back.headers["location"])
    assert answer.status_code == 400 and "10 minutes" in answer.text
    assert await browser.stored() == []


async def test_next_must_be_a_path_of_the_bot(browser: Browser) -> None:
    for evil in ("https://evil.example", "//evil.example/x", "/\\evil.example"):
        answer = await browser.client.get(f"{browser.bot}/login/github", params={"next": evil})
        assert answer.status_code == 400, evil
        assert "path of this bot" in answer.text
    assert browser.fake.calls == []


async def test_a_denied_authorization_stores_nothing(browser: Browser) -> None:
    browser.fake.deny = True
    back = await browser.authorize()
    answer = await browser.client.get(back.headers["location"])
    assert answer.status_code == 400 and "access_denied" in answer.text
    assert await browser.stored() == [] and browser.fake.exchanges == 0


async def test_an_expired_code_is_a_clear_error(browser: Browser) -> None:
    back = await browser.authorize()
    browser.fake.clock = lambda: 10**10  # the code is long dead by the time it is exchanged
    answer = await browser.client.get(back.headers["location"])
    assert answer.status_code == 400
    assert "bad_verification_code" in answer.text
    assert await browser.stored() == []


async def test_a_platform_without_sign_in_is_not_found(browser: Browser) -> None:
    answer = await browser.client.get(f"{browser.bot}/login/tapd")
    assert answer.status_code == 404


async def test_no_token_or_secret_in_logs_or_pages(
    browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pages = []
    back = await browser.authorize(next_path="/mine")
    done = await browser.client.get(back.headers["location"])
    pages.append((await browser.client.get(f"{browser.bot}/mine")).text)
    pages.append((await browser.client.get(back.headers["location"])).text)  # replayed
    browser.fake.deny = True
    pages.append((await browser.client.get((await browser.authorize()).headers["location"])).text)
    assert done.status_code == 303
    secrets = browser.fake.issued_secrets()
    assert len(secrets) >= 4  # the client secret, a code, an access and a refresh token
    ours = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    logged = "\n".join(r.getMessage() for r in ours) + "\n".join(pages)
    logged += "\n".join(str(r.exc_info) for r in ours if r.exc_info)
    for secret in secrets:
        assert secret not in logged
    # The HTTP clients' own lines (the test browser's among them) carry the one-time code in
    # the callback URL, as any browser history does; never a token or the client secret.
    http_lines = "\n".join(r.getMessage() for r in caplog.records if r not in ours)
    for secret in secrets - set(browser.fake._codes):
        assert secret not in http_lines
    cookie = browser.client.cookies.get("framework_session") or ""
    for secret in secrets:
        assert secret not in cookie


async def test_the_revoked_authorization_webhook_deletes_the_users_tokens(
    browser: Browser,
) -> None:
    back = await browser.authorize()
    await browser.client.get(back.headers["location"])
    assert [r.login for r in await browser.stored()] == ["octocat"]
    payload = {"action": "revoked", "sender": {"id": 583231, "login": "octocat"}}
    body, headers = signed("github_app_authorization", payload, "d-1", "webhook-secret")
    answer = await browser.client.post(f"{browser.bot}/api/github/webhooks", content=body,
                                       headers=headers)  # fmt: skip
    assert answer.status_code == 202, answer.text  # kept, though no handler listens for it
    await browser.app.wait_idle(10)
    assert await browser.stored() == []


async def test_a_handler_acts_as_the_sender_and_scopes_are_checked(browser: Browser) -> None:
    back = await browser.authorize()
    await browser.client.get(back.headers["location"])
    app, seen = browser.app, []

    @app.on("issues.opened")
    async def as_sender(ctx: Context) -> None:
        client = await ctx.user_client()
        seen.append((await client.get("/user")).json()["login"])
        await ctx.user_client(scopes=["gist"])  # not granted: raises MissingScope

    payload = {"action": "opened", "issue": {"number": 1}, "sender": {"id": 583231}}
    errors = await app.receive("issues", payload)
    assert seen == ["octocat"]
    assert [type(e).__name__ for e in errors] == ["MissingScope"]
    with pytest.raises(NotSignedIn):
        await app.user_client("github", "somebody-else")


async def test_the_bots_routes_may_be_plain_functions(tmp_path: Path) -> None:
    app = App()

    @app.route("/plain", methods=["GET", "POST"])
    def plain(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"{request.method} in a thread")

    app.configure(Settings(_env_file=None, webhook_secret="s", journal_path=tmp_path / "j"))
    async with serve_async(app) as bot, httpx.AsyncClient() as client:
        assert (await client.post(f"{bot}/plain")).text == "POST in a thread"
        assert (await client.get(f"{bot}/login/github")).status_code == 404  # no sign-in set
        assert (await client.get(f"{bot}/healthz")).status_code == 200


async def test_without_a_key_sign_in_says_how_to_make_one(tmp_path: Path) -> None:
    app, _ = bot_with_pages()
    with served(fake_for("github")) as fake:
        app.configure(settings_for({"github": fake}, tmp_path, token_encryption_key=None))
        async with serve_async(app) as bot, httpx.AsyncClient() as client:
            answer = await client.get(f"{bot}/login/github")
    assert answer.status_code == 500
    assert "TOKEN_ENCRYPTION_KEY is not set" in answer.text and "new-key" in answer.text
    assert fake.calls == []


def test_a_public_url_github_would_refuse_stops_start_up(tmp_path: Path) -> None:
    with served(fake_for("github")) as fake:
        good = settings_for({"github": fake}, tmp_path, public_url="https://bot.example",
                            github_oauth_callback_url="https://bot.example/login")  # fmt: skip
        check_callback_url(good)
        bad = settings_for({"github": fake}, tmp_path, public_url="https://bot.example:8443",
                           github_oauth_callback_url="https://bot.example/login")  # fmt: skip
        with pytest.raises(ConfigurationError, match="GitHub would refuse the redirect URI"):
            check_callback_url(bad)
        app = App()
        app.configure(bad)
        with pytest.raises(ConfigurationError):
            app._build()
