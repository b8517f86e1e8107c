"""The setup and status pages over HTTP: registration refusals, access, CSRF, import.

The browser walks the happy paths in ``test_pages_browser.py``; here every refusal is
checked with a plain HTTP client (and, for non-loopback clients, at the ASGI level).
"""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from dotenv import dotenv_values

from framework import App
from framework.common.encoding import compact_json
from framework.testing import payloads, run_bot
from framework.testing.fake_github import generate_app_key
from framework.webhooks.signature import sign
from tests.support import UnregisteredBot, form_of, unregistered_bot

TOKEN = "status-page-token-0123456789"


async def registration_callback(client: httpx.AsyncClient, bot: UnregisteredBot) -> str:
    """Click "Register" without a browser: the callback URL GitHub redirects to."""
    page = await client.get(bot.url + "/")
    assert page.status_code == 200, page.text
    action, manifest = form_of(page.text)
    created = await client.post(action, data={"manifest": manifest})
    assert created.status_code == 302, created.text
    return created.headers["location"]


async def test_registration_writes_env_and_the_bot_labels_with_the_new_app(
    tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_text("# my settings\nLOG_LEVEL=debug\n")
    async with unregistered_bot(tmp_path) as bot, httpx.AsyncClient() as client:
        refused = await client.post(bot.url + "/api/github/webhooks", content=b"{}")
        assert refused.status_code == 503
        assert "not registered yet" in refused.json()["error"]

        done = await client.get(await registration_callback(client, bot))
        assert done.status_code == 200, done.text
        assert "no restart needed" in done.text
        env = dotenv_values(bot.env_file)
        app_id = env["APP_ID"]
        assert app_id == str(bot.fake.app_id)
        assert f'href="{bot.github_url}/apps/labeler/installations/new"' in done.text
        assert bot.env_file.read_text().startswith("# my settings\nLOG_LEVEL=debug\n")
        assert stat.S_IMODE(bot.env_file.stat().st_mode) == 0o600
        for secret in ("PRIVATE_KEY", "WEBHOOK_SECRET", "GITHUB_CLIENT_SECRET"):
            assert str(env[secret]).strip().splitlines()[-1] not in done.text

        # The bot uses the new app at once: a delivery signed with the new secret is run,
        # and its handler labels the issue with a token minted by the new app's JWT.
        body = compact_json(payloads.issues_opened(number=7))
        accepted = await client.post(
            bot.url + "/api/github/webhooks",
            content=body,
            headers={
                "content-type": "application/json",
                "x-github-event": "issues",
                "x-github-delivery": "after-registration",
                "x-hub-signature-256": sign(body, str(env["WEBHOOK_SECRET"])),
            },
        )
        assert accepted.status_code == 202, accepted.text
        for _ in range(500):
            if bot.fake.issue_labels("octo-org/hello", 7):
                break
            await asyncio.sleep(0.01)
        assert bot.fake.issue_labels("octo-org/hello", 7) == ["needs-response"]
        assert bot.fake.mint_count(42) == 1


async def test_the_manifest_sent_to_github(tmp_path: Path) -> None:
    (tmp_path / "app.yml").write_text("name: octo-labeler\ndescription: Labels new issues\n")
    async with unregistered_bot(tmp_path, webhook_proxy_url="https://smee.io/abc") as bot:
        bot.app.home = tmp_path
        async with httpx.AsyncClient() as client:
            await registration_callback(client, bot)
    (manifest,) = bot.fake.manifests
    assert manifest == {
        "url": bot.url,
        "name": "octo-labeler",
        "description": "Labels new issues",
        "public": False,
        "default_permissions": {"metadata": "read", "issues": "write"},
        "default_events": ["issues"],
        "hook_attributes": {"url": "https://smee.io/abc", "active": True},
        "redirect_url": bot.url + "/setup/callback",
        "callback_urls": [bot.url + "/login/github/callback"],  # users can sign in at once
    }


async def test_the_org_form_goes_to_the_orgs_settings(tmp_path: Path) -> None:
    async with unregistered_bot(tmp_path, gh_org="octo-org") as bot, httpx.AsyncClient() as c:
        action, _ = form_of((await c.get(bot.url + "/")).text)
        assert action.startswith(f"{bot.github_url}/organizations/octo-org/settings/apps/new?")
        created = await c.post(action, data={"manifest": form_of((await c.get(bot.url)).text)[1]})
        assert created.status_code == 302


async def test_a_loopback_hook_url_is_warned_about(tmp_path: Path) -> None:
    async with unregistered_bot(tmp_path) as bot, httpx.AsyncClient() as client:
        page = (await client.get(bot.url + "/")).text
    assert "GitHub cannot reach" in page and "./smee_dev.sh" in page


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"code": "abc"}, "has no state"),
        ({"code": "abc", "state": "forged"}, "unknown, already used or expired"),
    ],
)
async def test_a_wrong_or_missing_state_is_refused(
    tmp_path: Path, query: dict[str, str], message: str
) -> None:
    async with unregistered_bot(tmp_path) as bot, httpx.AsyncClient() as client:
        answer = await client.get(bot.url + "/setup/callback", params=query)
        assert answer.status_code == 400
        assert message in answer.text
        assert not bot.env_file.exists()
        assert not any(call.path.startswith("/app-manifests/") for call in bot.fake.calls)


