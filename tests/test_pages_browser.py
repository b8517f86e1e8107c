"""The setup and status pages in a real headless Chromium (Debian's ``chromium`` package,
driven by Playwright; ``.ci/run`` installs it).

With ``FRAMEWORK_SCREENSHOTS=1`` the tests save the README's screenshots into ``docs/``;
otherwise into the test's temporary directory.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from dotenv import dotenv_values

from framework import App, Context
from framework.events import IssuesOpened
from framework.testing import payloads, run_bot
from tests.support import ROOT, unregistered_bot

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture
async def page() -> AsyncIterator[playwright_api.Page]:
    """A fresh page in a headless Chromium."""
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"chromium is not installed at {CHROMIUM} (apt-get install -y chromium)")
    async with playwright_api.async_playwright() as driver:
        try:
            browser = await driver.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000
            )
        except playwright_api.Error as exc:
            pytest.skip(f"chromium cannot start here: {exc.message.splitlines()[0]}")
        context = await browser.new_context(viewport={"width": 1100, "height": 800})
        tab = await context.new_page()
        tab.set_default_timeout(15_000)
        try:
            yield tab
        finally:
            await browser.close()


def screenshot_path(tmp_path: Path, name: str) -> Path:
    folder = ROOT / "docs" if os.environ.get("FRAMEWORK_SCREENSHOTS") else tmp_path
    return folder / name


async def test_register_in_the_browser_then_see_the_install_link(
    page: playwright_api.Page, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("# written by me\nLOG_LEVEL=info\n")
    proxy = "https://smee.io/aBcDeF123456"
    async with unregistered_bot(tmp_path, webhook_proxy_url=proxy) as bot:
        await page.goto(bot.url + "/")
        assert await page.title() == "Set up labeler"
        assert proxy in await page.inner_text("table")
        await page.screenshot(path=screenshot_path(tmp_path, "setup-page.png"), full_page=True)

        await page.click("text=Register GitHub App")  # through the fake's settings/apps/new
        await page.wait_for_url(f"{bot.url}/setup/callback?*")
        assert await page.inner_text("h1") == "labeler is registered"
        install = page.get_by_role("link", name="Install labeler")
        href = await install.get_attribute("href")
        assert href == f"{bot.github_url}/apps/labeler/installations/new"
        assert "no restart needed" in await page.inner_text("body")
        await page.screenshot(path=screenshot_path(tmp_path, "registered-page.png"))

        env = dotenv_values(bot.env_file)
        assert set(env) == {
            "LOG_LEVEL", "APP_ID", "PRIVATE_KEY", "WEBHOOK_SECRET",
            "GITHUB_CLIENT_ID", "GITHUB_CLIENT_SECRET",
        }  # fmt: skip
        assert bot.env_file.read_text().startswith("# written by me\n")
        assert stat.S_IMODE(bot.env_file.stat().st_mode) == 0o600
        text = await page.content()
        for name in ("WEBHOOK_SECRET", "GITHUB_CLIENT_SECRET"):
            assert str(env[name]) not in text
        assert "PRIVATE KEY-----" not in text

        # The state was spent: GitHub's redirect, replayed, is refused.
        response = await page.goto(page.url)
        assert response is not None and response.status == 409  # the bot is set up now
        await page.goto(bot.url + "/")  # now the status page, as the new app
        assert await page.inner_text("h1") == "labeler"
        assert f"GitHub App {env['APP_ID']}" in await page.inner_text("body")


async def test_status_page_lists_deliveries_and_replays_a_failed_one(
    page: playwright_api.Page, tmp_path: Path
) -> None:
    app = App(name="labeler")
    broken = {"yes": True}

    @app.on("issues.opened")
    async def label(ctx: Context[IssuesOpened]) -> None:
        if broken["yes"]:
            raise RuntimeError(f"could not label {ctx.event.issue.title}")
        await ctx.github.post(
            f"/repos/{ctx.repo_full_name}/issues/{ctx.event.issue.number}/labels",
            json={"labels": ["needs-response"]},
        )

    async with run_bot(app) as bot:
        bot.fake.slug = "labeler"  # GET /app answers with this name
        broken["yes"] = False
        ok = await bot.receive("issues", payloads.issues_opened(number=1), delivery_id="ok-1")
        assert ok.status == "done"
        broken["yes"] = True
        title = "<img src=x onerror=alert(1)> & friends"
        failed = await bot.receive(
            "issues", payloads.issues_opened(number=2, title=title), delivery_id="failed-2"
        )
        assert failed.status == "failed"
        base = bot.url.removesuffix(bot.app.settings.webhook_path)

        await page.goto(base + "/")
        assert await page.inner_text("h1") == "labeler"
        body = await page.inner_text("body")
        assert "octo-org" in body  # the installation's account
        rows = page.locator("table").nth(1)
        assert "ok-1" in await rows.inner_text() and "failed-2" in await rows.inner_text()
        error = page.locator("pre")
        assert await error.inner_text() == f"RuntimeError: could not label {title}"
        assert await page.locator("pre img").count() == 0  # escaped, not rendered
        await page.screenshot(path=screenshot_path(tmp_path, "status-page.png"), full_page=True)

        broken["yes"] = False
        await page.click("button[aria-label='Replay failed-2']")
        await page.wait_for_url(f"{base}/?replayed=failed-2")
        assert "queued to run again" in await page.inner_text("body")
        for _ in range(100):  # the runner claims it within its poll interval
            if bot.fake.issue_labels("octo-org/hello", 2):
                break
            await asyncio.sleep(0.05)
        assert bot.fake.issue_labels("octo-org/hello", 2) == ["needs-response"]
        await page.goto(base + "/")
        assert await page.locator("pre").count() == 0  # no error left to show
        assert await page.locator("button[aria-label='Replay failed-2']").count() == 0
