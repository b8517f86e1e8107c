"""sample_bots/sign_in.py in a real headless Chromium: click "Sign in with GitHub" and with TAPD,
come back to the page showing the user's repositories and stories, fetched with their tokens.

With ``FRAMEWORK_SCREENSHOTS=1`` the screenshot goes into ``docs/``.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from framework.testing import serve_async
from sample_bots.sign_in import app
from tests.signin_support import fake_for, served, settings_for
from tests.test_pages_browser import page, playwright_api, screenshot_path

__all__ = ["page"]  # the headless Chromium fixture, shared with the pages' browser tests


async def test_sign_in_with_a_click_and_see_your_data(
    page: playwright_api.Page, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        fakes = {p: stack.enter_context(served(fake_for(p))) for p in ("github", "tapd")}
        app.configure(settings_for(fakes, tmp_path))
        async with serve_async(app) as bot:
            for platform, fake in fakes.items():
                fake.callback_url = f"{bot}/login/{platform}/callback"
            await page.goto(f"{bot}/")
            await page.click("text=Sign in with GitHub")
            await page.wait_for_url(f"{bot}/")
            await page.click("text=Sign in with TAPD")
            await page.wait_for_url(f"{bot}/")
            text = await page.inner_text("body")
            await page.screenshot(path=screenshot_path(tmp_path, "sign-in-sample.png"))
    assert text.count("signed in as octocat") == 2
    assert "octocat/hello-world" in text and "Export to CSV" in text
    assert "Sign in with" not in text
    assert fakes["github"].exchanges == 1 and fakes["tapd"].exchanges == 1