async def test_an_expired_code_and_a_reused_state_are_refused(tmp_path: Path) -> None:
    async with unregistered_bot(tmp_path) as bot, httpx.AsyncClient() as client:
        callback = await registration_callback(client, bot)
        bot.fake.expire_manifest_codes()
        expired = await client.get(callback)
        assert expired.status_code == 400
        assert "does not know this code" in expired.text
        reused = await client.get(callback)
        assert reused.status_code == 400
        assert "unknown, already used or expired" in reused.text
        assert not bot.env_file.exists()
        # The bot still offers the setup page: registering again works.
        assert (await client.get(await registration_callback(client, bot))).status_code == 200
        assert bot.env_file.exists()


async def test_github_unreachable_during_the_exchange_is_a_clear_page(tmp_path: Path) -> None:
    async with unregistered_bot(tmp_path) as bot, httpx.AsyncClient() as client:
        callback = await registration_callback(client, bot)
        settings = bot.app.settings.model_copy(
            update={"github_api_url": "http://127.0.0.1:9", "github_max_retries": 0}
        )
        assert "github" not in bot.app._connections  # built on first use, with the settings
        bot.app._settings = settings  # the API moved away; the page's state stays valid
        answer = await client.get(callback)
    assert answer.status_code == 502
    assert "could not be reached" in answer.text


async def test_the_fake_refuses_a_manifest_without_state_or_url(tmp_path: Path) -> None:
    async with unregistered_bot(tmp_path) as bot, httpx.AsyncClient() as client:
        action, manifest = form_of((await client.get(bot.url + "/")).text)
        no_state = await client.post(action.partition("?")[0], data={"manifest": manifest})
        assert no_state.status_code == 422 and "state" in no_state.text
        bad = manifest.replace('"url":', '"homepage":')
        no_url = await client.post(action, data={"manifest": bad})
        assert no_url.status_code == 422 and "url" in no_url.text
        no_permission = manifest.replace('"issues":"write"', '"contents":"read"')
        refused = await client.post(action, data={"manifest": no_permission})
        assert refused.status_code == 422 and "needs the issues permission" in refused.text


async def test_a_read_only_env_is_reported_and_the_app_still_used(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("LOG_LEVEL=debug\n")
    env.chmod(0o400)
    async with unregistered_bot(tmp_path) as bot, httpx.AsyncClient() as client:
        done = await client.get(await registration_callback(client, bot))
        assert done.status_code == 200
        assert "could not be saved" in done.text and "read-only" in done.text
        assert env.read_text() == "LOG_LEVEL=debug\n"
        assert bot.app.settings.app_id == str(bot.fake.app_id)


def asgi_client(app: App, client: tuple[str, int], **headers: str) -> httpx.AsyncClient:
    """Requests as if from ``client`` (the address in the ASGI scope)."""
    transport = httpx.ASGITransport(app=app, client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://bot.example", headers=headers)


async def test_a_request_from_outside_loopback_is_refused_without_the_token(
    tmp_path: Path,
) -> None:
    async with unregistered_bot(tmp_path) as bot:
        async with asgi_client(bot.app, ("203.0.113.9", 40000)) as outsider:
            refused = await outsider.get("/")
            assert refused.status_code == 403 and "STATUS_PAGE_TOKEN" in refused.text
            assert "Register GitHub App" not in refused.text
            callback = await outsider.get("/setup/callback?code=a&state=b")
            assert callback.status_code == 403
        local_but_rebound = asgi_client(bot.app, ("127.0.0.1", 40000), host="evil.example")
        async with local_but_rebound as rebound:
            assert (await rebound.get("/")).status_code == 403
        proxied = asgi_client(
            bot.app, ("127.0.0.1", 40000), host="localhost", **{"x-forwarded-for": "1.2.3.4"}
        )
        async with proxied as through_proxy:
            assert (await through_proxy.get("/")).status_code == 403
        async with asgi_client(bot.app, ("127.0.0.1", 40000), host="localhost:3000") as local:
            assert (await local.get("/")).status_code == 200


async def test_the_token_opens_the_pages_by_bearer_or_login(tmp_path: Path) -> None:
    async with (
        unregistered_bot(tmp_path, status_page_token=TOKEN) as bot,
        asgi_client(bot.app, ("203.0.113.9", 40000)) as outsider,
    ):
        asked = await outsider.get("/")
        assert asked.status_code == 401 and 'name="token"' in asked.text
        wrong = await outsider.post("/login", data={"token": "guess"})
        assert wrong.status_code == 401 and "not the token" in wrong.text
        bearer = await outsider.get("/", headers={"authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 200 and "Register GitHub App" in bearer.text
        assert TOKEN not in bearer.text
        login = await outsider.post("/login", data={"token": TOKEN})
        assert login.status_code == 303
        assert "httponly" in login.headers["set-cookie"].lower()
        assert (await outsider.get("/")).status_code == 200  # the session cookie
        outsider.cookies.set("framework_session", "9999999999.forged")
        assert (await outsider.get("/")).status_code == 401


async def import_form(
    client: httpx.AsyncClient, url: str, fields: dict[str, str], key: str | None
) -> httpx.Response:
    page = await client.get(url + "/")
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    files: dict[str, Any] = {"private_key": ("app.pem", key.encode(), "application/x-pem-file")}
    return await client.post(
        url + "/setup/import", data={"csrf": csrf, **fields}, files=files if key else None
    )


async def test_an_existing_app_is_imported_after_github_accepts_its_key(tmp_path: Path) -> None:
    async with unregistered_bot(tmp_path) as bot, httpx.AsyncClient() as client:
        pem, public_key = generate_app_key("imported")
        bot.fake._public_key = public_key  # the fake plays the app made by hand
        fields = {"app_id": "999", "webhook_secret": "hand-made-secret"}
        wrong_key, _ = generate_app_key("someone-else")
        refused = await import_form(client, bot.url, fields, wrong_key)
        assert refused.status_code == 400 and "GitHub refused this app id and key" in refused.text
        not_a_key = await import_form(client, bot.url, fields, "not a key")
        assert not_a_key.status_code == 400 and "does not hold a PEM private key" in not_a_key.text
        assert not bot.env_file.exists()
        done = await import_form(client, bot.url, fields, pem)
        assert done.status_code == 200, done.text
        assert "hand-made-secret" not in done.text
    env = dotenv_values(bot.env_file)
    assert (env["APP_ID"], env["WEBHOOK_SECRET"]) == ("999", "hand-made-secret")
    assert env["PRIVATE_KEY"] == pem


async def test_a_form_without_its_csrf_token_is_refused(tmp_path: Path) -> None:
    async with unregistered_bot(tmp_path) as bot, httpx.AsyncClient() as client:
        await client.get(bot.url + "/")  # the CSRF cookie is set
        answer = await client.post(
            bot.url + "/setup/import", data={"csrf": "forged", "app_id": "999"}
        )
        assert answer.status_code == 403 and "Form expired" in answer.text


async def test_a_replay_needs_the_csrf_token_and_a_failed_delivery(tmp_path: Path) -> None:
    app = App(name="fails")

    @app.on("issues.opened")
    async def fail(_: object) -> None:
        raise RuntimeError("broken")

    async with run_bot(app) as bot, httpx.AsyncClient() as client:
        result = await bot.receive("issues", payloads.issues_opened(), delivery_id="d-1")
        assert result.status == "failed"
        base = bot.url.removesuffix("/api/github/webhooks")
        page = await client.get(base + "/")
        assert "broken" in page.text
        forged = await client.post(base + "/deliveries/d-1/replay", data={"csrf": "x"})
        assert forged.status_code == 403
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        missing = await client.post(base + "/deliveries/nope/replay", data={"csrf": csrf})
        assert missing.status_code == 404
        replayed = await client.post(base + "/deliveries/d-1/replay", data={"csrf": csrf})
        assert replayed.status_code == 303
        assert replayed.headers["location"] == "/?replayed=d-1"
        journal = await bot.app.open_journal()
        for _ in range(500):  # it runs again (and fails again: the handler is still broken)
            entry = await journal.get("d-1")
            if entry is not None and entry.attempts == 2 and entry.status.value == "failed":
                break
            await asyncio.sleep(0.01)
        assert entry is not None and (entry.attempts, entry.status.value) == (2, "failed")


async def test_the_callback_is_refused_once_the_app_is_configured(tmp_path: Path) -> None:
    async with run_bot(App()) as bot, httpx.AsyncClient() as client:
        base = bot.url.removesuffix("/api/github/webhooks")
        answer = await client.get(base + "/setup/callback?code=a&state=b")
    assert answer.status_code == 409
